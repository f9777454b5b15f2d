import Foundation
import NIOCore
import TDS

/// The emulator's replies as TDS token bytes. Every token layout lives in the TDS library;
/// this file only decides which tokens a reply carries, in the order SQL Server sends them.
enum ReplyEncoding {
    /// SQL_Latin1_General_CP1_CI_AS, the Azure SQL default.
    static let collation: [UInt8] = [0x09, 0x04, 0xD0, 0x00, 0x34]

    static func done(_ kind: DoneKind, status: DoneStatus = [], rowCount: Int? = nil, into buffer: inout ByteBuffer) {
        var s = status
        if rowCount != nil { s.insert(.count) }
        let d = Done(status: s, currentCommand: rowCount != nil ? 0xC1 : 0, rowCount: UInt64(rowCount ?? 0))
        switch kind {
        case .done: TDSToken.done(d).write(into: &buffer)
        case .doneProc: TDSToken.doneProc(d).write(into: &buffer)
        case .doneInProc: TDSToken.doneInProc(d).write(into: &buffer)
        }
    }

    enum DoneKind { case done, doneProc, doneInProc }

    static func error(_ number: Int32, severity: UInt8, state: UInt8 = 1, message: String, server: String, into buffer: inout ByteBuffer) {
        TDSToken.error(ServerMessage(number: number, state: state, severity: severity, message: message,
                                     serverName: server, procedureName: "", lineNumber: 1)).write(into: &buffer)
    }

    static func info(_ number: Int32, message: String, server: String, into buffer: inout ByteBuffer) {
        TDSToken.info(ServerMessage(number: number, state: 1, severity: 0, message: message,
                                    serverName: server, procedureName: "", lineNumber: 1)).write(into: &buffer)
    }

    static func tdsType(_ t: SQLType) -> TDSTypeInfo {
        switch t {
        case .int: return .intN(length: 4)
        case .bigint: return .intN(length: 8)
        case .smallint: return .intN(length: 2)
        case .tinyint: return .intN(length: 1)
        case .bit: return .bitN
        case .float: return .floatN(length: 8)
        case .decimal(let p, let s): return .decimal(precision: UInt8(p), scale: UInt8(s), length: 17)
        case .nvarchar(let n): return .nvarchar(maxLength: n.map { UInt16(min($0, 4000) * 2) } ?? 0xFFFF, collation: collation)
        case .varchar(let n): return .varchar(maxLength: n.map { UInt16(min($0, 8000)) } ?? 0xFFFF, collation: collation)
        case .varbinary(let n): return .varbinary(maxLength: n.map { UInt16(min($0, 8000)) } ?? 0xFFFF)
        case .datetime2(let scale): return .datetime2(scale: UInt8(scale))
        case .uniqueidentifier: return .uniqueidentifier
        }
    }

    static func tdsValue(_ v: SQLValue, _ t: SQLType) -> TDSValue {
        switch v {
        case .null: return .null
        case .int(let i): return .int(i)
        case .bit(let b): return .bit(b)
        case .float(let d): return .float(d)
        case .decimal(let s): return decimalValue(s, t)
        case .string(let s): return .string(s)
        case .bytes(let b): return .bytes(b)
        case .guid(let u): return .guid(guidWireBytes(u))
        case .datetime(let days, let ticks):
            let scale: Int
            if case .datetime2(let sc) = t { scale = sc } else { scale = 7 }
            var div: Int64 = 1
            for _ in 0..<(7 - scale) { div *= 10 }
            return .datetime2(days: days, ticks: UInt64(ticks / div))
        }
    }

    /// SQL Server writes the first three GUID groups little-endian.
    static func guidWireBytes(_ u: UUID) -> [UInt8] {
        let b = withUnsafeBytes(of: u.uuid) { Array($0) }
        return [b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6]] + b[8...]
    }

    static func decimalValue(_ text: String, _ t: SQLType) -> TDSValue {
        var scale = 10
        if case .decimal(_, let sc) = t { scale = sc }
        guard let d = TDSDecimal(text, scale: UInt8(scale)) else { return .null }
        return .decimal(d)
    }

    static func columns(_ cols: [SQLResultColumn]) -> [TDSColumn] {
        cols.map { c in
            // 0x08 = updateable unknown; 0x01 = nullable.
            TDSColumn(name: c.name, type: tdsType(c.type), flags: c.nullable ? 0x0009 : 0x0008, userType: 0)
        }
    }

    static func rows(_ cols: [SQLResultColumn], _ rows: [[SQLValue]], into buffer: inout ByteBuffer) {
        let tdsCols = columns(cols)
        TDSToken.colMetadata(tdsCols).write(into: &buffer)
        for r in rows {
            let values = zip(r, cols).map { tdsValue($0, $1.type) }
            TDSToken.row(values).write(into: &buffer, columns: tdsCols)
        }
    }

    static func envChange(_ e: EnvChange, into buffer: inout ByteBuffer) {
        TDSToken.envChange(e).write(into: &buffer)
    }
}
