import NIOCore
import Testing
@testable import AzureEmulator

@Suite("RowGenerator: pre-encoded rows with their ids")
struct RowGeneratorTests {
    @Test func everyRowIsTheTemplateWithItsOwnID() {
        var buffer = ByteBuffer()
        buffer.writeBytes([0xAA, 0xBB])  // rows go after whatever is pending
        let first = 4_999, count = RowGenerator.blockRows * 2 + 123
        RowGenerator.write(first: first, count: count, into: &buffer)
        let size = RowGenerator.rowSize
        #expect(buffer.readableBytes == 2 + count * size)
        #expect(buffer.readBytes(length: 2) == [0xAA, 0xBB])
        for i in 0..<count {
            var expected = RowGenerator.template
            withUnsafeBytes(of: Int64(first + i).littleEndian) { expected.replaceSubrange(2..<10, with: $0) }
            guard buffer.readBytes(length: size) == expected else {
                Issue.record("row \(i) differs")
                return
            }
        }
    }
}
