/// What an operator said about an endpoint, independent of what probes see.
public enum AdminState: String, Sendable, Hashable, Codable, CustomStringConvertible {
    /// Takes new sessions when healthy.
    case enabled
    /// Takes no new sessions; existing ones run to their end (HAProxy's `drain`).
    case draining
    /// Out of service: no new sessions, and the proxy closes the existing ones
    /// (HAProxy's `maint`). Probes go on, so re-enabling starts from a known state.
    case disabled

    public var description: String { rawValue }

    public var acceptsNewSessions: Bool { self == .enabled }
}
