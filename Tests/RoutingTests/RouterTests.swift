import TDS
import Testing
@testable import Routing

@Suite("Router: writes to the primary, reads balanced over replicas")
struct RouterTests {
    let clock = TestClock()

    @Test func writesGoToTheConfirmedPrimary() {
        var router = Router()
        let topology = steadyOrders(clock)
        #expect(router.decide(intent: .readWrite, database: "appdb", topology: topology, now: clock(1)) == .endpoint("east", reason: .primary))
    }

    @Test func writeWaitIsBoundedThenRefusedWithAReason() {
        var topology = steadyOrders(clock)
        for t in [1.0, 2.0, 3.0] { topology.record(probe: .failure(.timeout), for: "east", at: clock(t)) }
        var router = Router(maxWriteWait: .seconds(10))

        let first = router.decide(intent: .readWrite, database: "appdb", topology: topology, now: clock(4))
        #expect(first == .wait(until: clock(14), reason: "cluster 'orders' has no primary; write login waits up to 10 s for one"))
        // Woken early (e.g. by an unrelated event): still waiting, same bound.
        if case .wait(let until, _) = router.decide(intent: .readWrite, database: "appdb", topology: topology, now: clock(9), waitingSince: clock(4)) {
            #expect(until == clock(14))
        } else {
            Issue.record("expected to keep waiting")
        }
        let last = router.decide(intent: .readWrite, database: "appdb", topology: topology, now: clock(14), waitingSince: clock(4))
        let text = last.refusal ?? ""
        #expect(text.hasPrefix("cluster 'orders' has no primary: last primary 'east' has been down for 11 s (timed out), and no other endpoint is confirmed READ_WRITE ["))
        #expect(text.hasSuffix("; waited 10 s"))
        #expect(text.contains("'west' UP, READ_ONLY geo secondary"))
    }

