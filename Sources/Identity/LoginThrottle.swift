import Foundation
import Synchronization

/// Slows down password guessing: after `maxFailures` failed logins from one address within
/// `window` seconds, that address is refused for `blockFor` seconds.
///
/// "May this address try" and "count this failure" are one step: a login takes a
/// ``Ticket`` before it checks credentials and settles it with the verdict. Logins in flight
/// count against the budget, so 60 wrong passwords sent at once with `maxFailures: 20` get
/// 20 checks, not 60. A login that finds the budget taken by logins in flight waits for one
/// of them to settle instead of being refused: a connection pool that opens many sessions at
/// once with the right password is held up by one verification, not turned away.
///
/// Memory is bounded: at most ``capacity`` addresses are tracked; past that, stale entries are
/// dropped first, then those seen longest ago (never one with logins in flight).
public final class LoginThrottle: Sendable {
    public let maxFailures: Int
    public let window: TimeInterval
    public let blockFor: TimeInterval
    public let capacity: Int

    /// What a login's credential check came to.
    public enum Outcome: Sendable, Hashable {
        /// The credentials were refused: counts against the address.
        case failed
        /// The credentials were accepted: the address starts afresh.
        case succeeded
        /// No verdict on the credentials (the login ended before or without a check).
        case withdrawn
    }

    /// One login's claim on its address's budget. Settle it once with the verdict; a ticket
    /// dropped unsettled is withdrawn, so a login that throws can never leak its claim.
    public final class Ticket: Sendable {
        public let address: String
        private let throttle: LoginThrottle
        private let settled = Mutex(false)

        fileprivate init(address: String, throttle: LoginThrottle) {
            self.address = address
            self.throttle = throttle
        }

        public func settle(_ outcome: Outcome, now: Date = Date()) {
            guard settled.withLock({ s in defer { s = true }; return !s }) else { return }
            throttle.settle(address, outcome, now: now)
        }

        deinit {
            settle(.withdrawn)
        }
    }

    private struct Entry {
        var failures: [Date] = []
        var blockedUntil: Date?
        var lastSeen: Date
        /// Tickets taken and not settled.
        var inFlight = 0
        /// Logins waiting for an in-flight one to settle.
        var waiters: [UInt64: CheckedContinuation<Verdict, Never>] = [:]
    }

    private enum Verdict {
        case granted, refused, wait
    }

    private struct State {
        var entries: [String: Entry] = [:]
        var nextWaiter: UInt64 = 0
    }

    private let state = Mutex(State())

    public init(maxFailures: Int = 5, window: TimeInterval = 60, blockFor: TimeInterval = 60, capacity: Int = 10_000) {
        self.maxFailures = max(1, maxFailures)
        self.window = window
        self.blockFor = blockFor
        self.capacity = max(1, capacity)
    }

    /// A ticket to check one login's credentials, or nil when the address is blocked. Waits
    /// while the address's budget is held by logins in flight; a cancelled wait returns nil.
    public func admit(_ address: String, now: @Sendable () -> Date = { Date() }) async -> Ticket? {
        while true {
            let verdict = state.withLock { decide(address, now: now(), in: &$0) }
            switch verdict {
            case .granted: return Ticket(address: address, throttle: self)
            case .refused: return nil
            case .wait: break
            }
            if Task.isCancelled { return nil }
            let id = state.withLock { s in s.nextWaiter &+= 1; return s.nextWaiter }
            let woken: Verdict = await withTaskCancellationHandler {
                await withCheckedContinuation { (c: CheckedContinuation<Verdict, Never>) in
                    // Decided again under the lock that also registers the waiter, so a
                    // settle between the first look and here cannot be missed.
                    let now = now()
                    let verdict = state.withLock { s -> Verdict in
                        if Task.isCancelled { return .refused }
                        let v = decide(address, now: now, in: &s)
                        if v == .wait { s.entries[address]?.waiters[id] = c }
                        return v
                    }
                    if verdict != .wait { c.resume(returning: verdict) }
                }
            } onCancel: {
                let c = state.withLock { $0.entries[address]?.waiters.removeValue(forKey: id) }
                c?.resume(returning: .refused)
            }
            switch woken {
            case .granted: return Ticket(address: address, throttle: self)
            case .refused: return nil
            case .wait: continue
            }
        }
    }

    public func isBlocked(_ address: String, now: Date = Date()) -> Bool {
        state.withLock { s in
            guard let until = s.entries[address]?.blockedUntil else { return false }
            return now < until
        }
    }

