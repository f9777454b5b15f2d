/// Thrown by administrative calls, whose endpoint names come from people.
public enum TopologyError: Error, Sendable, Hashable, CustomStringConvertible {
    case unknownEndpoint(cluster: String, endpoint: String)

    public var description: String {
        switch self {
        case .unknownEndpoint(let cluster, let endpoint): "cluster '\(cluster)' has no endpoint '\(endpoint)'"
        }
    }
}

/// The live picture of one cluster: each endpoint's health, role and sessions, and which
/// endpoint is the primary. Every mutating call returns the events it caused.
///
/// Calls naming an endpoint the cluster does not have (a session that outlived a reload, a
/// late probe) change nothing and return no events; only administrative calls throw, because
/// their names are typed by people who need to hear about a typo.
public struct ClusterTopology: Sendable {
    /// One endpoint's state.
    public struct Endpoint: Sendable, Hashable {
        public let spec: EndpointSpec
        public internal(set) var health: EndpointHealth
        public internal(set) var readSessions = 0
        public internal(set) var writeSessions = 0

        init(spec: EndpointSpec) {
            self.spec = spec
            self.health = EndpointHealth(settings: spec.probe)
        }

        public var name: String { spec.name }
        public var sessions: Int { readSessions + writeSessions }

        /// Could be the primary: up, not taken out of service, last probe saw it writable.
        /// Draining does not matter here: draining is about sessions, not about what it is.
        public var isWriteCandidate: Bool {
            health.isUp && health.admin != .disabled && health.lastRole?.allowsWrites == true
        }
    }

    /// The last time the cluster lost its primary, for messages such as
    /// "last primary 'east' is down since 12 s".
    public struct PrimaryLoss: Sendable, Hashable {
        public var endpoint: String
        public var cause: DemotionCause
        public var at: ContinuousClock.Instant
    }

    public let name: String
    public let databases: [String]
    public let demotionPolicy: DemotionClosePolicy
    /// In configuration order, which breaks every tie.
    public private(set) var endpoints: [Endpoint]
    /// The endpoint new write sessions go to; nil while no endpoint is confirmed READ_WRITE.
    public private(set) var currentPrimary: String?
    public private(set) var primarySince: ContinuousClock.Instant?
    public private(set) var lastPrimaryLoss: PrimaryLoss?
    private var warnedCandidates: [String] = []
    private let positions: [String: Int]

    public init(_ spec: ClusterSpec) {
        name = spec.name
        databases = spec.databases
        demotionPolicy = spec.demotionPolicy
        var seen: [String: Int] = [:]
        var list: [Endpoint] = []
        // Config validation rejects duplicate names; if one slips through, the first wins.
        for endpoint in spec.endpoints where seen[endpoint.name] == nil {
            seen[endpoint.name] = list.count
            list.append(Endpoint(spec: endpoint))
        }
        endpoints = list
        positions = seen
    }

    public subscript(name: String) -> Endpoint? {
        positions[name].map { endpoints[$0] }
    }

    /// Configuration position of an endpoint (round-robin order).
    public func position(of name: String) -> Int? { positions[name] }

    public var primaryEndpoint: Endpoint? {
        currentPrimary.flatMap { self[$0] }
    }

    /// Whether the cluster serves `database` (empty or nil: the login's default database).
    public func serves(database: String?) -> Bool {
        ClusterSpec.list(databases, serves: database)
    }

    /// Endpoints a read session may be sent to: up, enabled, not the primary, and seen
    /// READ_ONLY or configured as a replica. The primary is left out so that a rule that
    /// forbids falling back to it is kept even when the primary is also marked `replica`
    /// (a geo-secondary after a failover).
    public var eligibleReplicas: [Endpoint] {
        endpoints.filter { e in
            e.health.isUp && e.health.admin.acceptsNewSessions && e.name != currentPrimary
                && (e.health.lastRole?.role == .readOnly || e.spec.roleHint == .replica)
        }
    }

    // MARK: probes and passive health

    /// Records a probe result for `endpoint`.
    @discardableResult
    public mutating func record(probe result: ProbeResult, for endpoint: String, at now: ContinuousClock.Instant) -> [TopologyEvent] {
        guard let i = positions[endpoint] else { return [] }
        let before = endpoints[i].health.lastRole
        let transition = endpoints[i].health.record(probe: result, at: now)
        var events = transitionEvents(transition, endpoint: endpoint, at: now)
        if case .success(let role, let geo, _) = result, before?.role != role || before?.geo?.role != geo?.role {
            events.append(.roleChanged(endpoint: endpoint, from: before?.role, to: role, geo: geo?.role, at: now))
        }
        return events + reevaluatePrimary(at: now)
    }

    /// Records a failed backend login or a broken session on `endpoint`.
    @discardableResult
    public mutating func recordPassiveFailure(_ reason: FailureReason, for endpoint: String, at now: ContinuousClock.Instant) -> [TopologyEvent] {
        guard let i = positions[endpoint] else { return [] }
        let transition = endpoints[i].health.recordPassiveFailure(reason, at: now)
        return transitionEvents(transition, endpoint: endpoint, at: now) + reevaluatePrimary(at: now)
    }

    // MARK: administration

    /// Sets an endpoint's administrative state (admin API: drain, enable, disable).
    @discardableResult
    public mutating func setAdmin(_ state: AdminState, for endpoint: String, at now: ContinuousClock.Instant) throws(TopologyError) -> [TopologyEvent] {
        guard let i = positions[endpoint] else { throw .unknownEndpoint(cluster: name, endpoint: endpoint) }
        let old = endpoints[i].health.setAdmin(state, at: now)
        guard old != state else { return [] }
        var events: [TopologyEvent] = [.adminChanged(endpoint: endpoint, from: old, to: state, at: now)]
        if state == .draining && endpoints[i].sessions == 0 {
            events.append(.drained(endpoint: endpoint, at: now))
        }
        return events + reevaluatePrimary(at: now)
    }

