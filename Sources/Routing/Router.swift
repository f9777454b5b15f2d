/// Places new sessions. Pure apart from its round-robin position, which it keeps per cluster
/// so one router can serve every cluster of the proxy.
public struct Router: Sendable {
    /// How long a write login may wait for a primary before it is refused.
    public var maxWriteWait: Duration
    /// Configuration position of the replica last chosen, per cluster.
    private var lastChosen: [String: Int] = [:]

    public static let defaultMaxWriteWait: Duration = .seconds(15)

    public init(maxWriteWait: Duration = Router.defaultMaxWriteWait) {
        self.maxWriteWait = maxWriteWait
    }

    /// Decides where a new session goes.
    ///
    /// - Parameters:
    ///   - waitingSince: when this login first got `.wait` (nil on the first call); the wait
    ///     bound counts from there.
    ///   - loginDeadline: the client's own login timeout, if known: waiting past it is useless.
    ///   - avoiding: endpoints a retry should not go back to (see `LoginRetryPlan`); used
    ///     only when there is somewhere else to go.
    public mutating func decide(
        intent: SessionIntent,
        database: String?,
        options: RouteOptions = RouteOptions(),
        topology: ClusterTopology,
        now: ContinuousClock.Instant,
        waitingSince: ContinuousClock.Instant? = nil,
        loginDeadline: ContinuousClock.Instant? = nil,
        avoiding: Set<String> = []
    ) -> RouteDecision {
        guard topology.serves(database: database) else {
            return .refuse(RouteRefusal(.databaseNotServed, "cluster '\(topology.name)' does not serve database '\(database ?? "")' (it serves: \(topology.databases.joined(separator: ", ")))"))
        }
        switch intent {
        case .readWrite:
            return decideWrite(topology: topology, now: now, waitingSince: waitingSince, loginDeadline: loginDeadline)
        case .readOnly where options.readTarget == .primary:
            return decideWrite(topology: topology, now: now, waitingSince: waitingSince, loginDeadline: loginDeadline)
        case .readOnly:
            return decideRead(options: options, topology: topology, now: now, avoiding: avoiding)
        }
    }

    // MARK: writes

    private func decideWrite(
        topology: ClusterTopology, now: ContinuousClock.Instant,
        waitingSince: ContinuousClock.Instant?, loginDeadline: ContinuousClock.Instant?
    ) -> RouteDecision {
        // The topology only names a primary whose last probe saw READ_WRITE; checking again
        // here keeps "never write to an endpoint last seen read-only" true even if that changes.
        if let primary = topology.primaryEndpoint, primary.isWriteCandidate {
            guard primary.health.admin.acceptsNewSessions else {
                return .refuse(RouteRefusal(.primaryOutOfService, "cluster '\(topology.name)': primary '\(primary.name)' is \(primary.health.admin) by an operator and takes no new sessions"))
            }
            return .endpoint(primary.name, reason: .primary)
        }
        let started = waitingSince ?? now
        var until = started + maxWriteWait
        var boundByClient = false
        if let loginDeadline, loginDeadline < until {
            until = loginDeadline
            boundByClient = true
        }
        if now < until {
            return .wait(until: until, reason: "cluster '\(topology.name)' has no primary; write login waits up to \((until - now).humanText) for one")
        }
        var text = "cluster '\(topology.name)' has no primary: " + Self.whyNoPrimary(topology, now: now)
        text += "; waited \((now - started).humanText)"
        if boundByClient { text += " (the client's login timeout)" }
        return .refuse(RouteRefusal(.noPrimary, text))
    }

