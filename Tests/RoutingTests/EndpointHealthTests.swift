import Testing
@testable import Routing

@Suite("EndpointHealth: HAProxy-style rise/fall")
struct EndpointHealthTests {
    let clock = TestClock()

    @Test func firstResultDecidesAtOnce() {
        var up = EndpointHealth(settings: ProbeSettings(rise: 3, fall: 3))
        #expect(up.state == .unchecked)
        #expect(up.record(probe: .ok(.readWrite), at: clock(0)) == .wentUp)
        #expect(up.state == .up)
        #expect(up.stateSince == clock(0))

        var down = EndpointHealth(settings: ProbeSettings(rise: 3, fall: 3))
        #expect(down.record(probe: .refused, at: clock(0)) == .wentDown(.connect("refused")))
        #expect(down.state == .down)
    }

    @Test func fallConsecutiveFailuresTakeItDown() {
        var h = EndpointHealth(settings: ProbeSettings(rise: 2, fall: 3))
        h.record(probe: .ok(.readWrite), at: clock(0))
        #expect(h.record(probe: .failure(.timeout), at: clock(2)) == nil)
        #expect(h.state == .goingDown(failures: 1))
        #expect(h.isUp)
        #expect(h.record(probe: .failure(.timeout), at: clock(4)) == nil)
        #expect(h.state == .goingDown(failures: 2))
        #expect(h.record(probe: .failure(.timeout), at: clock(6)) == .wentDown(.timeout))
        #expect(h.state == .down)
        #expect(!h.isUp)
        #expect(h.stateSince == clock(6))
        // Further failures change nothing.
        #expect(h.record(probe: .failure(.timeout), at: clock(8)) == nil)
        #expect(h.stateSince == clock(6))
    }

    @Test func oneSuccessWhileGoingDownRestoresFullHealth() {
        var h = EndpointHealth(settings: ProbeSettings(rise: 2, fall: 3))
        h.record(probe: .ok(.readWrite), at: clock(0))
        h.record(probe: .failure(.timeout), at: clock(2))
        h.record(probe: .failure(.timeout), at: clock(4))
        h.record(probe: .ok(.readWrite), at: clock(6))
        #expect(h.state == .up)
        // It takes a full `fall` again.
        h.record(probe: .failure(.timeout), at: clock(8))
        h.record(probe: .failure(.timeout), at: clock(10))
        #expect(h.isUp)
    }

    @Test func riseConsecutiveSuccessesBringItUpAndAFailureStartsOver() {
        var h = EndpointHealth(settings: ProbeSettings(rise: 3, fall: 2))
        h.record(probe: .refused, at: clock(0))
        #expect(h.record(probe: .ok(.readOnly), at: clock(2)) == nil)
        #expect(h.state == .goingUp(successes: 1))
        h.record(probe: .ok(.readOnly), at: clock(4))
        #expect(h.state == .goingUp(successes: 2))
        h.record(probe: .refused, at: clock(6))
        #expect(h.state == .down)
        h.record(probe: .ok(.readOnly), at: clock(8))
        h.record(probe: .ok(.readOnly), at: clock(10))
        #expect(h.record(probe: .ok(.readOnly), at: clock(12)) == .wentUp)
        #expect(h.state == .up)
        #expect(h.stateSince == clock(12))
    }

    @Test func riseAndFallOfOneFlipAtOnce() {
        var h = EndpointHealth(settings: ProbeSettings(rise: 0, fall: 1))
        #expect(h.settings.rise == 1)
        h.record(probe: .ok(.readWrite), at: clock(0))
        #expect(h.record(probe: .refused, at: clock(1)) == .wentDown(.connect("refused")))
        #expect(h.record(probe: .ok(.readWrite), at: clock(2)) == .wentUp)
    }

