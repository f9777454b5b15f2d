import NIOCore
import TDS

/// TLS handshake records travel inside PRELOGIN packets in TDS 7.x, in both directions;
/// each flight is one message, EOM on its last packet.
enum HandshakeFraming {
    static func wrap(_ records: ByteBuffer, packetID: inout UInt8, allocator: ByteBufferAllocator) -> ByteBuffer {
        var records = records
        var out = allocator.buffer(capacity: records.readableBytes + 64)
        let maxPayload = 4096 - TDSPacketHeader.size
        repeat {
            let n = min(maxPayload, records.readableBytes)
            let last = n == records.readableBytes
            TDSPacketHeader(type: .prelogin, status: last ? .endOfMessage : [], length: UInt16(n + TDSPacketHeader.size),
                            spid: 0, packetID: packetID, window: 0).write(into: &out)
            packetID &+= 1
            var slice = records.readSlice(length: n)!
            out.writeBuffer(&slice)
        } while records.readableBytes > 0
        return out
    }
}
