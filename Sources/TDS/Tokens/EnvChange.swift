import NIOCore

/// ENVCHANGE (0xE3) notifications.
public enum EnvChange: Hashable, Sendable {
    case database(new: String, old: String)
    case language(new: String, old: String)
    case charset(new: String, old: String)
    /// Decimal strings, e.g. "8000".
    case packetSize(new: String, old: String)
    case unicodeSortLocale(new: String, old: String)
    case unicodeComparisonFlags(new: String, old: String)
    /// 5-byte collations (B_VARBYTE).
    case collation(new: [UInt8], old: [UInt8])
    /// 8-byte transaction descriptors; empty when absent.
    case beginTransaction(new: [UInt8], old: [UInt8])
    case commitTransaction(new: [UInt8], old: [UInt8])
    case rollbackTransaction(new: [UInt8], old: [UInt8])
    case enlistDTCTransaction(new: [UInt8], old: [UInt8])
    case defectTransaction(new: [UInt8], old: [UInt8])
    case mirroringPartner(new: String, old: String)
    /// New value is L_VARBYTE (u32 length).
    case promoteTransaction(new: [UInt8], old: [UInt8])
    case transactionManagerAddress(new: [UInt8], old: [UInt8])
    case transactionEnded(new: [UInt8], old: [UInt8])
    case resetConnectionAck
    case userInstance(new: String, old: String)
    /// Type 20: protocol 0 = TCP, port, alternate server.
    case routing(protocol: UInt8, port: UInt16, server: String)
    /// Type 21 (?): routing plus a database name; framed like type 20 with a second US_VARCHAR.
    case enhancedRouting(protocol: UInt8, port: UInt16, server: String, database: String)
    /// Anything else, kept raw (the bytes after the type byte).
    case other(type: UInt8, data: [UInt8])

    public var type: UInt8 {
        switch self {
        case .database: return 1
        case .language: return 2
        case .charset: return 3
        case .packetSize: return 4
        case .unicodeSortLocale: return 5
        case .unicodeComparisonFlags: return 6
        case .collation: return 7
        case .beginTransaction: return 8
        case .commitTransaction: return 9
        case .rollbackTransaction: return 10
        case .enlistDTCTransaction: return 11
        case .defectTransaction: return 12
        case .mirroringPartner: return 13
        case .promoteTransaction: return 15
        case .transactionManagerAddress: return 16
        case .transactionEnded: return 17
        case .resetConnectionAck: return 18
        case .userInstance: return 19
        case .routing: return 20
        case .enhancedRouting: return 21
        case .other(let t, _): return t
        }
    }

    func writeBody(into b: inout ByteBuffer) {
        b.writeInteger(type)
        switch self {
        case let .database(n, o), let .language(n, o), let .charset(n, o), let .packetSize(n, o),
            let .unicodeSortLocale(n, o), let .unicodeComparisonFlags(n, o), let .mirroringPartner(n, o),
            let .userInstance(n, o):
            b.tdsWriteBVarchar(n)
            b.tdsWriteBVarchar(o)
        case let .collation(n, o), let .beginTransaction(n, o), let .commitTransaction(n, o),
            let .rollbackTransaction(n, o), let .enlistDTCTransaction(n, o), let .defectTransaction(n, o),
            let .transactionManagerAddress(n, o), let .transactionEnded(n, o):
            b.tdsWriteBVarbyte(n)
            b.tdsWriteBVarbyte(o)
        case let .promoteTransaction(n, o):
            b.tdsWriteU32LE(UInt32(truncatingIfNeeded: n.count))
            b.writeBytes(n)
            b.tdsWriteBVarbyte(o)
        case .resetConnectionAck:
            b.writeInteger(UInt8(0))
            b.writeInteger(UInt8(0))
        case let .routing(proto, port, server):
            var v = ByteBuffer()
            v.writeInteger(proto)
            v.tdsWriteU16LE(port)
            v.tdsWriteUSVarchar(server)
            b.tdsWriteU16LE(UInt16(truncatingIfNeeded: v.readableBytes))
            b.writeBuffer(&v)
            b.tdsWriteU16LE(0)
        case let .enhancedRouting(proto, port, server, database):
            var v = ByteBuffer()
            v.writeInteger(proto)
            v.tdsWriteU16LE(port)
            v.tdsWriteUSVarchar(server)
            v.tdsWriteUSVarchar(database)
            b.tdsWriteU16LE(UInt16(truncatingIfNeeded: v.readableBytes))
            b.writeBuffer(&v)
            b.tdsWriteU16LE(0)
        case let .other(_, data):
            b.writeBytes(data)
        }
    }

