import Testing
@testable import Routing

@Suite("LoginRetryPlan: transient errors, backoff, deadline")
struct LoginRetryPlanTests {
    let clock = TestClock()

    @Test func errorsAreSortedAsTheFieldGuideLists() {
        for number: Int32 in [10928, 10929, 40501, 49918, 49919, 49920, 42108, 42109] {
            #expect(TransientLoginErrors.classify(number, onReplica: false) == .busy)
        }
        for number: Int32 in [4060, 4221, 40197, 40613, 40143, 40540, 40020, 40166] {
            #expect(TransientLoginErrors.classify(number, onReplica: false) == .unavailable)
        }
        for number: Int32 in [3961, 1219, 3947] {
            #expect(TransientLoginErrors.classify(number, onReplica: true) == .unavailable)
            #expect(TransientLoginErrors.classify(number, onReplica: false) == .permanent)
        }
        #expect(TransientLoginErrors.classify(18456, onReplica: false) == .permanent)
        #expect(LoginFailure.timedOut.errorClass(onReplica: false) == .unavailable)
    }

    @Test func onlyEndpointFaultsCountAgainstHealth() {
        #expect(LoginFailure.connect("refused").countsAgainstEndpoint(onReplica: false))
        #expect(LoginFailure.server(number: 40613, message: "").countsAgainstEndpoint(onReplica: false))
        #expect(!LoginFailure.server(number: 40501, message: "busy").countsAgainstEndpoint(onReplica: false))
        #expect(!LoginFailure.server(number: 18456, message: "login failed").countsAgainstEndpoint(onReplica: false))
        #expect(LoginFailure.server(number: 40613, message: "x").asFailureReason == .login(number: 40613, message: "x"))
    }

    @Test func permanentErrorsGiveUpAtOnce() {
        var plan = LoginRetryPlan(deadline: clock(15))
        var rng = SplitMix64(seed: 1)
        guard case .giveUp(let stop) = plan.next(after: .server(number: 18456, message: "Login failed"), on: "east", anotherEligible: true, now: clock(0), random: &rng) else {
            Issue.record("a permanent error ends the plan")
            return
        }
        #expect(stop.kind == .notTransient && stop.errorClass == .permanent && stop.attempts == 1)
        #expect(stop.description == "error 18456 (Login failed) from 'east' is not transient")
    }

    @Test func busyRetriesTheSameEndpointWithGrowingJitteredBackoff() {
        let policy = LoginRetryPolicy(maxAttempts: 6, baseDelay: .milliseconds(200), maxDelay: .seconds(1))
        var plan = LoginRetryPlan(deadline: clock(60), policy: policy)
        var rng = SplitMix64(seed: 7)
        var delays: [Duration] = []
        for attempt in 1...5 {
            let action = plan.next(after: .server(number: 40501, message: ""), on: "east", anotherEligible: false, now: clock(Double(attempt)), random: &rng)
            guard case .retrySame(let delay) = action else {
                Issue.record("attempt \(attempt): \(action)")
                return
            }
            delays.append(delay)
        }
        // Step doubles from 200 ms, capped at 1 s; each wait lies in [step/2, step].
        let steps: [Duration] = [.milliseconds(200), .milliseconds(400), .milliseconds(800), .seconds(1), .seconds(1)]
        for (delay, step) in zip(delays, steps) {
            #expect(delay >= step / 2 && delay <= step, "\(delay) outside [\(step / 2), \(step)]")
        }
        #expect(Set(delays).count > 1, "jitter varies the waits")
        if case .giveUp(let stop) = plan.next(after: .server(number: 40501, message: ""), on: "east", anotherEligible: false, now: clock(6), random: &rng) {
            #expect(stop.kind == .attemptsExhausted && stop.errorClass == .busy)
            #expect(stop.description == "gave up after 6 attempts; last: error 40501 from 'east'")
        } else {
            Issue.record("expected to give up after maxAttempts")
        }
    }

    @Test func busyMovesOnAfterTwoAnswersWhenAnotherEndpointExists() {
        var plan = LoginRetryPlan(deadline: clock(60))
        var rng = SplitMix64(seed: 3)
        guard case .retrySame = plan.next(after: .server(number: 10928, message: ""), on: "r1", onReplica: true, anotherEligible: true, now: clock(0), random: &rng) else {
            Issue.record("first busy answer retries the same endpoint")
            return
        }
        guard case .tryAnother(let delay) = plan.next(after: .server(number: 10928, message: ""), on: "r1", onReplica: true, anotherEligible: true, now: clock(1), random: &rng) else {
            Issue.record("second busy answer moves on")
            return
        }
        #expect(delay <= LoginRetryPolicy().baseDelay)
        #expect(plan.failedEndpoints == ["r1"])
    }

    @Test func unavailableMovesOnAtOnceOrRetriesWhenThereIsNowhereElse() {
        var rng = SplitMix64(seed: 11)
        var reads = LoginRetryPlan(deadline: clock(60))
        guard case .tryAnother = reads.next(after: .server(number: 40613, message: ""), on: "r1", anotherEligible: true, now: clock(0), random: &rng) else {
            Issue.record("40613 with another replica should move on")
            return
        }
        var writes = LoginRetryPlan(deadline: clock(60))
        guard case .retrySame = writes.next(after: .connect("refused"), on: "east", anotherEligible: false, now: clock(0), random: &rng) else {
            Issue.record("a write with no other endpoint retries the primary")
            return
        }
    }

    @Test func theDeadlineShortensTheLastWaitAndThenEndsThePlan() {
        let policy = LoginRetryPolicy(baseDelay: .seconds(2), maxDelay: .seconds(8), minimumAttemptTime: .milliseconds(500))
        var plan = LoginRetryPlan(deadline: clock(10), policy: policy)
        var rng = SplitMix64(seed: 5)
        // 1 s left, 0.5 s of it needed for the attempt: the wait is cut to 0.5 s.
        #expect(plan.next(after: .server(number: 40501, message: ""), on: "east", anotherEligible: false, now: clock(9), random: &rng)
            == .retrySame(after: .milliseconds(500)))
        let end = plan.next(after: .server(number: 40501, message: ""), on: "east", anotherEligible: false, now: clock(9.6), random: &rng)
        guard case .giveUp(let stop) = end else {
            Issue.record("expected the deadline to end the plan, got \(end)")
            return
        }
        #expect(stop.kind == .deadline && stop.last.endpoint == "east")
        #expect(stop.description == "the client's login deadline leaves no time for another attempt after 2 (last: error 40501 from 'east')")
    }

    @Test func theSameSeedGivesTheSameWaits() {
        func run(seed: UInt64) -> [LoginRetryAction] {
            var plan = LoginRetryPlan(deadline: clock(60))
            var rng = SplitMix64(seed: seed)
            return (0..<4).map { i in
                plan.next(after: .server(number: 49918, message: ""), on: "east", anotherEligible: false, now: clock(Double(i)), random: &rng)
            }
        }
        #expect(run(seed: 42) == run(seed: 42))
        #expect(run(seed: 42) != run(seed: 43))
    }
}
