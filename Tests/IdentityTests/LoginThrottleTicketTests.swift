import Foundation
import Testing

@testable import Identity

/// The throttle's check and count are one step: concurrent logins from one address cannot
/// all pass the check before the first failure is counted.
@Suite(.timeLimit(.minutes(1)))
struct LoginThrottleTicketTests {
    enum Verdict { case checked, refused }

    /// `count` logins from one address at once, each settling with `outcome` once admitted.
    func burst(_ throttle: LoginThrottle, count: Int, outcome: LoginThrottle.Outcome) async -> [Verdict] {
        await withTaskGroup(of: Verdict.self) { group in
            for _ in 0..<count {
                group.addTask {
                    guard let ticket = await throttle.admit("203.0.113.7") else { return .refused }
                    await Task.yield()   // the credential check: others run meanwhile
                    ticket.settle(outcome)
                    return .checked
                }
            }
            var out: [Verdict] = []
            for await v in group { out.append(v) }
            return out
        }
    }

    @Test func sixtyWrongPasswordsAtOnceGetTwentyChecks() async {
        let throttle = LoginThrottle(maxFailures: 20, window: 60, blockFor: 30)
        let verdicts = await burst(throttle, count: 60, outcome: .failed)
        #expect(verdicts.filter { $0 == .checked }.count == 20)
        #expect(verdicts.filter { $0 == .refused }.count == 40)
        #expect(throttle.isBlocked("203.0.113.7"))
        #expect(throttle.inFlight("203.0.113.7") == 0 && throttle.waiting("203.0.113.7") == 0)
    }

    @Test func aPoolOpeningSixtySessionsWithTheRightPasswordIsNotTurnedAway() async {
        let throttle = LoginThrottle(maxFailures: 20, window: 60, blockFor: 30)
        let verdicts = await burst(throttle, count: 60, outcome: .succeeded)
        #expect(verdicts.allSatisfy { $0 == .checked })
        #expect(throttle.trackedCount == 0, "successes leave nothing behind")
    }

    @Test func loginsInFlightHoldTheBudgetAndAnUnsettledTicketIsWithdrawn() async {
        let throttle = LoginThrottle(maxFailures: 2, window: 60, blockFor: 30)
        var first = await throttle.admit("a")
        let second = await throttle.admit("a")
        #expect(first != nil && second != nil && throttle.inFlight("a") == 2)
        first = nil   // dropped without a verdict: the login threw before its check
        #expect(throttle.inFlight("a") == 1)
        second?.settle(.failed)
        #expect(throttle.inFlight("a") == 0 && !throttle.isBlocked("a"))
        second?.settle(.failed)   // a second settle of the same ticket counts nothing
        #expect(!throttle.isBlocked("a"))
    }

    @Test func aWaitingLoginSeesTheBlockThatTheLoginsAheadOfItCaused() async {
        let throttle = LoginThrottle(maxFailures: 2, window: 60, blockFor: 30)
        let a = await throttle.admit("a")
        let b = await throttle.admit("a")
        let waiter = Task { await throttle.admit("a") != nil }
        while throttle.waiting("a") == 0 { await Task.yield() }
        a?.settle(.failed)
        b?.settle(.failed)
        #expect(await waiter.value == false)
        #expect(throttle.isBlocked("a"))
    }

    @Test func aWaitingLoginTakesThePlaceASuccessFrees() async {
        let throttle = LoginThrottle(maxFailures: 1, window: 60, blockFor: 30)
        let a = await throttle.admit("a")
        let waiter = Task { () -> Bool in
            guard let t = await throttle.admit("a") else { return false }
            t.settle(.succeeded)
            return true
        }
        while throttle.waiting("a") == 0 { await Task.yield() }
        a?.settle(.succeeded)
        #expect(await waiter.value)
    }

    @Test func aCancelledWaitEndsAtOnceAndLeavesNothing() async {
        let throttle = LoginThrottle(maxFailures: 1, window: 60, blockFor: 30)
        let held = await throttle.admit("a")
        let waiter = Task { await throttle.admit("a") }
        while throttle.waiting("a") == 0 { await Task.yield() }
        waiter.cancel()
        #expect(await waiter.value == nil)
        #expect(throttle.waiting("a") == 0 && throttle.inFlight("a") == 1)
        held?.settle(.succeeded)
        #expect(throttle.trackedCount == 0)
    }

    @Test func aBlockEndsAfterBlockFor() async {
        let throttle = LoginThrottle(maxFailures: 1, window: 60, blockFor: 30)
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        let ticket = await throttle.admit("a", now: { t0 })
        ticket?.settle(.failed, now: t0)
        #expect(await throttle.admit("a", now: { t0 + 29 }) == nil)
        let later = await throttle.admit("a", now: { t0 + 31 })
        #expect(later != nil)
        later?.settle(.succeeded, now: t0 + 31)
    }
}
