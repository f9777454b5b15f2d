import Synchronization

/// The connection limits of one listener: `max_connections` (all clients),
/// `max_connections_per_source` (one client address) and `max_pending_logins` (connections
/// not yet logged in). nil = no limit.
struct ConnectionLimits: Sendable, Equatable {
    var total: Int?
    var perSource: Int?
    var pending: Int?

    var isUnlimited: Bool { total == nil && perSource == nil && pending == nil }
}

/// The limit a connection is over, and how its client is told (at LOGIN7: no driver shows an
/// error sent in answer to PRELOGIN, and before TLS the login cannot be answered at all).
enum LimitExceeded: Error, Sendable, Equatable {
    case total(Int)
    case perSource(Int, source: String)
    case pending(Int)

    /// The setting that caused it, for metrics, the audit trail and the log.
    var setting: String {
        switch self {
        case .total: "max_connections"
        case .perSource: "max_connections_per_source"
        case .pending: "max_pending_logins"
        }
    }

    /// Error 10928, the Azure SQL resource-limit error that drivers and retry policies treat
    /// as transient.
    func refusal(listener: String) -> LoginRefusal {
        let what = switch self {
        case .total(let n): "its limit of \(n) client connections"
        case .perSource(let n, let source): "its limit of \(n) connections from \(source)"
        case .pending(let n): "its limit of \(n) connections still logging in"
        }
        return LoginRefusal(number: 10928, severity: 16, state: 1,
                            message: "Resource ID : 1. tdsgate listener '\(listener)' is at \(what) (\(setting)). Try again later; if this persists, raise \(setting) or spread clients over more tdsgate instances.")
    }
}

/// The connection counts of one listener, pure: admit a new connection or say which limit it
/// is over; count logins done and connections closed.
struct ConnectionCounts: Sendable, Equatable {
    private(set) var total = 0
    private(set) var pending = 0
    private(set) var bySource: [String: Int] = [:]

    /// Counts the connection in, or returns the limit it is over (and counts nothing).
    mutating func admit(_ source: String, limits: ConnectionLimits) -> LimitExceeded? {
        if let max = limits.total, total >= max { return .total(max) }
        if let max = limits.perSource, bySource[source, default: 0] >= max { return .perSource(max, source: source) }
        if let max = limits.pending, pending >= max { return .pending(max) }
        total += 1
        pending += 1
        bySource[source, default: 0] += 1
        return nil
    }

    mutating func loggedIn() {
        pending = max(0, pending - 1)
    }

    mutating func closed(_ source: String, wasPending: Bool) {
        total = max(0, total - 1)
        if wasPending { pending = max(0, pending - 1) }
        let left = bySource[source, default: 1] - 1
        bySource[source] = left > 0 ? left : nil
    }
}

/// One listener's counts, shared by its event loops.
final class ConnectionLimiter: Sendable {
    let limits: ConnectionLimits
    private let counts = Mutex(ConnectionCounts())

    init(limits: ConnectionLimits) {
        self.limits = limits
    }

    /// A ticket for an admitted connection (release it when the connection closes), or the
    /// limit it is over.
    func admit(source: String) -> Result<ConnectionTicket, LimitExceeded> {
        if let over = counts.withLock({ $0.admit(source, limits: limits) }) { return .failure(over) }
        return .success(ConnectionTicket(limiter: self, source: source))
    }

    var snapshot: ConnectionCounts { counts.withLock { $0 } }

    fileprivate func loggedIn() { counts.withLock { $0.loggedIn() } }
    fileprivate func closed(_ source: String, wasPending: Bool) { counts.withLock { $0.closed(source, wasPending: wasPending) } }
}

/// One admitted connection's place in its listener's counts.
final class ConnectionTicket: Sendable {
    private let limiter: ConnectionLimiter
    private let source: String
    private let state = Mutex((pending: true, released: false))

    fileprivate init(limiter: ConnectionLimiter, source: String) {
        self.limiter = limiter
        self.source = source
    }

    /// The connection has logged in: it no longer counts as pending.
    func loggedIn() {
        let was = state.withLock { s in
            defer { s.pending = false }
            return s.pending && !s.released
        }
        if was { limiter.loggedIn() }
    }

    /// The connection has closed (once; later calls do nothing).
    func release() {
        let (first, pending) = state.withLock { s in
            defer { s.released = true; s.pending = false }
            return (!s.released, s.pending)
        }
        if first { limiter.closed(source, wasPending: pending) }
    }
}
