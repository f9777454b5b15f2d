import Audit
import Foundation
import Logging
import NIOCore
import Routing
import Synchronization

/// The live state of one cluster: its `ClusterTopology` (fed by probes and by what sessions
/// see), the router, logins waiting for a primary, and the sessions on each endpoint so
/// that a demoted primary's sessions can be closed. Decisions are Routing's; this type only
/// serialises access and carries out the events.
final class ClusterRuntime: Sendable {
    let config: ClusterConfig
    private let logger: Logger
    let metrics: GatewayMetrics?
    let audit: AuditLog?
    /// The backend connection pool (`pool:`), nil when the cluster does not pool.
    let pool: BackendPool?

    /// A relayed session, for closing it when its endpoint is demoted.
    struct SessionHandle: Sendable {
        var intent: SessionIntent
        var info: SessionInfo
        var close: @Sendable (_ afterCurrentRequest: Bool) -> Void
    }

    private struct State: Sendable {
        var topology: ClusterTopology
        var router = Router()
        var waiters: [UUID: CheckedContinuation<Void, Never>] = [:]
        var sessions: [String: [UUID: SessionHandle]] = [:]
    }

    private let state: Mutex<State>

    init(config: ClusterConfig, logger: Logger, metrics: GatewayMetrics? = nil, audit: AuditLog? = nil) {
        self.config = config
        self.logger = logger
        self.metrics = metrics
        self.audit = audit
        pool = config.pool.map { BackendPool(config: $0, cluster: config.name) }
        let spec = ClusterSpec(
            name: config.name, databases: config.databases,
            endpoints: config.endpoints.map { e in
                EndpointSpec(name: e.name, roleHint: e.role, geo: e.geo,
                             probe: ProbeSettings(interval: .milliseconds(config.probe?.intervalMs ?? 2_000),
                                                  timeout: .milliseconds(config.probe?.timeoutMs ?? 2_000),
                                                  rise: config.probe?.rise ?? 2, fall: config.probe?.fall ?? 3))
            },
            demotionPolicy: config.demotion)
        var topology = ClusterTopology(spec)
        let router = Router(maxWriteWait: .milliseconds(config.maxWriteWaitMs))
        if config.probe == nil {
            // Without probes the configuration is the truth: replicas are read-only, the
            // rest (a server name or failover-group listener) takes writes.
            let now = ContinuousClock.now
            for e in config.endpoints {
                let role: ObservedRole = e.role == .replica ? .readOnly : .readWrite
                _ = topology.record(probe: .success(role: role, latency: .zero), for: e.name, at: now)
            }
        }
        state = Mutex(State(topology: topology, router: router))
    }

    var defaultOptions: RouteOptions {
        RouteOptions(allowReadOnlyFallbackToPrimary: config.readFallbackToPrimary,
                     balancing: config.balancing)
    }

    /// The cluster's routing rules with its own settings as the default.
    var rules: RoutingRules { RoutingRules(config.routing, defaultOptions: defaultOptions)
    }

    func endpoint(named name: String) -> EndpointConfig? { config.endpoint(named: name) }

    /// An endpoint for a new session, waiting (bounded) while the cluster has no primary.
    /// Never answers `.wait`; a cancelled task (the client left) stops waiting at once.
    func route(intent: SessionIntent, database: String, options: RouteOptions, deadline: ContinuousClock.Instant,
               avoiding: Set<String>) async throws(CancellationError) -> RouteDecision {
        let waitingSince = ContinuousClock.now
        while true {
            if Task.isCancelled { throw CancellationError() }
            let now = ContinuousClock.now
            let decision = state.withLock { s in
                s.router.decide(intent: intent, database: database, options: options, topology: s.topology, now: now,
                                waitingSince: waitingSince, loginDeadline: deadline, avoiding: avoiding)
            }
            guard case .wait(let until, let reason) = decision else { return decision }
            logger.info("login waits for a primary", metadata: ["cluster": "\(config.name)", "reason": "\(reason)"])
            await waitForChange(until: until)
        }
    }

    /// Whether a session that failed on the endpoints in `besides` has somewhere else to go:
    /// another eligible replica, or the primary as a read fallback. Writes have only the
    /// primary.
    func hasAlternative(intent: SessionIntent, options: RouteOptions, besides: Set<String>) -> Bool {
        guard intent == .readOnly, options.readTarget != .primary else { return false }
        return state.withLock { s in
            var replicas = s.topology.eligibleReplicas
            if let allowed = options.replicas { replicas = replicas.filter { allowed.contains($0.name) } }
            if replicas.contains(where: { !besides.contains($0.name) }) { return true }
            guard options.allowReadOnlyFallbackToPrimary, let p = s.topology.primaryEndpoint else { return false }
            return p.isWriteCandidate && p.health.admin.acceptsNewSessions && !besides.contains(p.name)
        }
    }

    /// Logins waiting for a primary now.
    var waitingLogins: Int { state.withLock { $0.waiters.count } }

    /// Suspends until the topology changes (a primary appears), `until`, or the task is
    /// cancelled. The waiter is registered before its timeout is armed, so an instant already
    /// past still wakes it; registering checks for cancellation under the same lock that
    /// the cancellation handler takes, so a cancel cannot slip between the two.
    private func waitForChange(until: ContinuousClock.Instant) async {
        let id = UUID()
        var timer: Task<Void, Never>?
        await withTaskCancellationHandler {
            await withCheckedContinuation { (c: CheckedContinuation<Void, Never>) in
                let cancelled = state.withLock { s -> Bool in
                    if Task.isCancelled { return true }
                    s.waiters[id] = c
                    return false
                }
                if cancelled {
                    c.resume()
                    return
                }
                timer = Task {
                    try? await Task.sleep(until: until, clock: .continuous)
                    self.wake(id)
                }
            }
        } onCancel: {
            self.wake(id)
        }
        timer?.cancel()
    }