    /// `body` is the whole token body (after the u16 length).
    static func read(body: ByteBuffer) throws -> EnvChange {
        var b = body
        let type = try b.tdsU8("ENVCHANGE.Type")
        let raw = b
        let f = "ENVCHANGE[\(type)]"
        func strings() throws -> (String, String) {
            (try b.tdsBVarchar(f + ".NewValue"), try b.tdsBVarchar(f + ".OldValue"))
        }
        func bytes() throws -> ([UInt8], [UInt8]) {
            (try b.tdsBVarbyte(f + ".NewValue"), try b.tdsBVarbyte(f + ".OldValue"))
        }
        let result: EnvChange
        switch type {
        case 1: let (n, o) = try strings(); result = .database(new: n, old: o)
        case 2: let (n, o) = try strings(); result = .language(new: n, old: o)
        case 3: let (n, o) = try strings(); result = .charset(new: n, old: o)
        case 4: let (n, o) = try strings(); result = .packetSize(new: n, old: o)
        case 5: let (n, o) = try strings(); result = .unicodeSortLocale(new: n, old: o)
        case 6: let (n, o) = try strings(); result = .unicodeComparisonFlags(new: n, old: o)
        case 7: let (n, o) = try bytes(); result = .collation(new: n, old: o)
        case 8: let (n, o) = try bytes(); result = .beginTransaction(new: n, old: o)
        case 9: let (n, o) = try bytes(); result = .commitTransaction(new: n, old: o)
        case 10: let (n, o) = try bytes(); result = .rollbackTransaction(new: n, old: o)
        case 11: let (n, o) = try bytes(); result = .enlistDTCTransaction(new: n, old: o)
        case 12: let (n, o) = try bytes(); result = .defectTransaction(new: n, old: o)
        case 13: let (n, o) = try strings(); result = .mirroringPartner(new: n, old: o)
        case 15:
            let length = try b.tdsU32LE(f + ".NewValue.Length")
            let n = try b.tdsBytes(f + ".NewValue", count: Int(length))
            let o = try b.tdsBVarbyte(f + ".OldValue")
            result = .promoteTransaction(new: n, old: o)
        case 16: let (n, o) = try bytes(); result = .transactionManagerAddress(new: n, old: o)
        case 17: let (n, o) = try bytes(); result = .transactionEnded(new: n, old: o)
        case 18:
            let (n, o) = try bytes()
            guard n.isEmpty, o.isEmpty else { return .other(type: type, data: raw.getBytes(at: raw.readerIndex, length: raw.readableBytes) ?? []) }
            result = .resetConnectionAck
        case 19: let (n, o) = try strings(); result = .userInstance(new: n, old: o)
        case 20, 21:
            let length = Int(try b.tdsU16LE(f + ".NewValue.Length"))
            var v = try b.tdsSlice(f + ".NewValue", count: length)
            let proto = try v.tdsU8(f + ".Protocol")
            let port = try v.tdsU16LE(f + ".ProtocolProperty")
            let server = try v.tdsUSVarchar(f + ".AlternateServer")
            let old = Int(try b.tdsU16LE(f + ".OldValue.Length"))
            try b.tdsSkip(f + ".OldValue", count: old)
            if type == 20 {
                guard v.readableBytes == 0, old == 0 else { return .other(type: type, data: raw.getBytes(at: raw.readerIndex, length: raw.readableBytes) ?? []) }
                result = .routing(protocol: proto, port: port, server: server)
            } else {
                let database = try v.tdsUSVarchar(f + ".AlternateDatabase")
                guard v.readableBytes == 0, old == 0 else { return .other(type: type, data: raw.getBytes(at: raw.readerIndex, length: raw.readableBytes) ?? []) }
                result = .enhancedRouting(protocol: proto, port: port, server: server, database: database)
            }
        default:
            return .other(type: type, data: b.tdsRest())
        }
        // Extra bytes would be lost on re-encoding: keep such a change raw instead.
        guard b.readableBytes == 0 else {
            return .other(type: type, data: raw.getBytes(at: raw.readerIndex, length: raw.readableBytes) ?? [])
        }
        return result
    }
}
