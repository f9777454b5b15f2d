import Foundation
import Synchronization

/// Slows down password guessing: after `maxFailures` failed logins from one address within
/// `window` seconds, that address is refused for `blockFor` seconds.
///
/// Memory is bounded: at most ``capacity`` addresses are tracked; past that, stale entries are
/// dropped first, then those seen longest ago.
public final class LoginThrottle: Sendable {
    public let maxFailures: Int
    public let window: TimeInterval
    public let blockFor: TimeInterval
    public let capacity: Int

    private struct Entry {
        var failures: [Date] = []
        var blockedUntil: Date?
        var lastSeen: Date
    }

    private let state = Mutex([String: Entry]())

    public init(maxFailures: Int = 5, window: TimeInterval = 60, blockFor: TimeInterval = 60, capacity: Int = 10_000) {
        self.maxFailures = max(1, maxFailures)
        self.window = window
        self.blockFor = blockFor
        self.capacity = max(1, capacity)
    }

    public func isBlocked(_ address: String, now: Date = Date()) -> Bool {
        self.state.withLock { entries in
            guard let until = entries[address]?.blockedUntil else { return false }
            return now < until
        }
    }

    public func recordFailure(_ address: String, now: Date = Date()) {
        self.state.withLock { entries in
            var entry: Entry
            if let existing = entries[address] {
                entry = existing
            } else {
                if entries.count >= self.capacity { Self.evict(&entries, now: now, window: self.window) }
                entry = Entry(lastSeen: now)
            }
            entry.lastSeen = now
            entry.failures.removeAll { now.timeIntervalSince($0) >= self.window }
            entry.failures.append(now)
            if entry.failures.count > self.maxFailures { entry.failures.removeFirst(entry.failures.count - self.maxFailures) }
            if entry.failures.count >= self.maxFailures {
                entry.blockedUntil = now.addingTimeInterval(self.blockFor)
                entry.failures.removeAll()
            }
            entries[address] = entry
        }
    }

    public func recordSuccess(_ address: String) {
        _ = self.state.withLock { $0.removeValue(forKey: address) }
    }

    /// Addresses tracked now.
    public var trackedCount: Int {
        self.state.withLock { $0.count }
    }

    /// Makes room: drops entries that no longer matter (not blocked, no failure inside the
    /// window); if that frees nothing, the tenth of the entries seen longest ago (so the cost
    /// of a full table is paid once per `capacity / 10` new addresses).
    private static func evict(_ entries: inout [String: Entry], now: Date, window: TimeInterval) {
        let before = entries.count
        entries = entries.filter { _, entry in
            if let until = entry.blockedUntil, now < until { return true }
            return entry.failures.contains { now.timeIntervalSince($0) < window }
        }
        if entries.count < before { return }
        let drop = max(1, entries.count / 10)
        for key in entries.sorted(by: { $0.value.lastSeen < $1.value.lastSeen }).prefix(drop).map(\.key) {
            entries.removeValue(forKey: key)
        }
    }
}
