import NIOCore

public struct TDSPacketType: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let sqlBatch = TDSPacketType(rawValue: 0x01)
    public static let preTDS7Login = TDSPacketType(rawValue: 0x02)
    public static let rpc = TDSPacketType(rawValue: 0x03)
    public static let tabularResult = TDSPacketType(rawValue: 0x04)
    public static let attention = TDSPacketType(rawValue: 0x06)
    public static let bulkLoad = TDSPacketType(rawValue: 0x07)
    public static let federatedAuthToken = TDSPacketType(rawValue: 0x08)
    public static let transactionManager = TDSPacketType(rawValue: 0x0E)
    public static let login7 = TDSPacketType(rawValue: 0x10)
    public static let sspi = TDSPacketType(rawValue: 0x11)
    public static let prelogin = TDSPacketType(rawValue: 0x12)

    public var description: String {
        switch self {
        case .sqlBatch: return "SQLBatch"
        case .preTDS7Login: return "PreTDS7Login"
        case .rpc: return "RPC"
        case .tabularResult: return "TabularResult"
        case .attention: return "Attention"
        case .bulkLoad: return "BulkLoad"
        case .federatedAuthToken: return "FedAuthToken"
        case .transactionManager: return "TransactionManager"
        case .login7: return "Login7"
        case .sspi: return "SSPI"
        case .prelogin: return "Prelogin"
        default: return "Unknown(0x\(String(rawValue, radix: 16)))"
        }
    }
}

public struct TDSPacketStatus: OptionSet, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let endOfMessage = TDSPacketStatus(rawValue: 0x01)
    /// Client: ignore this message. Server: attention acknowledgement.
    public static let ignore = TDSPacketStatus(rawValue: 0x02)
    public static let resetConnection = TDSPacketStatus(rawValue: 0x08)
    public static let resetConnectionSkipTransaction = TDSPacketStatus(rawValue: 0x10)
}

public struct TDSPacketHeader: Hashable, Sendable {
    public static let size = 8

    public var type: TDSPacketType
    public var status: TDSPacketStatus
    /// Whole packet length, header included (big-endian on the wire).
    public var length: UInt16
    public var spid: UInt16
    public var packetID: UInt8
    public var window: UInt8

    public init(
        type: TDSPacketType,
        status: TDSPacketStatus = .endOfMessage,
        length: UInt16 = UInt16(TDSPacketHeader.size),
        spid: UInt16 = 0,
        packetID: UInt8 = 1,
        window: UInt8 = 0
    ) {
        self.type = type
        self.status = status
        self.length = length
        self.spid = spid
        self.packetID = packetID
        self.window = window
    }

    /// Looks at the next header without consuming it; nil when fewer than 8 bytes are readable.
    public static func peek(from buffer: ByteBuffer) throws -> TDSPacketHeader? {
        guard buffer.readableBytes >= size else { return nil }
        var b = buffer
        let type = try b.tdsU8("TDS header.Type")
        let status = try b.tdsU8("TDS header.Status")
        let length = try b.tdsU16BE("TDS header.Length")
        let spid = try b.tdsU16BE("TDS header.SPID")
        let packetID = try b.tdsU8("TDS header.PacketID")
        let window = try b.tdsU8("TDS header.Window")
        guard length >= size else {
            throw TDSDecodingError(field: "TDS header.Length", reason: "length \(length) is smaller than the 8-byte header")
        }
        return TDSPacketHeader(
            type: TDSPacketType(rawValue: type), status: TDSPacketStatus(rawValue: status),
            length: length, spid: spid, packetID: packetID, window: window)
    }

    public func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(type.rawValue)
        buffer.writeInteger(status.rawValue)
        buffer.writeInteger(length, endianness: .big)
        buffer.writeInteger(spid, endianness: .big)
        buffer.writeInteger(packetID)
        buffer.writeInteger(window)
    }
}
