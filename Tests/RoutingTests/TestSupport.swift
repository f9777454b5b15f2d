import Routing

/// Test time: instants as seconds after an arbitrary base, so every test reads like a timeline.
struct TestClock {
    let base = ContinuousClock.now

    func callAsFunction(_ seconds: Double) -> ContinuousClock.Instant {
        base + .milliseconds(Int64((seconds * 1000).rounded()))
    }
}

extension ProbeResult {
    static func ok(_ role: ObservedRole, ms: Int = 5, geo: GeoRole? = nil) -> ProbeResult {
        .success(role: role, geo: geo.map { GeoObservation(role: $0) }, latency: .milliseconds(ms))
    }

    static let refused = ProbeResult.failure(.connect("refused"))
}

/// east (hint primary), west (geo secondary, hint auto), r1 and r2 (readable replicas).
func ordersSpec(rise: Int = 2, fall: Int = 3, policy: DemotionClosePolicy = .afterCurrentRequest) -> ClusterSpec {
    let probe = ProbeSettings(interval: .seconds(2), rise: rise, fall: fall)
    return ClusterSpec(
        name: "orders",
        databases: ["appdb"],
        endpoints: [
            EndpointSpec(name: "east", roleHint: .primary, probe: probe),
            EndpointSpec(name: "west", roleHint: .auto, geo: true, probe: probe),
            EndpointSpec(name: "r1", roleHint: .replica, probe: probe),
            EndpointSpec(name: "r2", roleHint: .replica, probe: probe),
        ],
        demotionPolicy: policy)
}

/// The steady state: east READ_WRITE, everything else READ_ONLY, all up.
func steadyOrders(_ clock: TestClock, rise: Int = 2, fall: Int = 3) -> ClusterTopology {
    var topology = ClusterTopology(ordersSpec(rise: rise, fall: fall))
    topology.record(probe: .ok(.readWrite), for: "east", at: clock(0))
    topology.record(probe: .ok(.readOnly, geo: .secondary), for: "west", at: clock(0))
    topology.record(probe: .ok(.readOnly), for: "r1", at: clock(0))
    topology.record(probe: .ok(.readOnly), for: "r2", at: clock(0))
    return topology
}

extension RouteDecision {
    var endpointName: String? {
        if case .endpoint(let name, _) = self { return name }
        return nil
    }

    var refusal: String? {
        if case .refuse(let refusal) = self { return refusal.reason }
        return nil
    }
}

extension Array where Element == TopologyEvent {
    var primaryChanges: [(from: String?, to: String?)] {
        compactMap { if case .primaryChanged(let from, let to, _) = $0 { (from, to) } else { nil } }
    }

    var demotions: [(endpoint: String, cause: DemotionCause, scope: DemotionScope)] {
        compactMap { if case .demoted(let e, let cause, let scope, _, _) = $0 { (e, cause, scope) } else { nil } }
    }
}