    @Test func theClientsLoginDeadlineCutsTheWaitShort() {
        let topology = ClusterTopology(ordersSpec())
        var router = Router(maxWriteWait: .seconds(30))
        #expect(router.decide(intent: .readWrite, database: nil, topology: topology, now: clock(0), loginDeadline: clock(5))
            == .wait(until: clock(5), reason: "cluster 'orders' has no primary; write login waits up to 5 s for one"))
        let text = router.decide(intent: .readWrite, database: nil, topology: topology, now: clock(5), waitingSince: clock(0), loginDeadline: clock(5)).refusal
        #expect(text?.contains("no endpoint has been confirmed READ_WRITE yet") == true)
        #expect(text?.hasSuffix("waited 5 s (the client's login timeout)") == true)
    }

    @Test func zeroWaitRefusesAtOnce() {
        let topology = ClusterTopology(ordersSpec())
        var router = Router(maxWriteWait: .zero)
        #expect(router.decide(intent: .readWrite, database: nil, topology: topology, now: clock(0)).refusal != nil)
    }

    @Test func drainingPrimaryRefusesNewWrites() throws {
        var topology = steadyOrders(clock)
        try topology.drain("east", at: clock(1))
        var router = Router()
        #expect(router.decide(intent: .readWrite, database: "appdb", topology: topology, now: clock(2)).refusal
            == "cluster 'orders': primary 'east' is draining by an operator and takes no new sessions")
    }

    @Test func roundRobinTakesEachReplicaInTurn() {
        let topology = steadyOrders(clock)
        var router = Router()
        let picks = (0..<7).map { _ in router.decide(intent: .readOnly, database: "appdb", topology: topology, now: clock(1)).endpointName }
        #expect(picks == ["west", "r1", "r2", "west", "r1", "r2", "west"])
    }

    @Test func roundRobinSurvivesTheSetChanging() {
        var topology = steadyOrders(clock)
        var router = Router()
        #expect(router.decide(intent: .readOnly, database: nil, topology: topology, now: clock(1)).endpointName == "west")
        #expect(router.decide(intent: .readOnly, database: nil, topology: topology, now: clock(1)).endpointName == "r1")
        for t in [2.0, 3.0, 4.0] { topology.record(probe: .refused, for: "r2", at: clock(t)) }
        #expect(router.decide(intent: .readOnly, database: nil, topology: topology, now: clock(5)).endpointName == "west")
        #expect(router.decide(intent: .readOnly, database: nil, topology: topology, now: clock(5)).endpointName == "r1")
    }

    @Test func leastSessionsPicksTheEmptiestAndRotatesTies() {
        var topology = steadyOrders(clock)
        topology.sessionOpened(on: "west", intent: .readOnly)
        topology.sessionOpened(on: "west", intent: .readOnly)
        topology.sessionOpened(on: "r1", intent: .readOnly)
        var router = Router()
        let options = RouteOptions(balancing: .leastSessions)
        func pick() -> String? {
            router.decide(intent: .readOnly, database: nil, options: options, topology: topology, now: clock(1)).endpointName
        }
        #expect(pick() == "r2")
        topology.sessionOpened(on: "r2", intent: .readOnly)
        // r1 and r2 tie at one session: rotation continues after r2, wrapping to r1.
        #expect(pick() == "r1")
        #expect(pick() == "r2")
    }

    @Test func lowestLatencyPicksTheFastestAndTreatsNearTiesAlike() {
        var topology = ClusterTopology(ordersSpec())
        topology.record(probe: .ok(.readWrite, ms: 1), for: "east", at: clock(0))
        topology.record(probe: .ok(.readOnly, ms: 40), for: "west", at: clock(0))
        topology.record(probe: .ok(.readOnly, ms: 10), for: "r1", at: clock(0))
        topology.record(probe: .ok(.readOnly, ms: 25), for: "r2", at: clock(0))
        var router = Router()
        let options = RouteOptions(balancing: .lowestLatency)
        func pick() -> String? {
            router.decide(intent: .readOnly, database: nil, options: options, topology: topology, now: clock(1)).endpointName
        }
        #expect(pick() == "r1")
        #expect(pick() == "r1")
        // Within 10 % (or 1 ms) of the best counts as equal: r2 at 10.5 ms shares with r1.
        var close = ClusterTopology(ordersSpec())
        close.record(probe: .ok(.readWrite, ms: 1), for: "east", at: clock(2))
        close.record(probe: .ok(.readOnly, ms: 40), for: "west", at: clock(2))
        close.record(probe: .success(role: .readOnly, latency: .microseconds(10_500)), for: "r1", at: clock(2))
        close.record(probe: .ok(.readOnly, ms: 10), for: "r2", at: clock(2))
        func pickClose() -> String? {
            router.decide(intent: .readOnly, database: nil, options: options, topology: close, now: clock(3)).endpointName
        }
        #expect(Set([pickClose(), pickClose()]) == ["r1", "r2"])
    }

    @Test func readsFallBackToThePrimaryOnlyWhenAllowed() throws {
        var topology = steadyOrders(clock)
        for name in ["west", "r1", "r2"] { try topology.drain(name, at: clock(1)) }
        var router = Router()
        #expect(router.decide(intent: .readOnly, database: nil, topology: topology, now: clock(2)) == .endpoint("east", reason: .readFallbackToPrimary))
        let strict = RouteOptions(allowReadOnlyFallbackToPrimary: false)
        let text = router.decide(intent: .readOnly, database: nil, options: strict, topology: topology, now: clock(2)).refusal
        #expect(text?.hasPrefix("cluster 'orders' has no healthy replica for read-only sessions, and the routing rule forbids falling back to the primary [") == true)
    }

    @Test func readsWithNothingAtAllAreRefused() {
        let topology = ClusterTopology(ordersSpec())
        var router = Router()
        #expect(router.decide(intent: .readOnly, database: nil, topology: topology, now: clock(0)).refusal?
            .hasPrefix("cluster 'orders' has no healthy replica for read-only sessions, and no primary to fall back to") == true)
    }

    @Test func retriesAvoidFailedEndpointsWhenThereIsAChoice() {
        let topology = steadyOrders(clock)
        var router = Router()
        #expect(router.decide(intent: .readOnly, database: nil, topology: topology, now: clock(1), avoiding: ["west", "r1"]).endpointName == "r2")
        // Every replica failed: the primary takes the read...
        #expect(router.decide(intent: .readOnly, database: nil, topology: topology, now: clock(1), avoiding: ["west", "r1", "r2"])
            == .endpoint("east", reason: .readFallbackToPrimary))
        // ...and when that is not allowed, going back beats failing.
        let strict = RouteOptions(allowReadOnlyFallbackToPrimary: false)
        #expect(router.decide(intent: .readOnly, database: nil, options: strict, topology: topology, now: clock(1), avoiding: ["west", "r1", "r2"]).endpointName != nil)
        // Writes have only the primary, whatever failed before.
        #expect(router.decide(intent: .readWrite, database: nil, topology: topology, now: clock(1), avoiding: ["east"]).endpointName == "east")
    }

    @Test func databasesOutsideTheClusterAreRefused() {
        let topology = steadyOrders(clock)
        var router = Router()
        #expect(router.decide(intent: .readWrite, database: "payroll", topology: topology, now: clock(1)).refusal
            == "cluster 'orders' does not serve database 'payroll' (it serves: appdb)")
    }

    @Test func intentComesFromLogin7AndPolicy() {
        var login = Login7()
        #expect(SessionIntent(login: login, writeAllowed: true) == .readWrite)
        #expect(SessionIntent(login: login, writeAllowed: false) == .readOnly)
        login.readOnlyIntent = true
        #expect(SessionIntent(login: login, writeAllowed: true) == .readOnly)
    }

    @Test func firstMatchingRuleGivesTheOptions() {
        let rules = RoutingRules([
            RoutingRule(name: "reports-stay-off-primary", intent: .readOnly, databases: ["AppDB"], roles: ["Reporting"],
                        options: RouteOptions(allowReadOnlyFallbackToPrimary: false, balancing: .leastSessions)),
            RoutingRule(name: "reads-fast", intent: .readOnly, options: RouteOptions(balancing: .lowestLatency)),
        ], defaultOptions: RouteOptions(balancing: .roundRobin))
        let reporting = rules.match(intent: .readOnly, database: "appdb", principalRoles: ["reporting", "app"])
        #expect(reporting.rule == "reports-stay-off-primary")
        #expect(reporting.options.allowReadOnlyFallbackToPrimary == false)
        #expect(rules.match(intent: .readOnly, database: "other", principalRoles: ["reporting"]).rule == "reads-fast")
        #expect(rules.match(intent: .readOnly, database: "appdb", principalRoles: []).rule == "reads-fast")
        let write = rules.match(intent: .readWrite, database: "appdb", principalRoles: ["reporting"])
        #expect(write.rule == nil)
        #expect(write.options == RouteOptions(balancing: .roundRobin))
    }

    @Test func aRuleCanKeepReadsOnChosenReplicas() {
        let topology = steadyOrders(clock)
        var router = Router()
        let westOnly = RouteOptions(replicas: ["west"])
        let picks = (0..<3).map { _ in router.decide(intent: .readOnly, database: "appdb", options: westOnly, topology: topology, now: clock(1)).endpointName }
        #expect(picks == ["west", "west", "west"])
        let none = RouteOptions(allowReadOnlyFallbackToPrimary: false, replicas: ["gone"])
        #expect(router.decide(intent: .readOnly, database: "appdb", options: none, topology: topology, now: clock(1)).refusal?
            .hasPrefix("cluster 'orders' has no healthy replica for read-only sessions among gone, and the routing rule forbids") == true)
    }

    @Test func aRuleCanSendReadIntentToThePrimaryAndItWaitsLikeAWrite() {
        let toPrimary = RouteOptions(readTarget: .primary)
        var router = Router(maxWriteWait: .seconds(5))
        #expect(router.decide(intent: .readOnly, database: "appdb", options: toPrimary, topology: steadyOrders(clock), now: clock(1))
            == .endpoint("east", reason: .primary))
        let noPrimary = ClusterTopology(ordersSpec())
        #expect(router.decide(intent: .readOnly, database: nil, options: toPrimary, topology: noPrimary, now: clock(0))
            == .wait(until: clock(5), reason: "cluster 'orders' has no primary; write login waits up to 5 s for one"))
    }
}
