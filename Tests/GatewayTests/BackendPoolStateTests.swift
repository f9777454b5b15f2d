import Testing
@testable import Gateway

@Suite struct BackendPoolStateTests {
    typealias State = BackendPoolState<String, Int>
    let east = State.Group(endpoint: "east", backendIdentity: "mi")
    let t0 = ContinuousClock.now
    var later: ContinuousClock.Instant { t0 + .seconds(3600) }

    /// Acquire a new connection of `key` and mark it logged in; returns its id.
    func connect(_ s: inout State, _ key: String, loop: Int = 1) -> Int {
        let v1 = s.acquire(key: key, group: east, loop: loop, now: t0, deadline: t0)
        #expect(v1 == .granted(.connect(evicting: nil)))
        s.connected(group: east)
        return s.makeID()
    }

    @Test func aReleasedConnectionIsReusedOnlyForTheSameShapeAndLoop() {
        var s = State(maxPerGroup: 10, idleTimeout: .seconds(300), minIdle: 0)
        let c = connect(&s, "a")
        let v2 = s.released(connection: c, key: "a", group: east, loop: 1, reusable: true, retireAt: later, now: t0)
        #expect(v2 == .pooled)
        #expect(s.figures(east) == (1, 0, 0, 1))
        // Another shape, or another event loop: a new connection.
        let v3 = s.acquire(key: "b", group: east, loop: 1, now: t0, deadline: t0)
        #expect(v3 == .granted(.connect(evicting: nil)))
        let v4 = s.acquire(key: "a", group: east, loop: 2, now: t0, deadline: t0)
        #expect(v4 == .granted(.connect(evicting: nil)))
        let v5 = s.acquire(key: "a", group: east, loop: 1, now: t0, deadline: t0)
        #expect(v5 == .granted(.reuse(connection: c)))
        #expect(s.figures(east).idle == 0)
    }

    @Test func aConnectionThatCannotBeResetIsClosedAndItsPlaceFreed() {
        var s = State(maxPerGroup: 1, idleTimeout: .seconds(300), minIdle: 0)
        let c = connect(&s, "a")
        let v6 = s.released(connection: c, key: "a", group: east, loop: 1, reusable: false, retireAt: later, now: t0)
        #expect(v6 == .close(wake: nil))
        #expect(s.figures(east) == (0, 0, 0, 0))
        // Past its retirement time it is closed too.
        let d = connect(&s, "a")
        let v7 = s.released(connection: d, key: "a", group: east, loop: 1, reusable: true, retireAt: t0, now: t0)
        #expect(v7 == .close(wake: nil))
        #expect(s.figures(east).open == 0)
    }

    @Test func atTheLimitALoginWaitsAndIsHandedTheNextReleasedConnection() {
        var s = State(maxPerGroup: 1, idleTimeout: .seconds(300), minIdle: 0)
        let c = connect(&s, "a")
        let v8 = s.acquire(key: "a", group: east, loop: 1, now: t0, deadline: t0 + .seconds(5))
        guard case .wait(let w) = v8 else {
            Issue.record("expected a wait"); return
        }
        let v9 = s.acquire(key: "a", group: east, loop: 1, now: t0, deadline: t0)
        #expect(v9 == .refused, "no time to wait: refused")
        let v10 = s.released(connection: c, key: "a", group: east, loop: 1, reusable: true, retireAt: later, now: t0)
        #expect(v10 == .handedTo(waiter: w))
        #expect(s.figures(east) == (0, 1, 0, 1))
    }

    @Test func aWaiterOfAnotherShapeGetsThePlaceOfAReleasedOrFailedConnection() {
        var s = State(maxPerGroup: 1, idleTimeout: .seconds(300), minIdle: 0)
        let c = connect(&s, "a")
        let v11 = s.acquire(key: "b", group: east, loop: 1, now: t0, deadline: t0 + .seconds(5))
        guard case .wait(let w) = v11 else {
            Issue.record("expected a wait"); return
        }
        let v12 = s.released(connection: c, key: "a", group: east, loop: 1, reusable: true, retireAt: later, now: t0)
        #expect(v12
                == .close(wake: .init(waiter: w, grant: .connect(evicting: nil))))
        #expect(s.figures(east) == (0, 0, 0, 1), "the place passed to the waiter, still reserved")
        // Its dial fails: the place is free again.
        let v13 = s.placeFreed(group: east, wasBusy: false)
        #expect(v13 == nil)
        #expect(s.figures(east).open == 0)
    }

    @Test func anIdleConnectionOfAnotherShapeGivesItsPlaceUpAtTheLimit() {
        var s = State(maxPerGroup: 1, idleTimeout: .seconds(300), minIdle: 0)
        let c = connect(&s, "a")
        _ = s.released(connection: c, key: "a", group: east, loop: 1, reusable: true, retireAt: later, now: t0)
        let v14 = s.acquire(key: "b", group: east, loop: 1, now: t0, deadline: t0)
        #expect(v14 == .granted(.connect(evicting: c)))
        #expect(s.figures(east) == (0, 0, 0, 1))
    }

    @Test func theSweepClosesTimedOutRetiredAndUnusableConnectionsButKeepsMinIdle() {
        var s = State(maxPerGroup: 10, idleTimeout: .seconds(60), minIdle: 1)
        let a = connect(&s, "a"), b = connect(&s, "b"), c = connect(&s, "c")
        _ = s.released(connection: a, key: "a", group: east, loop: 1, reusable: true, retireAt: later, now: t0)
        _ = s.released(connection: b, key: "b", group: east, loop: 1, reusable: true, retireAt: t0 + .seconds(10), now: t0 + .seconds(1))
        _ = s.released(connection: c, key: "c", group: east, loop: 1, reusable: true, retireAt: later, now: t0 + .seconds(2))
        let v15 = s.sweep(now: t0 + .seconds(5))
        #expect(v15.close.isEmpty)
        let v16 = s.sweep(now: t0 + .seconds(11))
        #expect(v16.close == [b], "retired")
        let v17 = s.sweep(now: t0 + .seconds(120))
        #expect(v17.close == [a], "timed out; the most recent one stays for min_idle")
        let v18 = s.sweep(now: t0 + .seconds(121), unusable: { $0.endpoint == "east" })
        #expect(v18.close == [c], "its endpoint is unusable")
        #expect(s.figures(east) == (0, 0, 0, 0))
    }

    @Test func anIdleConnectionThatClosesWakesAWaiterOfItsGroup() {
        var s = State(maxPerGroup: 2, idleTimeout: .seconds(300), minIdle: 0)
        let a = connect(&s, "a")
        _ = connect(&s, "b")
        _ = s.released(connection: a, key: "a", group: east, loop: 1, reusable: true, retireAt: later, now: t0)
        // "c" at the limit takes the idle "a"'s place (eviction), so make a waiter with "b" busy and no idle.
        let v19 = s.acquire(key: "c", group: east, loop: 1, now: t0, deadline: t0 + .seconds(5))
        #expect(v19 == .granted(.connect(evicting: a)))
        let v20 = s.acquire(key: "d", group: east, loop: 1, now: t0, deadline: t0 + .seconds(5))
        guard case .wait(let w) = v20 else {
            Issue.record("expected a wait"); return
        }
        let v21 = s.waiterGone(w)
        #expect(v21)
        let v22 = s.waiterGone(w)
        #expect(!v22, "a waiter leaves once")
        let v23 = s.idleClosed(12345)
        #expect(v23 == nil)
    }
}