    private static func whyNoPrimary(_ topology: ClusterTopology, now: ContinuousClock.Instant) -> String {
        var text: String
        if let loss = topology.lastPrimaryLoss {
            let ago = (now - loss.at).humanText
            switch loss.cause {
            case .down:
                let detail = topology[loss.endpoint]?.health.lastFailure.map { " (\($0.reason))" } ?? ""
                text = "last primary '\(loss.endpoint)' has been down for \(ago)\(detail)"
            case .roleUnknown:
                text = "last primary '\(loss.endpoint)' could not be confirmed READ_WRITE \(ago) ago"
            case .seenReadOnly, .seenGeoSecondary, .disabled:
                text = "last primary '\(loss.endpoint)' was \(loss.cause) \(ago) ago"
            }
            text += ", and no other endpoint is confirmed READ_WRITE"
        } else {
            text = "no endpoint has been confirmed READ_WRITE yet"
        }
        return text + " [\(topology.summary(now: now))]"
    }

    // MARK: reads

    private mutating func decideRead(
        options: RouteOptions, topology: ClusterTopology, now: ContinuousClock.Instant, avoiding: Set<String>
    ) -> RouteDecision {
        var replicas = topology.eligibleReplicas
        if let allowed = options.replicas { replicas = replicas.filter { allowed.contains($0.name) } }
        let fresh = replicas.filter { !avoiding.contains($0.name) }
        var primary: ClusterTopology.Endpoint?
        if options.allowReadOnlyFallbackToPrimary, let p = topology.primaryEndpoint, p.isWriteCandidate, p.health.admin.acceptsNewSessions {
            primary = p
        }
        // Somewhere new first; going back to an endpoint a retry avoids beats failing the login.
        if !fresh.isEmpty {
            return .endpoint(choose(from: fresh, balancing: options.balancing, cluster: topology.name, topology: topology), reason: .replica(options.balancing))
        }
        if let primary, !avoiding.contains(primary.name) {
            return .endpoint(primary.name, reason: .readFallbackToPrimary)
        }
        if !replicas.isEmpty {
            return .endpoint(choose(from: replicas, balancing: options.balancing, cluster: topology.name, topology: topology), reason: .replica(options.balancing))
        }
        if let primary {
            return .endpoint(primary.name, reason: .readFallbackToPrimary)
        }
        var text = "cluster '\(topology.name)' has no healthy replica for read-only sessions"
        if let allowed = options.replicas { text += " among \(allowed.sorted().joined(separator: ", "))" }
        if !options.allowReadOnlyFallbackToPrimary {
            text += ", and the routing rule forbids falling back to the primary"
        } else if let p = topology.primaryEndpoint {
            text += ", and primary '\(p.name)' is \(p.health.admin) and takes no new sessions"
        } else {
            text += ", and no primary to fall back to"
        }
        return .refuse(RouteRefusal(.noReplica, text + " [\(topology.summary(now: now))]"))
    }

    /// Probe latencies within this much of the best count as equal, so that EWMA noise of a
    /// fraction of a millisecond does not herd every read session onto one replica.
    static let latencyTieAbsolute: Duration = .milliseconds(1)
    static let latencyTieRelative = 0.10

    /// `pool` is in configuration order and not empty.
    private mutating func choose(from pool: [ClusterTopology.Endpoint], balancing: Balancing, cluster: String, topology: ClusterTopology) -> String {
        var ties = pool
        switch balancing {
        case .roundRobin:
            break
        case .leastSessions:
            let fewest = pool.map(\.sessions).min() ?? 0
            ties = pool.filter { $0.sessions == fewest }
        case .lowestLatency:
            let measured = pool.compactMap(\.health.latency)
            if let best = measured.min() {
                let band = max(Self.latencyTieAbsolute, .seconds(best.secondsValue * Self.latencyTieRelative))
                ties = pool.filter { e in e.health.latency.map { $0 <= best + band } ?? false }
            }
        }
        // Ties go round-robin too, so equal replicas share the load instead of the first
        // one in the file taking every burst.
        let last = lastChosen[cluster] ?? -1
        let positions = ties.map { topology.position(of: $0.name) ?? 0 }
        let pick = positions.firstIndex { $0 > last } ?? 0
        lastChosen[cluster] = positions[pick]
        return ties[pick].name
    }
}
