import Foundation
import NIOCore
import TDS

/// Conversions between RPC parameters and the SQL engine's values.
enum RPCValues {
    static func procedureName(_ p: RPCProcedure) -> String {
        switch p {
        case .name(let n):
            // "sys.sp_executesql", "[sys].[sp_executesql]", "master..sp_x" all name the same procedure.
            let last = n.split(separator: ".").last.map(String.init) ?? n
            return last.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        case .id(let id):
            switch id {
            case 1: return "sp_cursor"
            case 2: return "sp_cursoropen"
            case 9: return "sp_cursorclose"
            case 10: return "sp_executesql"
            case 11: return "sp_prepare"
            case 12: return "sp_execute"
            case 13: return "sp_prepexec"
            case 14: return "sp_prepexecrpc"
            case 15: return "sp_unprepare"
            default: return "procedure id \(id)"
            }
        }
    }

    static func sqlValue(_ v: TDSValue) -> SQLValue {
        switch v {
        case .null: return .null
        case .int(let i): return .int(i)
        case .bit(let b): return .bit(b)
        case .float(let d): return .float(d)
        case .string(let s): return .string(s)
        case .bytes(let b): return .bytes(b)
        case .decimal(let d): return .decimal(d.string(scale: 10))
        case .money(let m): return .decimal(String(Double(m) / 10_000))
        case .guid(let b) where b.count == 16:
            let u: uuid_t = (b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15])
            return .guid(UUID(uuid: u))
        case .datetime2(let days, let ticks): return .datetime(days: days, ticks: Int64(ticks))
        case .date(let days): return .datetime(days: days, ticks: 0)
        default: return .string(String(describing: v))
        }
    }

    /// sp_prepare/sp_prepexec return the new handle as an OUTPUT parameter.
    static func writeHandleReturnValue(_ handle: Int32, name: String, into buffer: inout ByteBuffer) {
        TDSToken.returnValue(ReturnValue(ordinal: 0, name: name, status: 0x01, type: .intN(length: 4), value: .int(Int64(handle))))
            .write(into: &buffer)
    }
}
