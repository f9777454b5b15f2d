import NIOCore

/// The largest message a peer may send, by message type.
public typealias TDSMessageSizeCap = @Sendable (TDSPacketType) -> Int

/// Per-type message caps for what a client may send.
public enum TDSMessageCaps {
    /// PRELOGIN: real drivers send 40-100 bytes (five to eight options); one packet of the
    /// default 4 KiB size leaves room for anything legitimate. The TLS handshake records
    /// that travel in PRELOGIN packets never get here: the transport unwraps them.
    public static let prelogin = 4096
    /// LOGIN7: 128 KiB - 1 by MS-TDS 2.2.6.4 (the Length field's own limit).
    public static let login7 = Login7.maxLength
    /// SSPI: one SPNEGO/Kerberos leg; Windows' MaxTokenSize tops out at 65,535.
    public static let sspi = Int(UInt16.max)
    /// FEDAUTH token message (0x08): a token of up to 64 Ki characters in UTF-16LE, its two
    /// u32 lengths and the 32-byte nonce (MS-TDS 2.2.6.3).
    public static let federatedAuthToken = 2 * 64 * 1024 + 40
    /// Anything else before login is refused once it is whole: one packet of the largest
    /// size is enough for the session to name it.
    public static let otherBeforeLogin = 32_768

    /// What a client may send before its login completes. (The client pipeline carries
    /// nothing else: the relay takes the connection over after login.)
    @Sendable public static func clientBeforeLogin(_ type: TDSPacketType) -> Int {
        switch type {
        case .prelogin: return prelogin
        case .login7: return login7
        case .sspi: return sspi
        case .federatedAuthToken: return federatedAuthToken
        default: return otherBeforeLogin
        }
    }
}

/// Joins packets into messages with a hard size cap per message type, so a peer cannot
/// make us buffer without bound.
public struct TDSMessageAssembler: Sendable {
    public let maxMessageSize: TDSMessageSizeCap
    private var type: TDSPacketType?
    private var cap = 0
    private var status: TDSPacketStatus = []
    private var payload = ByteBuffer()
    public private(set) var packetCount = 0

    /// One cap for every message type.
    public init(maxMessageSize: Int) {
        self.maxMessageSize = { _ in maxMessageSize }
    }

    public init(maxMessageSize: @escaping TDSMessageSizeCap) {
        self.maxMessageSize = maxMessageSize
    }

    /// True while a message has started but its EOM packet has not arrived.
    public var isAssembling: Bool { type != nil }

    /// Bytes of the message assembled so far.
    public var pendingBytes: Int { payload.readableBytes }

    /// Returns the message when the packet carries EOM; throws when the message would exceed
    /// the cap for its type or the packet type changes mid-message.
    public mutating func append(_ packet: TDSPacket) throws -> TDSMessage? {
        if let current = type, current != packet.header.type {
            reset()
            throw TDSDecodingError(
                field: "TDS message",
                reason: "packet type changed from \(current) to \(packet.header.type) before end of message")
        }
        let limit = type == nil ? maxMessageSize(packet.header.type) : cap
        let newSize = payload.readableBytes + packet.payload.readableBytes
        guard newSize <= limit else {
            reset()
            throw TDSDecodingError(
                field: "TDS message",
                reason: "a \(packet.header.type) message reached \(newSize) bytes, more than the \(limit) allowed")
        }
        if type == nil {
            type = packet.header.type
            cap = limit
            status = packet.header.status.subtracting([.endOfMessage, .ignore])
            payload = ByteBuffer()
            payload.reserveCapacity(packet.payload.readableBytes)
        }
        payload.writeImmutableBuffer(packet.payload)
        packetCount += 1
        guard packet.header.status.contains(.endOfMessage) else { return nil }
        var st = status
        if packet.header.status.contains(.ignore) { st.insert(.ignore) }
        let message = TDSMessage(type: packet.header.type, status: st, payload: payload)
        reset()
        return message
    }

    public mutating func reset() {
        type = nil
        cap = 0
        status = []
        payload = ByteBuffer()
        packetCount = 0
    }
}
