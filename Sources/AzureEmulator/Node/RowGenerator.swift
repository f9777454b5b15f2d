import NIOCore
import TDS

/// `SELECT * FROM tdsgate.rows(n)`: rows are stamped from one pre-encoded template, so the
/// emulator can stream faster than any proxy in front of it and never be the bottleneck
/// of a throughput benchmark.
enum RowGenerator {
    static let payloadText = "tdsgate-row-payload-0123456789ab"   // 32 UTF-16 units

    static func metadata(into buffer: inout ByteBuffer) {
        ReplyEncoding.rows(SQLExecutor.generatorColumns, [], into: &buffer)
    }

    /// ROW token: 0xD1, intN(8) length + value, nvarchar length + UTF-16LE text.
    static let template: [UInt8] = {
        var t: [UInt8] = [0xD1, 8]
        t += [UInt8](repeating: 0, count: 8)
        let text = Array(payloadText.utf16)
        let len = UInt16(text.count * 2)
        t += [UInt8(len & 0xFF), UInt8(len >> 8)]
        for u in text { t += [UInt8(u & 0xFF), UInt8(u >> 8)] }
        return t
    }()

    static var rowSize: Int { template.count }

    /// Writes rows with ids `first ..< first + count`.
    static func write(first: Int, count: Int, into buffer: inout ByteBuffer) {
        buffer.reserveCapacity(minimumWritableBytes: count * template.count)
        for id in first..<(first + count) {
            let at = buffer.writerIndex
            buffer.writeBytes(template)
            buffer.setInteger(Int64(id), at: at + 2, endianness: .little)
        }
    }
}
