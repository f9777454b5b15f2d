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
    /// Send the client this error text.
    case refuse(reason: String)
}
