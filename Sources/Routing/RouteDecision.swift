/// Why a session was sent where it was (for logs and the admin API).
public enum RouteReason: Sendable, Hashable, CustomStringConvertible {
    /// A write session, to the confirmed primary.
    case primary
    /// A read session, to a replica chosen by `balancing`.
    case replica(Balancing)
    /// A read session, to the primary because no replica was eligible.
    case readFallbackToPrimary

    public var description: String {
        switch self {
        case .primary: "primary"
        case .replica(let balancing): "replica (\(balancing.rawValue))"
        case .readFallbackToPrimary: "no eligible replica: read falls back to the primary"
        }
    }
}

/// The router's answer for one login.
public enum RouteDecision: Sendable, Hashable {
    /// Connect to this endpoint.
    case endpoint(String, reason: RouteReason)
    /// No primary now: hold the login, and ask again when the topology reports a new
    /// primary or at `until`, whichever comes first (passing the same `waitingSince`).
    case wait(until: ContinuousClock.Instant, reason: String)
    /// The session cannot be placed now (or at all): see `RouteRefusal`.
    case refuse(RouteRefusal)
}

/// Why the router could not place a session, typed so that the client's error number is
/// chosen from what happened (a temporary condition or a permanent one), not from words.
public struct RouteRefusal: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// No endpoint confirmed READ_WRITE within the write wait (a failover, an outage).
        case noPrimary
        /// The primary is drained or disabled by an operator.
        case primaryOutOfService
        /// A read session found no eligible replica and may not (or cannot) use the primary.
        case noReplica
        /// The cluster does not serve the database asked for.
        case databaseNotServed
    }

    public var kind: Kind
    /// The whole story for a person, naming the cluster.
    public var reason: String

    public init(_ kind: Kind, _ reason: String) {
        self.kind = kind
        self.reason = reason
    }

    /// The condition can pass without anyone changing the configuration: a client may retry.
    public var isTemporary: Bool { kind != .databaseNotServed }

    public var description: String { reason }
}