    /// How long `address` stays blocked from `now` (nil when it is not): what a refused
    /// client is told to wait.
    public func blockRemaining(_ address: String, now: Date = Date()) -> TimeInterval? {
        state.withLock { s in
            guard let until = s.entries[address]?.blockedUntil, now < until else { return nil }
            return until.timeIntervalSince(now)
        }
    }

    /// Counts a failed login outside a ticket (a login that had no ticket to settle).
    public func recordFailure(_ address: String, now: Date = Date()) {
        settle(address, .failed, now: now, holdsTicket: false)
    }

    public func recordSuccess(_ address: String) {
        settle(address, .succeeded, now: Date(), holdsTicket: false)
    }

    /// Addresses tracked now.
    public var trackedCount: Int {
        state.withLock { $0.entries.count }
    }

    /// Tickets not yet settled for `address`.
    public func inFlight(_ address: String) -> Int {
        state.withLock { $0.entries[address]?.inFlight ?? 0 }
    }

    /// Logins waiting for `address`'s budget.
    public func waiting(_ address: String) -> Int {
        state.withLock { $0.entries[address]?.waiters.count ?? 0 }
    }

    fileprivate func settle(_ address: String, _ outcome: Outcome, now: Date, holdsTicket: Bool = true) {
        let woken: [CheckedContinuation<Verdict, Never>] = state.withLock { s in
            var entry: Entry
            if let existing = s.entries[address] {
                entry = existing
            } else {
                if outcome != .failed { return [] }
                if s.entries.count >= capacity { Self.evict(&s.entries, now: now, window: window) }
                entry = Entry(lastSeen: now)
            }
            if holdsTicket { entry.inFlight = max(0, entry.inFlight - 1) }
            entry.lastSeen = now
            switch outcome {
            case .failed:
                entry.failures.removeAll { now.timeIntervalSince($0) >= window }
                entry.failures.append(now)
                if entry.failures.count >= maxFailures {
                    entry.blockedUntil = now.addingTimeInterval(blockFor)
                    entry.failures.removeAll()
                }
            case .succeeded:
                entry.failures.removeAll()
                entry.blockedUntil = nil
            case .withdrawn:
                break
            }
            let waiters = Array(entry.waiters.values)
            entry.waiters.removeAll()
            if entry.failures.isEmpty && entry.blockedUntil == nil && entry.inFlight == 0 {
                s.entries.removeValue(forKey: address)
            } else {
                s.entries[address] = entry
            }
            return waiters
        }
        // Every waiter decides again: one may now take the freed place, or see the block.
        for c in woken { c.resume(returning: .wait) }
    }

    private func decide(_ address: String, now: Date, in s: inout State) -> Verdict {
        var entry: Entry
        if let existing = s.entries[address] {
            entry = existing
        } else {
            if s.entries.count >= capacity { Self.evict(&s.entries, now: now, window: window) }
            entry = Entry(lastSeen: now)
        }
        if let until = entry.blockedUntil {
            if now < until { return .refused }
            entry.blockedUntil = nil
        }
        entry.failures.removeAll { now.timeIntervalSince($0) >= window }
        let verdict: Verdict
        if entry.failures.count + entry.inFlight < maxFailures {
            entry.inFlight += 1
            entry.lastSeen = now
            verdict = .granted
        } else {
            verdict = .wait
        }
        s.entries[address] = entry
        return verdict
    }

    /// Makes room: drops entries that no longer matter (not blocked, no failure inside the
    /// window, nothing in flight); if that frees nothing, the tenth of the idle entries seen
    /// longest ago (so the cost of a full table is paid once per `capacity / 10` new
    /// addresses).
    private static func evict(_ entries: inout [String: Entry], now: Date, window: TimeInterval) {
        let before = entries.count
        entries = entries.filter { _, entry in
            if entry.inFlight > 0 || !entry.waiters.isEmpty { return true }
            if let until = entry.blockedUntil, now < until { return true }
            return entry.failures.contains { now.timeIntervalSince($0) < window }
        }
        if entries.count < before { return }
        let idle = entries.filter { $0.value.inFlight == 0 && $0.value.waiters.isEmpty }
        let drop = max(1, idle.count / 10)
        for key in idle.sorted(by: { $0.value.lastSeen < $1.value.lastSeen }).prefix(drop).map(\.key) {
            entries.removeValue(forKey: key)
        }
    }
}
