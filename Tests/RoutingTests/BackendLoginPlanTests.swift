import Testing
@testable import Routing

@Suite("BackendLoginPlan: redirects, retries, rerouting, deadline, what counts against an endpoint")
struct BackendLoginPlanTests {
    let clock = TestClock()
    let worker = LoginRedirect(host: "worker-1.example", port: 11_001)

    func sessionPlan(deadline seconds: Double = 15, followsRedirects: Bool = true,
                     policy: LoginRetryPolicy = LoginRetryPolicy()) -> BackendLoginPlan {
        BackendLoginPlan(placement: .router, deadline: clock(seconds), followsRedirects: followsRedirects, policy: policy)
    }

    /// Start, route to `endpoint`: the plan's first attempt.
    func routed(_ plan: inout BackendLoginPlan, to endpoint: String, onReplica: Bool = false, anotherEligible: Bool = false,
                at seconds: Double = 0) {
        #expect(plan.start(now: clock(seconds)) == .route(avoiding: []))
        #expect(plan.routed(to: endpoint, onReplica: onReplica, anotherEligible: anotherEligible, now: clock(seconds))
            == .attempt(LoginAttemptTarget(endpoint: endpoint), deadline: plan.deadline))
    }

    @Test func aDirectLoginIsOneAttempt() {
        var plan = sessionPlan()
        var rng = SplitMix64(seed: 1)
        routed(&plan, to: "east")
        let step = plan.attemptEnded(.loggedIn, now: clock(0.1), random: &rng)
        #expect(step == BackendLoginStep(action: .loggedIn, endpointFailure: nil))
        #expect(plan.hops == 0 && plan.retries == 0)
    }

    @Test func redirectsAreFollowedUpToTheLimitAndCountForTheEndpoint() {
        var plan = sessionPlan()
        var rng = SplitMix64(seed: 1)
        routed(&plan, to: "gateway")
        for hop in 1...BackendLoginPlan.maxRedirects {
            let to = LoginRedirect(host: "worker-\(hop).example", port: 11_000 + hop)
            let step = plan.attemptEnded(.redirected(to), now: clock(0.1 * Double(hop)), random: &rng)
            #expect(step.action == .attempt(LoginAttemptTarget(endpoint: "gateway", redirect: to), deadline: clock(15)))
            #expect(step.endpointFailure == nil)
        }
        #expect(plan.hops == 10)
        let over = plan.attemptEnded(.redirected(worker), now: clock(2), random: &rng)
        #expect(over.action == .giveUp(.tooManyRedirects(endpoint: "gateway", limit: 10)))
        if case .giveUp(let why) = over.action {
            #expect(!why.isTemporary)
        }
    }

    @Test func aClusterPinnedToProxyRefusesARedirect() {
        var plan = sessionPlan(followsRedirects: false)
        var rng = SplitMix64(seed: 1)
        routed(&plan, to: "east")
        #expect(plan.attemptEnded(.redirected(worker), now: clock(0.1), random: &rng).action
            == .giveUp(.redirectNotAllowed(endpoint: "east", to: worker)))
    }

    @Test func anUnreachablePrimaryCountsAgainstItAndIsRetriedInPlace() {
        var plan = sessionPlan()
        var rng = SplitMix64(seed: 9)
        routed(&plan, to: "east")
        let step = plan.attemptEnded(.failed(.connect("refused")), now: clock(0.1), random: &rng)
        #expect(step.endpointFailure == EndpointFailure(endpoint: "east", reason: .connect("refused")))
        guard case .backOff(let delay) = step.action else {
            Issue.record("expected a backoff, got \(step.action)")
            return
        }
        // Equal jitter on the first step: within [base/2, base].
        #expect(delay >= .milliseconds(100) && delay <= .milliseconds(200))
        // Nowhere else to go (a write): the same endpoint again, without asking the router.
        #expect(plan.backOffEnded(now: clock(0.4)) == .attempt(LoginAttemptTarget(endpoint: "east"), deadline: clock(15)))
        #expect(plan.retries == 1)
        #expect(plan.attemptEnded(.loggedIn, now: clock(0.5), random: &rng).action == .loggedIn)
    }

    @Test func anUnavailableReplicaIsAvoidedWhenAnotherCanServe() {
        var plan = sessionPlan()
        var rng = SplitMix64(seed: 3)
        routed(&plan, to: "r1", onReplica: true, anotherEligible: true)
        let step = plan.attemptEnded(.failed(.server(number: 40613, message: "not available")), now: clock(0.1), random: &rng)
        #expect(step.endpointFailure == EndpointFailure(endpoint: "r1", reason: .login(number: 40613, message: "not available")))
        guard case .backOff(let delay) = step.action else {
            Issue.record("expected a backoff, got \(step.action)")
            return
        }
        #expect(delay <= LoginRetryPolicy().baseDelay, "another endpoint owes no exponential backoff")
        #expect(plan.backOffEnded(now: clock(0.3)) == .route(avoiding: ["r1"]))
        #expect(plan.routed(to: "r2", onReplica: true, anotherEligible: false, now: clock(0.3))
            == .attempt(LoginAttemptTarget(endpoint: "r2"), deadline: clock(15)))
        #expect(plan.attemptEnded(.loggedIn, now: clock(0.4), random: &rng).action == .loggedIn)
        #expect(plan.retries == 1 && plan.failedEndpoints == ["r1"])
    }

    @Test func aBusyEndpointIsRetriedButNotMarkedDown() {
        var plan = sessionPlan()
        var rng = SplitMix64(seed: 5)
        routed(&plan, to: "east")
        let step = plan.attemptEnded(.failed(.server(number: 40501, message: "busy")), now: clock(0.1), random: &rng)
        #expect(step.endpointFailure == nil, "a busy endpoint is healthy: draining it would punish the wrong party")
        guard case .backOff = step.action else {
            Issue.record("expected a backoff, got \(step.action)")
            return
        }
        #expect(plan.backOffEnded(now: clock(0.5)) == .attempt(LoginAttemptTarget(endpoint: "east"), deadline: clock(15)))
    }

    @Test func aPermanentRefusalEndsThePlanAndBlamesNobody() {
        var plan = sessionPlan()
        var rng = SplitMix64(seed: 1)
        routed(&plan, to: "east")
        let step = plan.attemptEnded(.failed(.server(number: 18456, message: "Login failed")), now: clock(0.1), random: &rng)
        #expect(step.endpointFailure == nil)
        guard case .giveUp(.failed(let stop)) = step.action else {
            Issue.record("expected to give up, got \(step.action)")
            return
        }
        #expect(stop.kind == .notTransient && stop.last.failure == .server(number: 18456, message: "Login failed"))
        #expect(!LoginGiveUp.failed(stop).isTemporary)
    }

    @Test func aTimedOutAttemptCountsAgainstTheEndpoint() {
        var plan = sessionPlan()
        var rng = SplitMix64(seed: 1)
        routed(&plan, to: "east")
        let step = plan.attemptEnded(.failed(.timedOut), now: clock(1), random: &rng)
        #expect(step.endpointFailure == EndpointFailure(endpoint: "east", reason: .timeout))
    }

    @Test func theDeadlineEndsRetriesAndIsTemporary() {
        let policy = LoginRetryPolicy(minimumAttemptTime: .milliseconds(500))
        var plan = sessionPlan(deadline: 3, policy: policy)
        var rng = SplitMix64(seed: 1)
        routed(&plan, to: "east")
        let step = plan.attemptEnded(.failed(.timedOut), now: clock(2.8), random: &rng)
        guard case .giveUp(let why) = step.action, case .failed(let stop) = why else {
            Issue.record("expected the deadline to end the plan, got \(step.action)")
            return
        }
        #expect(stop.kind == .deadline && why.isTemporary)
    }

    @Test func aRouterThatHeldTheLoginPastTheDeadlineEndsIt() {
        var plan = sessionPlan(deadline: 5)
        #expect(plan.start(now: clock(0)) == .route(avoiding: []))
        #expect(plan.routed(to: "east", onReplica: false, anotherEligible: false, now: clock(5)) == .giveUp(.deadlinePassed(last: nil)))
    }

    @Test func aBackoffThatEndsPastTheDeadlineEndsThePlanWithTheLastFailure() {
        var plan = sessionPlan(deadline: 5)
        var rng = SplitMix64(seed: 1)
        routed(&plan, to: "east")
        guard case .backOff = plan.attemptEnded(.failed(.connect("refused")), now: clock(1), random: &rng).action else {
            Issue.record("expected a backoff")
            return
        }
        guard case .giveUp(.deadlinePassed(let last?)) = plan.backOffEnded(now: clock(6)) else {
            Issue.record("expected the deadline to have passed")
            return
        }
        #expect(last.endpoint == "east" && last.failure == .connect("refused"))
    }

    @Test func routerRefusalsAreTemporaryUnlessTheDatabaseIsNotServed() {
        var plan = sessionPlan()
        #expect(plan.start(now: clock(0)) == .route(avoiding: []))
        let noPrimary = RouteRefusal(.noPrimary, "cluster 'orders' has no primary")
        #expect(plan.routeRefused(noPrimary) == .giveUp(.unroutable(noPrimary)))
        #expect(LoginGiveUp.unroutable(noPrimary).isTemporary)
        #expect(LoginGiveUp.unroutable(RouteRefusal(.primaryOutOfService, "")).isTemporary)
        #expect(LoginGiveUp.unroutable(RouteRefusal(.noReplica, "")).isTemporary)
        #expect(!LoginGiveUp.unroutable(RouteRefusal(.databaseNotServed, "")).isTemporary)
    }

    @Test func aRetryStartsANewRedirectChain() {
        var plan = sessionPlan(deadline: 60)
        var rng = SplitMix64(seed: 2)
        routed(&plan, to: "gateway")
        for _ in 1...BackendLoginPlan.maxRedirects {
            _ = plan.attemptEnded(.redirected(worker), now: clock(1), random: &rng)
        }
        guard case .backOff = plan.attemptEnded(.failed(.server(number: 40613, message: "")), now: clock(1), random: &rng).action else {
            Issue.record("a transient error on the worker backs off")
            return
        }
        #expect(plan.backOffEnded(now: clock(2)) == .attempt(LoginAttemptTarget(endpoint: "gateway"), deadline: clock(60)))
        for _ in 1...BackendLoginPlan.maxRedirects {
            guard case .attempt = plan.attemptEnded(.redirected(worker), now: clock(3), random: &rng).action else {
                Issue.record("the new chain may redirect \(BackendLoginPlan.maxRedirects) times again")
                return
            }
        }
        #expect(plan.hops == 20 && plan.retries == 1)
    }

    @Test func aProbeGoesStraightToItsEndpointFollowsRedirectsAndNeverRetries() {
        var plan = BackendLoginPlan(placement: .fixed("east"), deadline: clock(2), policy: LoginRetryPolicy(maxAttempts: 1))
        var rng = SplitMix64(seed: 1)
        #expect(plan.start(now: clock(0)) == .attempt(LoginAttemptTarget(endpoint: "east"), deadline: clock(2)))
        #expect(plan.attemptEnded(.redirected(worker), now: clock(0.1), random: &rng).action
            == .attempt(LoginAttemptTarget(endpoint: "east", redirect: worker), deadline: clock(2)))
        guard case .giveUp(.failed(let stop)) = plan.attemptEnded(.failed(.connect("refused")), now: clock(0.2), random: &rng).action else {
            Issue.record("a probe makes one attempt")
            return
        }
        #expect(stop.kind == .attemptsExhausted && stop.last.failure == .connect("refused"))
    }

    @Test func aFixedPlanThatRetriesStaysOnItsEndpoint() {
        var plan = BackendLoginPlan(placement: .fixed("east"), deadline: clock(60))
        var rng = SplitMix64(seed: 1)
        _ = plan.start(now: clock(0))
        guard case .backOff = plan.attemptEnded(.failed(.server(number: 40613, message: "")), now: clock(0.1), random: &rng).action else {
            Issue.record("expected a backoff")
            return
        }
        #expect(plan.backOffEnded(now: clock(1)) == .attempt(LoginAttemptTarget(endpoint: "east"), deadline: clock(60)))
    }

    @Test func theSameSeedGivesTheSameBackoffs() {
        func backoffs(seed: UInt64) -> [BackendLoginAction] {
            var plan = sessionPlan(deadline: 60)
            var rng = SplitMix64(seed: seed)
            routed(&plan, to: "east")
            var out: [BackendLoginAction] = []
            for i in 0..<4 {
                let action = plan.attemptEnded(.failed(.server(number: 49918, message: "")), now: clock(Double(i)), random: &rng).action
                out.append(action)
                _ = plan.backOffEnded(now: clock(Double(i) + 0.5))
            }
            return out
        }
        #expect(backoffs(seed: 42) == backoffs(seed: 42))
        #expect(backoffs(seed: 42) != backoffs(seed: 43))
    }
}
