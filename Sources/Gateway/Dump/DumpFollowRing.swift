import Synchronization

/// The most recent decoded dump lines, numbered, for `GET /v1/dump/follow?after=N`.
/// Written by the dump's writer thread, read by admin requests; old lines fall off.
final class DumpFollowRing: Sendable {
    private struct State {
        var lines: [String] = []
        /// Index in `lines` of the oldest line once the ring is full.
        var head = 0
        /// Number of the next line appended (lines are numbered from 1).
        var next = 1
    }

    let capacity: Int
    private let state = Mutex(State())

    init(capacity: Int) { self.capacity = max(0, capacity) }

    /// Appends a text block, one entry per line (a trailing newline adds none).
    func append(_ text: String, prefix: String) {
        guard capacity > 0 else { return }
        var split = text.split(separator: "\n", omittingEmptySubsequences: false)
        if split.last?.isEmpty == true { split.removeLast() }
        guard !split.isEmpty else { return }
        state.withLock { s in
            for l in split {
                let line = prefix + l
                if s.lines.count < capacity {
                    s.lines.append(line)
                } else {
                    s.lines[s.head] = line
                    s.head = (s.head + 1) % capacity
                }
                s.next += 1
            }
        }
    }

    /// The number the next line will get (a cursor that skips everything so far).
    var cursor: Int { state.withLock { $0.next - 1 } }

    /// Lines numbered above `after` (at most `limit`), the cursor to ask with next, and how
    /// many lines after `after` had already fallen off the ring.
    func lines(after: Int, limit: Int) -> (lines: [String], next: Int, missed: Int) {
        state.withLock { s in
            let oldest = s.next - s.lines.count
            let from = max(after + 1, oldest)
            let missed = max(0, oldest - (after + 1))
            let to = min(s.next, from + max(0, limit))
            var out: [String] = []
            if from < to {
                out.reserveCapacity(to - from)
                for n in from..<to {
                    let i = s.lines.count < capacity ? n - oldest : (s.head + (n - oldest)) % capacity
                    out.append(s.lines[i])
                }
            }
            return (out, from < to ? to - 1 : min(after, s.next - 1), missed)
        }
    }
}