    @Test func passiveFailuresCountTowardFallAndAProbeSuccessResets() {
        var h = EndpointHealth(settings: ProbeSettings(rise: 2, fall: 3))
        h.record(probe: .ok(.readWrite), at: clock(0))
        h.recordPassiveFailure(.sessionBroken("reset by peer"), at: clock(0.5))
        h.recordPassiveFailure(.login(number: 40613, message: "unavailable"), at: clock(0.6))
        #expect(h.state == .goingDown(failures: 2))
        #expect(h.lastFailure?.passive == true)
        h.record(probe: .ok(.readWrite), at: clock(2))
        #expect(h.state == .up)
        h.recordPassiveFailure(.sessionBroken("a"), at: clock(2.1))
        h.recordPassiveFailure(.sessionBroken("b"), at: clock(2.2))
        #expect(h.recordPassiveFailure(.sessionBroken("c"), at: clock(2.3)) == .wentDown(.sessionBroken("c")))
        // Passive failures never touch the last role: only probes see roles.
        #expect(h.lastRole?.role == .readWrite)
    }

    @Test func lastRoleIsKeptThroughFailuresAndReplacedBySuccesses() {
        var h = EndpointHealth()
        h.record(probe: .ok(.readWrite, geo: .primary), at: clock(0))
        h.record(probe: .failure(.timeout), at: clock(2))
        #expect(h.lastRole == RoleObservation(role: .readWrite, geo: GeoObservation(role: .primary), at: clock(0)))
        #expect(h.lastProbeAt == clock(2))
        h.record(probe: .ok(.readOnly), at: clock(4))
        #expect(h.lastRole?.role == .readOnly)
        #expect(h.lastRole?.allowsWrites == false)
    }

    @Test func writesNeedReadWriteAndNoGeoSecondary() {
        #expect(RoleObservation(role: .readWrite, at: clock(0)).allowsWrites)
        #expect(RoleObservation(role: .readWrite, geo: GeoObservation(role: .primary), at: clock(0)).allowsWrites)
        #expect(!RoleObservation(role: .readWrite, geo: GeoObservation(role: .secondary), at: clock(0)).allowsWrites)
        #expect(!RoleObservation(role: .readOnly, at: clock(0)).allowsWrites)
        #expect(!RoleObservation(role: .unknown, at: clock(0)).allowsWrites)
    }

    @Test func latencyIsAMovingAverage() {
        var h = EndpointHealth(settings: ProbeSettings(latencyWeight: 0.5))
        h.record(probe: .ok(.readOnly, ms: 10), at: clock(0))
        #expect(h.latency == .milliseconds(10))
        h.record(probe: .ok(.readOnly, ms: 30), at: clock(2))
        #expect(h.latency == .milliseconds(20))
        #expect(h.lastLatency == .milliseconds(30))
        h.record(probe: .failure(.timeout), at: clock(4))
        #expect(h.latency == .milliseconds(20))
    }

    @Test func probeIntervalFollowsTheState() {
        var h = EndpointHealth(settings: ProbeSettings(interval: .seconds(2), rise: 2, fall: 2, fastInterval: .milliseconds(500), downInterval: .seconds(10)))
        #expect(h.nextProbeDelay == .milliseconds(500))
        h.record(probe: .ok(.readWrite), at: clock(0))
        #expect(h.nextProbeDelay == .seconds(2))
        h.record(probe: .refused, at: clock(2))
        #expect(h.nextProbeDelay == .milliseconds(500))
        h.record(probe: .refused, at: clock(3))
        #expect(h.nextProbeDelay == .seconds(10))
    }

    @Test func adminStateIsSeparateFromHealth() {
        var h = EndpointHealth()
        h.record(probe: .ok(.readOnly), at: clock(0))
        #expect(h.setAdmin(.draining, at: clock(1)) == .enabled)
        #expect(h.admin == .draining)
        #expect(h.adminSince == clock(1))
        #expect(h.isUp)
        #expect(!h.admin.acceptsNewSessions)
        #expect(h.setAdmin(.enabled, at: clock(2)) == .draining)
        #expect(h.admin.acceptsNewSessions)
    }

    @Test func statesReadLikeHAProxy() {
        #expect(EndpointHealth.CheckState.goingDown(failures: 1).description == "UP, going down (1 failed)")
        #expect(EndpointHealth.CheckState.goingUp(successes: 1).description == "DOWN, going up (1 ok)")
    }
}
