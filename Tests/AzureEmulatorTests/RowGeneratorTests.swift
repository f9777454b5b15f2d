import NIOCore
import TDS
import TDSNIO
import Testing
@testable import AzureEmulator

@Suite("RowGenerator: pre-encoded rows with their ids, straight into packets")
struct RowGeneratorTests {
    /// Rows after pending tokens, cut into 512-byte packets (ids split across packets
    /// included), read back: every row is the template with its own id.
    @Test(arguments: [512, 4096, 8000])
    func everyRowIsTheTemplateWithItsOwnID(packetSize: Int) throws {
        var writer = StreamingPacketWriter(packetSize: packetSize, spid: 51)
        writer.pending.writeBytes([0xAA, 0xBB])  // rows go after whatever is pending
        let first = 4_999, size = RowGenerator.rowSize
        var out = ByteBuffer()
        var next = first
        for count in [RowGenerator.blockRows * 2 + 123, 1, 7, 800] {
            let start = next
            writer.append(generated: count * size, into: &out) { RowGenerator.fill($0, offset: $1, first: start) }
            next += count
        }
        writer.pending.writeBytes([0xFD])
        writer.finish(into: &out)

        var stream = ByteBuffer()
        var packets = 0
        while out.readableBytes > 0 {
            let packet = try #require(try TDSPacket.read(from: &out, maxPacketSize: packetSize))
            let header = packet.header
            let last = out.readableBytes == 0
            #expect(Int(header.length) <= packetSize)
            #expect(header.status.contains(.endOfMessage) == last)
            #expect(header.packetID == UInt8(truncatingIfNeeded: packets + 1))
            if !last { #expect(Int(header.length) == packetSize) }
            var body = packet.payload
            stream.writeBuffer(&body)
            packets += 1
        }
        #expect(stream.readBytes(length: 2) == [0xAA, 0xBB])
        for i in 0..<(next - first) {
            var expected = RowGenerator.template
            withUnsafeBytes(of: Int64(first + i).littleEndian) { expected.replaceSubrange(2..<10, with: $0) }
            guard stream.readBytes(length: size) == expected else {
                Issue.record("row \(i) differs")
                return
            }
        }
        #expect(stream.readBytes(length: stream.readableBytes) == [0xFD])
    }
}
