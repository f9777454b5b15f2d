import NIOCore

/// The byte stream of one direction cut into packets and joined into messages: the logic of
/// the framing handler, without a channel. Bytes arrive in any split; a packet is taken only
/// when whole, a message only at its EOM packet. After the first error the stream is dead:
/// later bytes are dropped, not buffered, so a peer that keeps sending costs nothing.
public struct TDSMessageFramer: Sendable {
    public enum Output: Sendable {
        /// A packet as it arrived (only with `reportsPackets`), before the message it belongs to.
        case packet(TDSPacket)
        case message(TDSMessage)
    }

    private var cumulation: ByteBuffer?
    private var assembler: TDSMessageAssembler
    public let maxPacketSize: Int
    public let reportsPackets: Bool
    public private(set) var failed = false

    public init(maxMessageSize: @escaping TDSMessageSizeCap, maxPacketSize: Int = 32_768, reportsPackets: Bool = false) {
        self.assembler = TDSMessageAssembler(maxMessageSize: maxMessageSize)
        self.maxPacketSize = maxPacketSize
        self.reportsPackets = reportsPackets
    }

    /// Bytes held for an incomplete packet.
    public var bufferedBytes: Int { cumulation?.readableBytes ?? 0 }

    /// Bytes of the message being assembled (whole packets only).
    public var pendingMessageBytes: Int { assembler.pendingBytes }

    /// Takes the next bytes; returns what became whole, in order, and the error that ended
    /// the stream if these bytes broke it (a bad header, an oversized message). What came
    /// whole before the error is still returned: the caller handles it, then the error.
    public mutating func receive(_ bytes: ByteBuffer) -> (outputs: [Output], error: TDSDecodingError?) {
        guard !failed else { return ([], nil) }
        var buffer: ByteBuffer
        if var held = cumulation {
            cumulation = nil
            var more = bytes
            held.writeBuffer(&more)
            buffer = held
        } else {
            buffer = bytes
        }
        var out: [Output] = []
        do {
            while let packet = try TDSPacket.read(from: &buffer, maxPacketSize: maxPacketSize) {
                if reportsPackets { out.append(.packet(packet)) }
                if let message = try assembler.append(packet) { out.append(.message(message)) }
            }
        } catch {
            failed = true
            assembler.reset()
            return (out, error as? TDSDecodingError ?? TDSDecodingError(field: "TDS packet", reason: "\(error)"))
        }
        if buffer.readableBytes > 0 {
            buffer.discardReadBytes()
            cumulation = buffer
        }
        return (out, nil)
    }

    /// Bytes not yet framed, for whoever reads the stream next (the relay, the SMP layer).
    public mutating func takeUnframed() -> ByteBuffer? {
        defer { cumulation = nil }
        guard let rest = cumulation, rest.readableBytes > 0 else { return nil }
        return rest
    }
}
