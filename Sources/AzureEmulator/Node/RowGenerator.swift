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

    /// `blockRows` rows stamped once; a chunk of rows is one copy of (part of) it, then the
    /// ids are patched in place. Stamping row by row cost more CPU than the TLS that follows.
    static let blockRows = 2_000
    static let block: [UInt8] = Array((0..<blockRows).map { _ in template }.joined())

    /// Writes rows with ids `first ..< first + count`.
    static func write(first: Int, count: Int, into buffer: inout ByteBuffer) {
        let size = template.count
        var done = 0
        while done < count {
            let n = min(count - done, blockRows)
            let base = first + done
            buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: n * size) { out in
                block.withUnsafeBytes { src in
                    out.baseAddress!.copyMemory(from: src.baseAddress!, byteCount: n * size)
                }
                for i in 0..<n {
                    out.storeBytes(of: Int64(base + i).littleEndian, toByteOffset: i * size + 2, as: Int64.self)
                }
                return n * size
            }
            done += n
        }
    }
}
