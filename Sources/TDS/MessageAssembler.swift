import NIOCore

/// Joins packets into messages with a hard size cap, so a peer cannot make us buffer without bound.
public struct TDSMessageAssembler: Sendable {
    public let maxMessageSize: Int
    private var type: TDSPacketType?
    private var status: TDSPacketStatus = []
    private var payload = ByteBuffer()
    public private(set) var packetCount = 0

    public init(maxMessageSize: Int) {
        self.maxMessageSize = maxMessageSize
    }

    /// True while a message has started but its EOM packet has not arrived.
    public var isAssembling: Bool { type != nil }

    /// Bytes of the message assembled so far.
    public var pendingBytes: Int { payload.readableBytes }

    /// Returns the message when the packet carries EOM; throws when the message would exceed
    /// maxMessageSize or the packet type changes mid-message.
    public mutating func append(_ packet: TDSPacket) throws -> TDSMessage? {
        if let current = type, current != packet.header.type {
            reset()
            throw TDSDecodingError(
                field: "TDS message",
                reason: "packet type changed from \(current) to \(packet.header.type) before end of message")
        }
        let newSize = payload.readableBytes + packet.payload.readableBytes
        guard newSize <= maxMessageSize else {
            reset()
            throw TDSDecodingError(
                field: "TDS message", reason: "message size \(newSize) exceeds maximum \(maxMessageSize)")
        }
        if type == nil {
            type = packet.header.type
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
        status = []
        payload = ByteBuffer()
        packetCount = 0
    }
}
