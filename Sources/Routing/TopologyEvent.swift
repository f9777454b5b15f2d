/// Why an endpoint stopped being the primary.
public enum DemotionCause: String, Sendable, Hashable, Codable, CustomStringConvertible {
    /// A probe saw it READ_ONLY: the failover happened and this is now a secondary.
    case seenReadOnly = "seen_read_only"
    /// Its geo link reports it as the secondary.
    case seenGeoSecondary = "seen_geo_secondary"
    /// The login worked but the role query could not confirm READ_WRITE.
    case roleUnknown = "role_unknown"
    /// Probes or sessions took it down.
    case down
    /// An operator disabled it.
    case disabled

    public var description: String {
        switch self {
        case .seenReadOnly: "seen READ_ONLY"
        case .seenGeoSecondary: "seen as geo-secondary"
        case .roleUnknown: "role could not be confirmed"
        case .down: "down"
        case .disabled: "disabled by an operator"
        }
    }

    /// Which of the demoted endpoint's sessions the proxy should close: when the endpoint is
    /// still alive as a secondary, read sessions there keep working; when it is gone or taken
    /// out of service, nothing on it does.
    public var closes: DemotionScope {
        switch self {
        case .seenReadOnly, .seenGeoSecondary, .roleUnknown: .writeSessions
        case .down, .disabled: .allSessions
        }
    }
}

public enum DemotionScope: String, Sendable, Hashable, Codable {
    case writeSessions = "write_sessions"
    case allSessions = "all_sessions"
}

/// Something about a cluster changed; the proxy logs it, updates metrics, wakes waiting
/// logins (`primaryChanged` to a non-nil primary) and closes sessions (`demoted`).
public enum TopologyEvent: Sendable, Hashable, CustomStringConvertible {
    case endpointUp(endpoint: String, at: ContinuousClock.Instant)
    case endpointDown(endpoint: String, reason: FailureReason, at: ContinuousClock.Instant)
    /// A probe saw a role (or geo role) different from the previous one.
    case roleChanged(endpoint: String, from: ObservedRole?, to: ObservedRole, geo: GeoRole?, at: ContinuousClock.Instant)
    case primaryChanged(from: String?, to: String?, at: ContinuousClock.Instant)
    /// `endpoint` was the primary and is not any more: close its `scope` sessions per `policy`.
    case demoted(endpoint: String, cause: DemotionCause, scope: DemotionScope, policy: DemotionClosePolicy, at: ContinuousClock.Instant)
    /// More than one endpoint is up and READ_WRITE. Normal for a failover-group listener in
    /// front of its own primary; after a forced failover it can mean split brain, so it is
    /// reported every time the set changes.
    case multiplePrimaries(candidates: [String], chosen: String, at: ContinuousClock.Instant)
    case adminChanged(endpoint: String, from: AdminState, to: AdminState, at: ContinuousClock.Instant)
    /// A draining endpoint's last session ended.
    case drained(endpoint: String, at: ContinuousClock.Instant)

    public var at: ContinuousClock.Instant {
        switch self {
        case .endpointUp(_, let at), .endpointDown(_, _, let at), .roleChanged(_, _, _, _, let at),
             .primaryChanged(_, _, let at), .demoted(_, _, _, _, let at), .multiplePrimaries(_, _, let at),
             .adminChanged(_, _, _, let at), .drained(_, let at):
            at
        }
    }

    public var description: String {
        switch self {
        case .endpointUp(let e, _): "endpoint '\(e)' is up"
        case .endpointDown(let e, let reason, _): "endpoint '\(e)' is down: \(reason)"
        case .roleChanged(let e, let from, let to, let geo, _):
            "endpoint '\(e)' role \(from.map(\.rawValue) ?? "none") -> \(to)" + (geo.map { " (geo \($0))" } ?? "")
        case .primaryChanged(let from, let to, _):
            "primary \(from.map { "'\($0)'" } ?? "none") -> \(to.map { "'\($0)'" } ?? "none")"
        case .demoted(let e, let cause, let scope, let policy, _):
            "endpoint '\(e)' demoted (\(cause)): close \(scope.rawValue) \(policy.rawValue)"
        case .multiplePrimaries(let candidates, let chosen, _):
            "warning: several endpoints are READ_WRITE (\(candidates.map { "'\($0)'" }.joined(separator: ", "))); using '\(chosen)'"
        case .adminChanged(let e, let from, let to, _): "endpoint '\(e)' admin \(from) -> \(to)"
        case .drained(let e, _): "endpoint '\(e)' drained (no sessions left)"
        }
    }
}
