/// HAProxy-style check state of one endpoint: what probes and live sessions have shown,
/// what role it was last seen in, and what an operator set.
public struct EndpointHealth: Sendable, Hashable {
    /// The check state machine. Shown the way HAProxy shows it ("UP 1/3", "DOWN 1/2").
    public enum CheckState: Sendable, Hashable, CustomStringConvertible {
        /// No probe has answered yet. The first result decides at once: waiting for `rise`
        /// successes at start-up would keep a fresh proxy from routing for no gain.
        case unchecked
        case up
        /// Still up, but `failures` consecutive failures (fewer than `fall`) were seen.
        case goingDown(failures: Int)
        case down
        /// Still down, but `successes` consecutive successes (fewer than `rise`) were seen.
        case goingUp(successes: Int)

        /// Whether the endpoint counts as up (HAProxy keeps routing to "going down" servers).
        public var isUp: Bool {
            switch self {
            case .up, .goingDown: true
            case .unchecked, .down, .goingUp: false
            }
        }

        public var description: String {
            switch self {
            case .unchecked: "NOT CHECKED"
            case .up: "UP"
            case .goingDown(let n): "UP, going down (\(n) failed)"
            case .down: "DOWN"
            case .goingUp(let n): "DOWN, going up (\(n) ok)"
            }
        }
    }

    /// An up/down change caused by a result.
    public enum Transition: Sendable, Hashable {
        case wentUp
        case wentDown(FailureReason)
    }

    /// A failure and when it was seen.
    public struct Failure: Sendable, Hashable {
        public var reason: FailureReason
        public var at: ContinuousClock.Instant
        public var passive: Bool
    }

    public let settings: ProbeSettings
    public private(set) var state: CheckState = .unchecked
    /// When `isUp` last changed (or the first result arrived).
    public private(set) var stateSince: ContinuousClock.Instant?
    public private(set) var admin: AdminState = .enabled
    public private(set) var adminSince: ContinuousClock.Instant?
    /// Set by every successful probe, kept through failures: "the last probe saw X" is the
    /// rule the router applies, and a failed probe saw nothing.
    public private(set) var lastRole: RoleObservation?
    public private(set) var lastProbeAt: ContinuousClock.Instant?
    public private(set) var lastFailure: Failure?
    /// Moving average of probe latency (used by `lowestLatency` balancing).
    public private(set) var latency: Duration?
    public private(set) var lastLatency: Duration?

    public init(settings: ProbeSettings = ProbeSettings()) {
        self.settings = settings
    }

    public var isUp: Bool { state.isUp }

    /// Records a probe's result; returns the up/down change it caused, if any.
    @discardableResult
    public mutating func record(probe result: ProbeResult, at now: ContinuousClock.Instant) -> Transition? {
        lastProbeAt = now
        switch result {
        case .success(let role, let geo, let sample):
            lastRole = RoleObservation(role: role, geo: geo, at: now)
            lastLatency = sample
            if let previous = latency {
                let w = settings.latencyWeight
                latency = .seconds(previous.secondsValue * (1 - w) + sample.secondsValue * w)
            } else {
                latency = sample
            }
            return step(success: true, reason: nil, at: now)
        case .failure(let reason):
            lastFailure = Failure(reason: reason, at: now, passive: false)
            return step(success: false, reason: reason, at: now)
        }
    }

    /// A failed backend login or a broken session: counts toward `fall` like a failed probe,
    /// because a dead primary is often noticed by sessions before the next probe is due.
    /// Only a probe success undoes it, since only a probe also confirms the role.
    @discardableResult
    public mutating func recordPassiveFailure(_ reason: FailureReason, at now: ContinuousClock.Instant) -> Transition? {
        lastFailure = Failure(reason: reason, at: now, passive: true)
        return step(success: false, reason: reason, at: now)
    }

    /// Sets the administrative state; returns the previous one.
    @discardableResult
    public mutating func setAdmin(_ newState: AdminState, at now: ContinuousClock.Instant) -> AdminState {
        let old = admin
        if old != newState {
            admin = newState
            adminSince = now
        }
        return old
    }

    /// When the proxy should run the next probe, measured from the end of the last one.
    public var nextProbeDelay: Duration {
        switch state {
        case .up: settings.interval
        case .down: settings.downInterval ?? settings.interval
        case .unchecked, .goingUp, .goingDown: settings.fastInterval ?? settings.interval
        }
    }

    private mutating func step(success: Bool, reason: FailureReason?, at now: ContinuousClock.Instant) -> Transition? {
        let wasUp = state.isUp
        let wasChecked = state != .unchecked
        switch (state, success) {
        case (.unchecked, true): state = .up
        case (.unchecked, false): state = .down
        case (.up, true): break
        case (.up, false): state = settings.fall <= 1 ? .down : .goingDown(failures: 1)
        // One success while going down restores full health, as in HAProxy.
        case (.goingDown, true): state = .up
        case (.goingDown(let n), false): state = n + 1 >= settings.fall ? .down : .goingDown(failures: n + 1)
        case (.down, true): state = settings.rise <= 1 ? .up : .goingUp(successes: 1)
        case (.down, false): break
        case (.goingUp(let n), true): state = n + 1 >= settings.rise ? .up : .goingUp(successes: n + 1)
        // Rise counts consecutive successes; one failure starts it over.
        case (.goingUp, false): state = .down
        }
        let isUp = state.isUp
        if isUp != wasUp || !wasChecked {
            stateSince = now
        }
        guard isUp != wasUp || !wasChecked else { return nil }
        return isUp ? .wentUp : .wentDown(reason ?? .other("unknown"))
    }
}
