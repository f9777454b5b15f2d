/// In-order TCP payload of one direction of a connection, rebuilt from captured segments:
/// ordered by sequence number, retransmitted bytes dropped, holes reported.
struct TCPStreamAssembler: Sendable {
    struct Chunk: Sendable {
        var bytes: ArraySlice<UInt8>
        var time: DumpTimestamp
        /// Bytes missing from the capture before this chunk.
        var gapBefore: Int = 0
    }

    private var next: UInt32?
    private var pending: [(seq: UInt32, bytes: ArraySlice<UInt8>, time: DumpTimestamp)] = []
    private(set) var chunks: [Chunk] = []
    private(set) var sawSYN = false
    private(set) var sawSYNACK = false
    static let maxPending = 100_000

    mutating func add(_ s: TCPSegment) {
        if s.isSYN {
            sawSYN = true
            if s.flags & 0x10 != 0 { sawSYNACK = true }
            if next == nil || chunks.isEmpty { next = s.sequence &+ 1 }
            return
        }
        guard !s.payload.isEmpty else { return }
        if next == nil { next = s.sequence }
        insert(seq: s.sequence, bytes: s.payload, time: s.timestamp)
    }

    private mutating func insert(seq: UInt32, bytes: ArraySlice<UInt8>, time: DumpTimestamp) {
        guard let expected = next else { return }
        let diff = Int32(bitPattern: seq &- expected)
        if diff < 0 {
            let skip = Int(-Int64(diff))
            guard skip < bytes.count else { return }  // a retransmission of bytes we have
            deliver(bytes.dropFirst(skip), time: time)
        } else if diff == 0 {
            deliver(bytes, time: time)
        } else {
            if pending.count < TCPStreamAssembler.maxPending { pending.append((seq, bytes, time)) }
            return
        }
        drainPending()
    }

    private mutating func deliver(_ bytes: ArraySlice<UInt8>, time: DumpTimestamp, gap: Int = 0) {
        chunks.append(Chunk(bytes: bytes, time: time, gapBefore: gap))
        next = (next ?? 0) &+ UInt32(truncatingIfNeeded: bytes.count)
    }

    private mutating func drainPending() {
        var progressed = true
        while progressed, !pending.isEmpty, let expected = next {
            progressed = false
            if let i = pending.firstIndex(where: { Int32(bitPattern: $0.seq &- expected) <= 0 }) {
                let p = pending.remove(at: i)
                let skip = Int(-Int64(Int32(bitPattern: p.seq &- expected)))
                if skip < p.bytes.count { deliver(p.bytes.dropFirst(skip), time: p.time) }
                progressed = true
            }
        }
    }

    /// Delivers what is still out of order, noting the holes before it.
    mutating func finish() {
        drainPending()
        while !pending.isEmpty, let expected = next {
            pending.sort { Int32(bitPattern: $0.seq &- expected) < Int32(bitPattern: $1.seq &- expected) }
            let p = pending.removeFirst()
            let gap = Int(Int32(bitPattern: p.seq &- expected))
            next = p.seq
            deliver(p.bytes, time: p.time, gap: max(gap, 0))
            drainPending()
        }
    }
}
