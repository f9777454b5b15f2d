import Testing
@testable import Routing

/// HAProxy's own health counter (0 ... rise+fall-1, up from `rise`), written the way
/// HAProxy's check code does it, as an independent model of `EndpointHealth`.
private struct HAProxyCounter {
    let rise: Int
    let fall: Int
    var health: Int?

    var isUp: Bool { (health ?? -1) >= rise }

    mutating func apply(success: Bool) {
        guard let h = health else {
            health = success ? rise + fall - 1 : 0
            return
        }
        if success {
            if h < rise + fall - 1 { health = h + 1 >= rise ? rise + fall - 1 : h + 1 }
        } else {
            health = h > rise ? h - 1 : 0
        }
    }
}

@Suite("Properties over random probe sequences")
struct RoutingPropertyTests {
    static let names = ["east", "west", "r1", "r2"]

    /// Random probes, passive failures, admin actions and sessions; after every step, a write
    /// decision never names an endpoint whose last successful probe was not READ_WRITE (or
    /// that is down, geo-secondary or not enabled), reads only go to endpoints that are up and
    /// enabled, and health agrees with HAProxy's counter.
    @Test(arguments: 0..<24 as Range<UInt64>)
    func neverWritesToAnEndpointLastSeenReadOnly(seed: UInt64) throws {
        var rng = SplitMix64(seed: seed)
        let clock = TestClock()
        let rise = Int.random(in: 1...3, using: &rng)
        let fall = Int.random(in: 1...3, using: &rng)
        var topology = ClusterTopology(ordersSpec(rise: rise, fall: fall))
        var router = Router(maxWriteWait: .seconds(5))
        var lastRole: [String: ObservedRole] = [:]
        var lastGeo: [String: GeoRole] = [:]
        var counters = Dictionary(uniqueKeysWithValues: Self.names.map { ($0, HAProxyCounter(rise: rise, fall: fall)) })
        var openSessions: [(String, SessionIntent)] = []
        var violations: [String] = []
        var writesRouted = 0
        var now = clock(0)

        for step in 0..<600 {
            now = now + .milliseconds(Int.random(in: 1...700, using: &rng))
            let name = Self.names.randomElement(using: &rng)!
            var events: [TopologyEvent] = []
            switch Int.random(in: 0..<100, using: &rng) {
            case 0..<60:
                let roll = Int.random(in: 0..<100, using: &rng)
                let result: ProbeResult
                if roll < 20 {
                    result = .failure(.timeout)
                } else {
                    let role: ObservedRole = roll < 50 ? .readWrite : roll < 90 ? .readOnly : .unknown
                    let geo: GeoRole? = name == "west" ? (Bool.random(using: &rng) ? .primary : .secondary) : nil
                    result = .success(role: role, geo: geo.map { GeoObservation(role: $0) }, latency: .milliseconds(Int.random(in: 1...50, using: &rng)))
                    lastRole[name] = role
                    lastGeo[name] = geo
                }
                counters[name]!.apply(success: result != .failure(.timeout))
                events = topology.record(probe: result, for: name, at: now)
            case 60..<72:
                counters[name]!.apply(success: false)
                events = topology.recordPassiveFailure(.sessionBroken("reset"), for: name, at: now)
            case 72..<80:
                let state = [AdminState.enabled, .enabled, .draining, .disabled].randomElement(using: &rng)!
                events = try topology.setAdmin(state, for: name, at: now)
            case 80..<92:
                let intent: SessionIntent = Bool.random(using: &rng) ? .readWrite : .readOnly
                let decision = router.decide(intent: intent, database: "appdb", topology: topology, now: now)
                if let target = decision.endpointName {
                    topology.sessionOpened(on: target, intent: intent)
                    openSessions.append((target, intent))
                }
            default:
                if !openSessions.isEmpty {
                    let (target, intent) = openSessions.remove(at: Int.random(in: 0..<openSessions.count, using: &rng))
                    events = topology.sessionClosed(on: target, intent: intent, at: now)
                }
            }

            // Every primary that is lost is reported as demoted, once.
            for change in events.primaryChanges {
                if let from = change.from, !events.demotions.contains(where: { $0.endpoint == from }) {
                    violations.append("step \(step): primary '\(from)' lost without a demotion event")
                }
            }
            for endpoint in Self.names where topology[endpoint]!.health.isUp != counters[endpoint]!.isUp {
                violations.append("step \(step): '\(endpoint)' up=\(topology[endpoint]!.health.isUp), HAProxy says \(counters[endpoint]!.isUp)")
            }
            if let primary = topology.currentPrimary, lastRole[primary] != .readWrite || lastGeo[primary] == .secondary || !counters[primary]!.isUp {
                violations.append("step \(step): primary '\(primary)' last seen \(lastRole[primary].map(\.rawValue) ?? "never"), geo \(lastGeo[primary].map(\.rawValue) ?? "none")")
            }

            let write = router.decide(intent: .readWrite, database: "appdb", topology: topology, now: now)
            if let target = write.endpointName {
                writesRouted += 1
                if lastRole[target] != .readWrite || lastGeo[target] == .secondary {
                    violations.append("step \(step): write routed to '\(target)', last probe saw \(lastRole[target].map(\.rawValue) ?? "nothing")")
                }
                if !counters[target]!.isUp || topology[target]!.health.admin != .enabled {
                    violations.append("step \(step): write routed to '\(target)' which is down or not enabled")
                }
            }
            let read = router.decide(intent: .readOnly, database: "appdb", topology: topology, now: now)
            if case .endpoint(let target, let reason) = read {
                if !counters[target]!.isUp || topology[target]!.health.admin != .enabled {
                    violations.append("step \(step): read routed to '\(target)' which is down or not enabled")
                }
                if case .replica = reason, target == topology.currentPrimary {
                    violations.append("step \(step): read balanced onto the primary '\(target)'")
                }
                if reason == .readFallbackToPrimary, !topology.eligibleReplicas.isEmpty {
                    violations.append("step \(step): fell back to the primary with replicas available")
                }
            }
        }
        let firstViolations = Array(violations.prefix(5))
        #expect(firstViolations.isEmpty, "\(violations.count) violations in all")
        // The sequence must actually exercise writes, or the property says nothing.
        #expect(writesRouted > 0)
    }
}