    /// Existing sessions finish; no new ones are routed here.
    @discardableResult
    public mutating func drain(_ endpoint: String, at now: ContinuousClock.Instant) throws(TopologyError) -> [TopologyEvent] {
        try setAdmin(.draining, for: endpoint, at: now)
    }

    @discardableResult
    public mutating func enable(_ endpoint: String, at now: ContinuousClock.Instant) throws(TopologyError) -> [TopologyEvent] {
        try setAdmin(.enabled, for: endpoint, at: now)
    }

    @discardableResult
    public mutating func disable(_ endpoint: String, at now: ContinuousClock.Instant) throws(TopologyError) -> [TopologyEvent] {
        try setAdmin(.disabled, for: endpoint, at: now)
    }

    // MARK: sessions

    /// Call when a backend session is established on `endpoint` (after its login succeeded).
    public mutating func sessionOpened(on endpoint: String, intent: SessionIntent) {
        guard let i = positions[endpoint] else { return }
        switch intent {
        case .readOnly: endpoints[i].readSessions += 1
        case .readWrite: endpoints[i].writeSessions += 1
        }
    }

    /// Call when that session ends, however it ends.
    @discardableResult
    public mutating func sessionClosed(on endpoint: String, intent: SessionIntent, at now: ContinuousClock.Instant) -> [TopologyEvent] {
        guard let i = positions[endpoint] else { return [] }
        switch intent {
        case .readOnly: endpoints[i].readSessions = max(0, endpoints[i].readSessions - 1)
        case .readWrite: endpoints[i].writeSessions = max(0, endpoints[i].writeSessions - 1)
        }
        if endpoints[i].health.admin == .draining && endpoints[i].sessions == 0 {
            return [.drained(endpoint: endpoint, at: now)]
        }
        return []
    }

    // MARK: text for people

    /// "UP, READ_ONLY" / "DOWN for 12 s (connect failed: refused)", for refusals and the admin API.
    public func describe(_ endpoint: String, now: ContinuousClock.Instant) -> String {
        guard let e = self[endpoint] else { return "unknown" }
        var parts: [String] = []
        switch e.health.state {
        case .down, .goingUp:
            var text = e.health.state.description
            if let since = e.health.stateSince { text += " for \((now - since).humanText)" }
            if let failure = e.health.lastFailure { text += " (\(failure.reason))" }
            parts.append(text)
        case .unchecked, .up, .goingDown:
            parts.append(e.health.state.description)
            if let role = e.health.lastRole {
                parts.append(role.role.rawValue + (role.geo.map { " geo \($0.role)" } ?? ""))
            }
        }
        if e.health.admin != .enabled { parts.append(e.health.admin.rawValue) }
        return parts.joined(separator: ", ")
    }

    /// Every endpoint, described: "'east' DOWN for 3 s (timed out); 'west' UP, READ_ONLY".
    public func summary(now: ContinuousClock.Instant) -> String {
        endpoints.map { "'\($0.name)' \(describe($0.name, now: now))" }.joined(separator: "; ")
    }

    // MARK: primary selection

    private func transitionEvents(_ transition: EndpointHealth.Transition?, endpoint: String, at now: ContinuousClock.Instant) -> [TopologyEvent] {
        switch transition {
        case .wentUp: [.endpointUp(endpoint: endpoint, at: now)]
        case .wentDown(let reason): [.endpointDown(endpoint: endpoint, reason: reason, at: now)]
        case nil: []
        }
    }

    /// Keeps the current primary while it stays a candidate, so a second READ_WRITE endpoint
    /// (a failover-group listener in front of the same server) never moves sessions around.
    /// Otherwise picks by role hint (primary, auto, replica), then configuration order.
    private mutating func reevaluatePrimary(at now: ContinuousClock.Instant) -> [TopologyEvent] {
        let candidates = endpoints.filter(\.isWriteCandidate)
        let chosen: String?
        if let current = currentPrimary, candidates.contains(where: { $0.name == current }) {
            chosen = current
        } else {
            chosen = candidates.min { Self.hintRank($0.spec.roleHint) < Self.hintRank($1.spec.roleHint) }?.name
        }
        var events: [TopologyEvent] = []
        let names = candidates.map(\.name)
        if names.count >= 2, names != warnedCandidates, let chosen {
            events.append(.multiplePrimaries(candidates: names, chosen: chosen, at: now))
        }
        warnedCandidates = names.count >= 2 ? names : []
        guard chosen != currentPrimary else { return events }
        let old = currentPrimary
        currentPrimary = chosen
        primarySince = chosen == nil ? nil : now
        events.append(.primaryChanged(from: old, to: chosen, at: now))
        if let old, let e = self[old] {
            let cause = Self.demotionCause(e)
            lastPrimaryLoss = PrimaryLoss(endpoint: old, cause: cause, at: now)
            events.append(.demoted(endpoint: old, cause: cause, scope: cause.closes, policy: demotionPolicy, at: now))
        }
        return events
    }

    private static func hintRank(_ hint: RoleHint) -> Int {
        switch hint {
        case .primary: 0
        case .auto: 1
        case .replica: 2
        }
    }

    private static func demotionCause(_ e: Endpoint) -> DemotionCause {
        if e.health.admin == .disabled { return .disabled }
        if !e.health.isUp { return .down }
        switch e.health.lastRole?.role {
        case .readOnly: return .seenReadOnly
        case .readWrite: return e.health.lastRole?.geo?.role == .secondary ? .seenGeoSecondary : .roleUnknown
        case .unknown, nil: return .roleUnknown
        }
    }
}
