import Testing
@testable import Routing

@Suite("ClusterTopology: primary detection, replicas, drain")
struct ClusterTopologyTests {
    let clock = TestClock()

    @Test func noPrimaryUntilAProbeConfirmsReadWrite() {
        var topology = ClusterTopology(ordersSpec())
        #expect(topology.currentPrimary == nil)
        // The configured hint alone never makes a primary.
        let failed = topology.record(probe: .refused, for: "east", at: clock(0))
        #expect(failed == [.endpointDown(endpoint: "east", reason: .connect("refused"), at: clock(0))])
        #expect(topology.currentPrimary == nil)

        let events = topology.record(probe: .ok(.readWrite), for: "west", at: clock(1))
        #expect(events == [
            .endpointUp(endpoint: "west", at: clock(1)),
            .roleChanged(endpoint: "west", from: nil, to: .readWrite, geo: nil, at: clock(1)),
            .primaryChanged(from: nil, to: "west", at: clock(1)),
        ])
        #expect(topology.currentPrimary == "west")
        #expect(topology.primarySince == clock(1))
    }

    @Test func eligibleReplicasAreUpEnabledReadOnlyOrConfiguredReplicas() throws {
        var topology = steadyOrders(clock)
        #expect(topology.eligibleReplicas.map(\.name) == ["west", "r1", "r2"])

        // A replica-hinted endpoint whose role query gave nothing still serves reads...
        topology.record(probe: .ok(.unknown), for: "r1", at: clock(1))
        #expect(topology.eligibleReplicas.map(\.name) == ["west", "r1", "r2"])
        // ...an auto one does not.
        topology.record(probe: .ok(.unknown), for: "west", at: clock(1))
        #expect(topology.eligibleReplicas.map(\.name) == ["r1", "r2"])

        try topology.drain("r2", at: clock(2))
        #expect(topology.eligibleReplicas.map(\.name) == ["r1"])
        for t in [3.0, 5.0, 7.0] { topology.record(probe: .refused, for: "r1", at: clock(t)) }
        #expect(topology.eligibleReplicas.isEmpty)
    }

    @Test func drainKeepsSessionsTakesNoNewOnesAndReportsWhenEmpty() throws {
        var topology = steadyOrders(clock)
        topology.sessionOpened(on: "r1", intent: .readOnly)
        topology.sessionOpened(on: "r1", intent: .readOnly)
        let drainEvents = try topology.drain("r1", at: clock(1))
        #expect(drainEvents == [.adminChanged(endpoint: "r1", from: .enabled, to: .draining, at: clock(1))])
        #expect(topology["r1"]?.sessions == 2)
        #expect(!topology.eligibleReplicas.contains { $0.name == "r1" })
        #expect(topology.sessionClosed(on: "r1", intent: .readOnly, at: clock(2)).isEmpty)
        #expect(topology.sessionClosed(on: "r1", intent: .readOnly, at: clock(3)) == [.drained(endpoint: "r1", at: clock(3))])

        // Draining an idle endpoint is finished at once.
        #expect(try topology.drain("r2", at: clock(4)) == [
            .adminChanged(endpoint: "r2", from: .enabled, to: .draining, at: clock(4)),
            .drained(endpoint: "r2", at: clock(4)),
        ])
        // Repeating a state changes nothing.
        #expect(try topology.drain("r2", at: clock(5)).isEmpty)
        try topology.enable("r1", at: clock(6))
        #expect(topology.eligibleReplicas.map(\.name) == ["west", "r1"])
    }

    @Test func adminCallsRejectUnknownNamesOthersIgnoreThem() {
        var topology = steadyOrders(clock)
        #expect(throws: TopologyError.unknownEndpoint(cluster: "orders", endpoint: "nope")) {
            try topology.drain("nope", at: clock(1))
        }
        #expect(topology.record(probe: .refused, for: "nope", at: clock(1)).isEmpty)
        topology.sessionOpened(on: "nope", intent: .readWrite)
        #expect(topology.sessionClosed(on: "nope", intent: .readWrite, at: clock(1)).isEmpty)
    }

    @Test func sessionCountsSplitByIntentAndNeverGoNegative() {
        var topology = steadyOrders(clock)
        topology.sessionOpened(on: "east", intent: .readWrite)
        topology.sessionOpened(on: "east", intent: .readOnly)
        #expect(topology["east"]?.writeSessions == 1)
        #expect(topology["east"]?.readSessions == 1)
        topology.sessionClosed(on: "east", intent: .readWrite, at: clock(1))
        topology.sessionClosed(on: "east", intent: .readWrite, at: clock(1))
        #expect(topology["east"]?.writeSessions == 0)
        #expect(topology["east"]?.sessions == 1)
    }

    /// The failover as Azure does it: the old primary turns READ_ONLY first, the new one
    /// becomes READ_WRITE a little later. In between there is no primary.
    @Test func oldPrimarySeenReadOnlyBeforeTheNewOneIsConfirmed() {
        var topology = steadyOrders(clock)
        #expect(topology.currentPrimary == "east")

        let demotion = topology.record(probe: .ok(.readOnly), for: "east", at: clock(10))
        #expect(demotion == [
            .roleChanged(endpoint: "east", from: .readWrite, to: .readOnly, geo: nil, at: clock(10)),
            .primaryChanged(from: "east", to: nil, at: clock(10)),
            .demoted(endpoint: "east", cause: .seenReadOnly, scope: .writeSessions, policy: .afterCurrentRequest, at: clock(10)),
        ])
        #expect(topology.currentPrimary == nil)
        #expect(topology.lastPrimaryLoss == ClusterTopology.PrimaryLoss(endpoint: "east", cause: .seenReadOnly, at: clock(10)))
        // The old primary is a readable secondary now and serves reads.
        #expect(topology.eligibleReplicas.map(\.name) == ["east", "west", "r1", "r2"])

        var router = Router(maxWriteWait: .seconds(10))
        #expect(router.decide(intent: .readWrite, database: "appdb", topology: topology, now: clock(10.5))
            == .wait(until: clock(20.5), reason: "cluster 'orders' has no primary; write login waits up to 10 s for one"))
        #expect(router.decide(intent: .readOnly, database: "appdb", topology: topology, now: clock(10.5)).endpointName != nil)

        let promotion = topology.record(probe: .ok(.readWrite, geo: .primary), for: "west", at: clock(12))
        #expect(promotion.primaryChanges.map(\.to) == ["west"])
        #expect(promotion.demotions.isEmpty)
        #expect(topology.currentPrimary == "west")
        #expect(router.decide(intent: .readWrite, database: "appdb", topology: topology, now: clock(12), waitingSince: clock(10.5))
            == .endpoint("west", reason: .primary))
        #expect(!topology.eligibleReplicas.contains { $0.name == "west" })
    }

    @Test func primaryGoingDownIsDemotedWithAllItsSessions() {
        var topology = ClusterTopology(ordersSpec(policy: .immediately))
        topology.record(probe: .ok(.readWrite), for: "east", at: clock(0))
        topology.record(probe: .failure(.timeout), for: "east", at: clock(2))
        topology.record(probe: .failure(.timeout), for: "east", at: clock(4))
        #expect(topology.currentPrimary == "east", "still up while going down")
        let events = topology.record(probe: .failure(.timeout), for: "east", at: clock(6))
        #expect(events == [
            .endpointDown(endpoint: "east", reason: .timeout, at: clock(6)),
            .primaryChanged(from: "east", to: nil, at: clock(6)),
            .demoted(endpoint: "east", cause: .down, scope: .allSessions, policy: .immediately, at: clock(6)),
        ])
    }

    @Test func passiveFailuresAloneCanTakeThePrimaryDown() {
        var topology = steadyOrders(clock)
        for t in [1.0, 1.1] {
            topology.recordPassiveFailure(.sessionBroken("reset"), for: "east", at: clock(t))
        }
        #expect(topology.currentPrimary == "east")
        let events = topology.recordPassiveFailure(.login(number: 40613, message: ""), for: "east", at: clock(1.2))
        #expect(events.primaryChanges.map(\.from) == ["east"])
        #expect(events.demotions.map(\.cause) == [.down])
    }

    @Test func geoSecondaryIsNeverPrimaryEvenIfUpdateabilitySaysReadWrite() {
        var topology = ClusterTopology(ordersSpec())
        topology.record(probe: .ok(.readWrite, geo: .secondary), for: "west", at: clock(0))
        #expect(topology.currentPrimary == nil)
        topology.record(probe: .ok(.readWrite, geo: .primary), for: "west", at: clock(1))
        #expect(topology.currentPrimary == "west")
        let events = topology.record(probe: .ok(.readWrite, geo: .secondary), for: "west", at: clock(2))
        #expect(events.demotions.map(\.cause) == [.seenGeoSecondary])
    }

    @Test func roleQueryFailureDemotesWithoutClosingReads() {
        var topology = steadyOrders(clock)
        let events = topology.record(probe: .ok(.unknown), for: "east", at: clock(1))
        #expect(events.demotions.map(\.cause) == [.roleUnknown])
        #expect(events.demotions.map(\.scope) == [.writeSessions])
    }

    @Test func disablingThePrimaryDemotesIt() throws {
        var topology = steadyOrders(clock)
        let events = try topology.disable("east", at: clock(1))
        #expect(events.first == .adminChanged(endpoint: "east", from: .enabled, to: .disabled, at: clock(1)))
        #expect(events.demotions.map(\.cause) == [.disabled])
        #expect(events.demotions.map(\.scope) == [.allSessions])
        #expect(topology.currentPrimary == nil)
        let back = try topology.enable("east", at: clock(2))
        #expect(back.primaryChanges.map(\.to) == ["east"])
    }

    @Test func drainingThePrimaryKeepsItPrimary() throws {
        var topology = steadyOrders(clock)
        let events = try topology.drain("east", at: clock(1))
        #expect(events.primaryChanges.isEmpty)
        #expect(topology.currentPrimary == "east")
    }

    @Test func severalReadWriteEndpointsGiveADeterministicChoiceAndOneWarning() {
        // A failover-group listener (auto) in front of the server (hint primary): both answer READ_WRITE.
        let quick = ProbeSettings(rise: 1, fall: 1)
        let spec = ClusterSpec(name: "fog", endpoints: [
            EndpointSpec(name: "listener", roleHint: .auto, probe: quick),
            EndpointSpec(name: "server", roleHint: .primary, probe: quick),
            EndpointSpec(name: "geo", roleHint: .replica, probe: quick),
        ])
        var topology = ClusterTopology(spec)
        topology.record(probe: .ok(.readWrite), for: "listener", at: clock(0))
        #expect(topology.currentPrimary == "listener")
        let both = topology.record(probe: .ok(.readWrite), for: "server", at: clock(1))
        // Sticky: the primary already chosen stays while it qualifies.
        #expect(both.contains(.multiplePrimaries(candidates: ["listener", "server"], chosen: "listener", at: clock(1))))
        #expect(both.primaryChanges.isEmpty)
        // The same set again: no second warning.
        #expect(topology.record(probe: .ok(.readWrite), for: "server", at: clock(3)).isEmpty)

        // Fresh start with both seen at once: the hint decides, then configuration order.
        var fresh = ClusterTopology(spec)
        fresh.record(probe: .ok(.readWrite), for: "geo", at: clock(0))
        #expect(fresh.currentPrimary == "geo")
        fresh.record(probe: .refused, for: "geo", at: clock(1))
        #expect(fresh.currentPrimary == nil)
        fresh.record(probe: .ok(.readWrite), for: "geo", at: clock(2))
        fresh.record(probe: .ok(.readWrite), for: "geo", at: clock(3))
        fresh.record(probe: .ok(.readWrite), for: "listener", at: clock(3))
        #expect(fresh.currentPrimary == "geo", "sticky")
        fresh.record(probe: .ok(.readWrite), for: "server", at: clock(3))
        fresh.record(probe: .refused, for: "geo", at: clock(4))
        #expect(fresh.currentPrimary == "server", "hint primary beats auto")
    }

    @Test func describesEndpointsForPeople() {
        var topology = steadyOrders(clock)
        for t in [1.0, 2.0, 3.0] { topology.record(probe: .failure(.connect("refused")), for: "east", at: clock(t)) }
        #expect(topology.describe("east", now: clock(15)) == "DOWN for 12 s (connect failed: refused)")
        #expect(topology.describe("west", now: clock(15)) == "UP, READ_ONLY geo secondary")
        #expect(topology.summary(now: clock(15)).hasPrefix("'east' DOWN for 12 s"))
    }

    @Test func clusterServesItsDatabasesWithoutCase() {
        let topology = steadyOrders(clock)
        #expect(topology.serves(database: "AppDB"))
        #expect(topology.serves(database: nil))
        #expect(topology.serves(database: ""))
        #expect(!topology.serves(database: "other"))
    }
}
