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

    /// Bytes `offset ..< offset + target.count` of the rows with ids `first...`, for
    /// `StreamingPacketWriter.append(generated:)`: rows land straight in their packets,
    /// split wherever a packet ends (ids included).
    static func fill(_ target: UnsafeMutableRawBufferPointer, offset: Int, first: Int) {
        let size = template.count
        let blockBytes = blockRows * size
        block.withUnsafeBytes { src in
            var done = 0
            while done < target.count {
                let at = (offset + done) % blockBytes
                let n = min(target.count - done, blockBytes - at)
                (target.baseAddress! + done).copyMemory(from: src.baseAddress! + at, byteCount: n)
                done += n
            }
        }
        // Patch every id whose 8 bytes (at 2 ..< 10 in its row) overlap the range.
        let end = offset + target.count
        var row = offset / size
        while row * size + 2 < end {
            let idStart = row * size + 2
            if idStart + 8 > offset {
                withUnsafeBytes(of: Int64(first + row).littleEndian) { id in
                    let from = max(idStart, offset), to = min(idStart + 8, end)
                    (target.baseAddress! + (from - offset)).copyMemory(from: id.baseAddress! + (from - idStart), byteCount: to - from)
                }
            }
            row += 1
        }
    }
}
