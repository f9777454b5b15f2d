import NIOCore
import TDS

/// Cuts one direction of a decrypted byte stream into whole TDS packets, and MARS (SMP)
/// frames into the TDS packets they carry, without holding more than one unfinished unit.
/// Pure: the tap handler feeds it what it reads and writes.
struct PacketCutter {
    /// One whole TDS packet; `sid` is the MARS session it travelled on (nil without MARS).
    struct Cut {
        var sid: UInt16?
        var packet: ByteBuffer
    }

    /// Set when the stream stopped looking like TDS or SMP; the cutter then stays quiet
    /// (the relay itself closes such sessions).
    private(set) var lost = false
    private var pending: ByteBuffer?
    /// TDS bytes of an SMP session whose packet continues in its next DATA frame.
    private var smpPartial: [UInt16: ByteBuffer] = [:]

    static let smpID: UInt8 = 0x53
    static let smpHeaderSize = 16
    static let maxUnit = 1 << 20

    /// Bytes of the current unit still to pass over in `skip` mode.
    private var skipRemaining = 0
    /// The start of a unit whose header straddles two reads, in `skip` mode.
    private var skipHeader: [UInt8] = []

    /// Keeps unit boundaries in step without cutting anything: only headers are read, nothing
    /// is copied or allocated (the tap with no observer, which is almost always).
    mutating func skip(_ bytes: ByteBuffer) {
        guard !lost else { return }
        // Coming from `feed` mode: the unfinished unit becomes the one being passed over.
        smpPartial = [:]
        if let p = pending {
            pending = nil
            let need = p.getInteger(at: p.readerIndex, as: UInt8.self) == Self.smpID ? Self.smpHeaderSize : TDSPacketHeader.size
            if p.readableBytes < need {
                skipHeader = p.getBytes(at: p.readerIndex, length: p.readableBytes) ?? []
            } else if let length = unitLength(p) {
                skipRemaining = length - p.readableBytes
            } else {
                lost = true
                return
            }
        }
        let n = bytes.readableBytes
        var i = 0
        while i < n {
            if skipRemaining > 0 {
                let k = min(skipRemaining, n - i)
                i += k
                skipRemaining -= k
                continue
            }
            let first = skipHeader.first ?? bytes.getInteger(at: bytes.readerIndex + i, as: UInt8.self)!
            let need = first == Self.smpID ? Self.smpHeaderSize : TDSPacketHeader.size
            let k = min(need - skipHeader.count, n - i)
            skipHeader += bytes.getBytes(at: bytes.readerIndex + i, length: k)!
            i += k
            guard skipHeader.count == need else { break }
            guard let length = unitLength(ByteBuffer(bytes: skipHeader)) else {
                lost = true
                return
            }
            skipRemaining = length - need
            skipHeader = []
        }
    }

    /// Holds nothing unfinished: a whole TDS packet fed now comes back as itself.
    var isIdle: Bool { !lost && pending == nil && skipRemaining == 0 && skipHeader.isEmpty }

    mutating func feed(_ bytes: ByteBuffer) -> [Cut] {
        guard !lost else { return [] }
        var buffer = bytes
        // Coming from `skip` mode: finish passing over the unit it was in, and start cutting
        // at the next boundary.
        if skipRemaining > 0 {
            let k = min(skipRemaining, buffer.readableBytes)
            buffer.moveReaderIndex(forwardBy: k)
            skipRemaining -= k
            if skipRemaining > 0 { return [] }
        }
        if !skipHeader.isEmpty {
            pending = ByteBuffer(bytes: skipHeader)
            skipHeader = []
        }
        var cuts: [Cut] = []
        // Complete the unit left over from the last read with only the bytes it lacks, so a
        // large read is never copied whole.
        if var p = pending {
            while buffer.readableBytes > 0 {
                let header = p.getInteger(at: p.readerIndex, as: UInt8.self) == Self.smpID ? Self.smpHeaderSize : TDSPacketHeader.size
                let target: Int
                if p.readableBytes < header {
                    target = header
                } else if let length = unitLength(p) {
                    target = length
                } else {
                    lost = true
                    return []
                }
                if p.readableBytes >= target { break }
                var more = buffer.readSlice(length: min(target - p.readableBytes, buffer.readableBytes))!
                p.writeBuffer(&more)
            }
            guard let length = unitLength(p), p.readableBytes >= max(length, TDSPacketHeader.size) else {
                pending = p
                return []
            }
            pending = nil
            cuts += unit(p)
        }
        while buffer.readableBytes >= TDSPacketHeader.size {
            guard let length = unitLength(buffer) else {
                lost = true
                return cuts
            }
            guard buffer.readableBytes >= length else { break }
            cuts += unit(buffer.readSlice(length: length)!)
        }
        // Only an unfinished unit is kept, as its own copy: the read's buffer is not pinned.
        if buffer.readableBytes > 0 {
            var copy = ByteBufferAllocator().buffer(capacity: max(buffer.readableBytes, Self.smpHeaderSize))
            copy.writeBuffer(&buffer)
            pending = copy
        }
        return cuts
    }

    private mutating func unit(_ unit: ByteBuffer) -> [Cut] {
        if unit.getInteger(at: unit.readerIndex, as: UInt8.self) == Self.smpID { return smpFrame(unit) }
        return [Cut(sid: nil, packet: unit)]
    }

    private func unitLength(_ buffer: ByteBuffer) -> Int? {
        let at = buffer.readerIndex
        if buffer.getInteger(at: at, as: UInt8.self) == Self.smpID {
            guard buffer.readableBytes >= Self.smpHeaderSize else { return Self.smpHeaderSize }
            guard let length = buffer.getInteger(at: at + 4, endianness: .little, as: UInt32.self),
                  length >= UInt32(Self.smpHeaderSize), length <= UInt32(Self.maxUnit) else { return nil }
            return Int(length)
        }
        guard let length = buffer.getInteger(at: at + 2, endianness: .big, as: UInt16.self), length >= 8 else { return nil }
        return Int(length)
    }

    /// DATA frames carry TDS bytes for their session; SYN, ACK and FIN carry none.
    private mutating func smpFrame(_ frame: ByteBuffer) -> [Cut] {
        let at = frame.readerIndex
        let flags = frame.getInteger(at: at + 1, as: UInt8.self) ?? 0
        let sid = frame.getInteger(at: at + 2, endianness: .little, as: UInt16.self) ?? 0
        guard flags & 0x08 != 0, frame.readableBytes > Self.smpHeaderSize else { return [] }
        var payload = frame.getSlice(at: at + Self.smpHeaderSize, length: frame.readableBytes - Self.smpHeaderSize)!
        if var partial = smpPartial.removeValue(forKey: sid) {
            partial.writeBuffer(&payload)
            payload = partial
        }
        var cuts: [Cut] = []
        while payload.readableBytes >= TDSPacketHeader.size {
            guard let length = payload.getInteger(at: payload.readerIndex + 2, endianness: .big, as: UInt16.self), length >= 8 else {
                return cuts
            }
            guard payload.readableBytes >= Int(length) else { break }
            cuts.append(Cut(sid: sid, packet: payload.readSlice(length: Int(length))!))
        }
        if payload.readableBytes > 0 {
            var copy = ByteBufferAllocator().buffer(capacity: payload.readableBytes)
            copy.writeBuffer(&payload)
            smpPartial[sid] = copy
        }
        return cuts
    }
}
