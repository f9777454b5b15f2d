import NIOCore
import TDS

/// Cuts a reply that is produced piece by piece into TDS packets of the negotiated size,
/// so large results stream out without being assembled first. The last packet carries EOM.
public struct StreamingPacketWriter: Sendable {
    public let packetSize: Int
    public let type: TDSPacketType
    public var spid: UInt16
    private var payload: ByteBuffer
    private var packetID: UInt8 = 1

    public init(type: TDSPacketType = .tabularResult, packetSize: Int, spid: UInt16 = 0, allocator: ByteBufferAllocator = ByteBufferAllocator()) {
        self.type = type
        self.packetSize = max(512, packetSize)
        self.spid = spid
        self.payload = allocator.buffer(capacity: self.packetSize)
    }

    /// Token bytes waiting to be packed; writers append here.
    public var pending: ByteBuffer {
        get { payload }
        _modify { yield &payload }
    }

    /// Appends whole packets for everything except a possibly partial tail.
    public mutating func drainFullPackets(into out: inout ByteBuffer) {
        let chunk = packetSize - TDSPacketHeader.size
        while payload.readableBytes > chunk {
            emit(length: chunk, last: false, into: &out)
        }
    }

    /// Appends the remaining bytes as the final packet(s), EOM on the last.
    public mutating func finish(into out: inout ByteBuffer) {
        drainFullPackets(into: &out)
        emit(length: payload.readableBytes, last: true, into: &out)
        payload.clear()
        packetID = 1
    }

    private mutating func emit(length: Int, last: Bool, into out: inout ByteBuffer) {
        TDSPacketHeader(type: type, status: last ? .endOfMessage : [], length: UInt16(length + TDSPacketHeader.size),
                        spid: spid, packetID: packetID, window: 0).write(into: &out)
        packetID &+= 1
        var slice = payload.readSlice(length: length)!
        out.writeBuffer(&slice)
        if payload.readerIndex > 65_536 { payload.discardReadBytes() }
    }
}
