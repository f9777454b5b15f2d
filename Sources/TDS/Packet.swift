import NIOCore

public struct TDSPacket: Sendable {
    public var header: TDSPacketHeader
    public var payload: ByteBuffer

    public init(header: TDSPacketHeader, payload: ByteBuffer) {
        self.header = header
        self.payload = payload
    }

    /// Reads one whole packet if available (nil if incomplete); throws if header length < 8 or > maxPacketSize.
    public static func read(from buffer: inout ByteBuffer, maxPacketSize: Int) throws -> TDSPacket? {
        guard let header = try TDSPacketHeader.peek(from: buffer) else { return nil }
        let length = Int(header.length)
        guard length <= maxPacketSize else {
            throw TDSDecodingError(field: "TDS header.Length", reason: "packet length \(length) exceeds maximum \(maxPacketSize)")
        }
        guard buffer.readableBytes >= length else { return nil }
        buffer.moveReaderIndex(forwardBy: TDSPacketHeader.size)
        let payload = buffer.readSlice(length: length - TDSPacketHeader.size) ?? ByteBuffer()
        return TDSPacket(header: header, payload: payload)
    }

    /// Header (with its length fixed up to match the payload) followed by the payload.
    public func write(into buffer: inout ByteBuffer) {
        var h = header
        h.length = UInt16(clamping: TDSPacketHeader.size + payload.readableBytes)
        h.write(into: &buffer)
        buffer.writeImmutableBuffer(payload)
    }
}

public struct TDSMessage: Sendable {
    public var type: TDSPacketType
    /// First packet's status minus EOM (the reset flags), plus IGNORE if the last packet carried it.
    public var status: TDSPacketStatus
    public var payload: ByteBuffer

    public init(type: TDSPacketType, status: TDSPacketStatus = [], payload: ByteBuffer) {
        self.type = type
        self.status = status
        self.payload = payload
    }

    /// Splits into packets of at most `packetSize` bytes (header included), EOM on the last,
    /// packet ids from firstPacketID wrapping at 255->0. An empty payload is one header-only packet.
    /// Reset flags go on the first packet only (MS-TDS 2.2.3.1.2); IGNORE goes on the last.
    public func writePackets(into buffer: inout ByteBuffer, packetSize: Int, spid: UInt16 = 0, firstPacketID: UInt8 = 1) {
        // A packet must carry at least one payload byte and its length must fit 16 bits.
        let size = min(max(packetSize, TDSPacketHeader.size + 1), Int(UInt16.max))
        let chunk = size - TDSPacketHeader.size
        var remaining = payload
        var packetID = firstPacketID
        var first = true
        let resetFlags = status.subtracting([.endOfMessage, .ignore])
        repeat {
            let n = min(chunk, remaining.readableBytes)
            let part = remaining.readSlice(length: n) ?? ByteBuffer()
            var st: TDSPacketStatus = first ? resetFlags : []
            if remaining.readableBytes == 0 {
                st.insert(.endOfMessage)
                if status.contains(.ignore) { st.insert(.ignore) }
            }
            let header = TDSPacketHeader(
                type: type, status: st, length: UInt16(TDSPacketHeader.size + n),
                spid: spid, packetID: packetID, window: 0)
            header.write(into: &buffer)
            buffer.writeImmutableBuffer(part)
            packetID = packetID &+ 1
            first = false
        } while remaining.readableBytes > 0
    }
}