    private func wake(_ id: UUID) {
        if let c = state.withLock({ $0.waiters.removeValue(forKey: id) }) { c.resume() }
    }

    private func wakeAll() {
        let all = state.withLock { s in defer { s.waiters = [:] }; return Array(s.waiters.values) }
        for c in all { c.resume() }
    }

    // MARK: What probes and sessions report

    func record(probe: ProbeResult, for endpoint: String) {
        let events = state.withLock { $0.topology.record(probe: probe, for: endpoint, at: .now) }
        handle(events)
    }

    func recordPassiveFailure(_ reason: FailureReason, for endpoint: String) {
        let events = state.withLock { $0.topology.recordPassiveFailure(reason, for: endpoint, at: .now) }
        handle(events)
    }

    func sessionOpened(on endpoint: String, handle: SessionHandle) -> UUID {
        let id = UUID()
        state.withLock { s in
            s.topology.sessionOpened(on: endpoint, intent: handle.intent)
            s.sessions[endpoint, default: [:]][id] = handle
        }
        return id
    }

    func sessionClosed(on endpoint: String, id: UUID) {
        let events: [TopologyEvent] = state.withLock { s in
            guard let h = s.sessions[endpoint]?.removeValue(forKey: id) else { return [] }
            return s.topology.sessionClosed(on: endpoint, intent: h.intent, at: .now)
        }
        handle(events)
    }

    func nextProbeDelay(_ endpoint: String) -> Duration {
        state.withLock { $0.topology[endpoint]?.health.nextProbeDelay } ?? .seconds(2)
    }

    func summary() -> String { state.withLock { $0.topology.summary(now: .now) } }

    func withTopology<T>(_ body: (ClusterTopology) -> T) -> T { state.withLock { body($0.topology) } }

    /// Operator actions (admin API): drain, enable, disable an endpoint.
    func setAdmin(_ action: String, endpoint: String) throws -> [TopologyEvent] {
        let events: [TopologyEvent] = try state.withLock { s in
            switch action {
            case "drain": return try s.topology.drain(endpoint, at: .now)
            case "enable": return try s.topology.enable(endpoint, at: .now)
            case "disable": return try s.topology.disable(endpoint, at: .now)
            default: return []
            }
        }
        handle(events)
        return events
    }

    var currentPrimary: String? { state.withLock { $0.topology.currentPrimary } }

    /// Open sessions, oldest first.
    /// Closes the pool's idle connections that are retired, idle too long, or to an
    /// endpoint the router would not send this kind of session to now.
    func sweepPool(unusable extra: Set<String> = []) {
        guard let pool else { return }
        let unusable = state.withLock { s in
            Set(config.endpoints.map(\.name).filter { name in
                guard let e = s.topology[name] else { return true }
                return !(e.health.isUp && e.health.admin.acceptsNewSessions)
            })
        }
        pool.sweep(unusableEndpoints: unusable.union(extra))
    }

    func sessions() -> [SessionInfo] {
        state.withLock { s in s.sessions.values.flatMap { $0.values.map(\.info) } }.sorted { ($0.openedAt, $0.id) < ($1.openedAt, $1.id) }
    }

    private func handle(_ events: [TopologyEvent]) {
        for event in events {
            if let audit, var line = AuditEvent.topology(event, cluster: config.name) {
                // The first primary a cluster finds at start is not a failover.
                if case .primaryChanged(nil, let to?, _) = event, state.withLock({ $0.topology.lastPrimaryLoss == nil }) {
                    line = .endpointState(cluster: config.name, endpoint: to, state: .up, by: .probe, reason: "confirmed as the primary")
                }
                _ = audit.record(line)
            }
            switch event {
            case .primaryChanged(let from, let to, _):
                logger.notice("primary changed", metadata: ["cluster": "\(config.name)", "from": "\(from ?? "none")", "to": "\(to ?? "none")"])
                if to != nil { wakeAll() }
                if from != nil, to != nil { metrics?.failover(cluster: config.name) }
            case .demoted(let endpoint, let cause, let scope, let policy, _):
                let victims = state.withLock { s in
                    (s.sessions[endpoint] ?? [:]).values.filter { scope == .allSessions || $0.intent == .readWrite }
                }
                logger.notice("endpoint demoted: closing its sessions", metadata: [
                    "cluster": "\(config.name)", "endpoint": "\(endpoint)", "cause": "\(cause)",
                    "sessions": "\(victims.count)", "policy": "\(policy)",
                ])
                for v in victims { v.close(policy == .afterCurrentRequest) }
                pool?.sweep(unusableEndpoints: [endpoint])
            case .endpointDown(let endpoint, let reason, _):
                logger.warning("endpoint down", metadata: ["cluster": "\(config.name)", "endpoint": "\(endpoint)", "reason": "\(reason)"])
                pool?.sweep(unusableEndpoints: [endpoint])
            case .endpointUp(let endpoint, _):
                logger.info("endpoint up", metadata: ["cluster": "\(config.name)", "endpoint": "\(endpoint)"])
            default:
                logger.debug("topology event", metadata: ["cluster": "\(config.name)", "event": "\(event)"])
            }
        }
    }
}
