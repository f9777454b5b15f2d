/// Limits of backend login retries.
public struct LoginRetryPolicy: Sendable, Hashable {
    /// Attempts in all, the first one included.
    public var maxAttempts: Int
    /// Backoff before the second attempt; doubles per attempt up to `maxDelay`.
    public var baseDelay: Duration
    public var maxDelay: Duration
    /// Consecutive busy answers from one endpoint before trying another eligible one.
    public var sameEndpointAttempts: Int
    /// An attempt started with less time than this before the deadline cannot finish a
    /// login (connect, TLS, LOGIN7 round trips), so it is not started.
    public var minimumAttemptTime: Duration

    public init(
        maxAttempts: Int = 5,
        baseDelay: Duration = .milliseconds(200),
        maxDelay: Duration = .seconds(5),
        sameEndpointAttempts: Int = 2,
        minimumAttemptTime: Duration = .milliseconds(500)
    ) {
        self.maxAttempts = max(1, maxAttempts)
        self.baseDelay = baseDelay
        self.maxDelay = max(baseDelay, maxDelay)
        self.sameEndpointAttempts = max(1, sameEndpointAttempts)
        self.minimumAttemptTime = minimumAttemptTime
    }
}

/// What to do after a failed backend login.
public enum LoginRetryAction: Sendable, Hashable {
    /// Wait, then log in to the same endpoint again.
    case retrySame(after: Duration)
    /// Wait, then ask the router again with `avoiding: plan.failedEndpoints`. For a write the
    /// router answers with whatever the primary is by then, which is how a retry follows a
    /// failover.
    case tryAnother(after: Duration)
    /// Stop: the login fails (see `LoginRetryStop` for why).
    case giveUp(LoginRetryStop)
}

/// Why a login's retries stopped, with the failure that ended them.
public struct LoginRetryStop: Sendable, Hashable, CustomStringConvertible {
    public enum Kind: Sendable, Hashable {
        /// The last failure is one retrying cannot fix.
        case notTransient
        /// `maxAttempts` attempts were made.
        case attemptsExhausted
        /// The client's login deadline leaves no time for another attempt.
        case deadline
    }

    public var kind: Kind
    public var last: LoginRetryPlan.FailedAttempt
    public var attempts: Int
    /// The class of the last failure, on the endpoint where it happened.
    public var errorClass: LoginErrorClass

    public var description: String {
        let last = "\(last.failure) from '\(last.endpoint)'"
        return switch kind {
        case .notTransient: "\(last) is not transient"
        case .attemptsExhausted: "gave up after \(attempts) attempts; last: \(last)"
        case .deadline: "the client's login deadline leaves no time for another attempt after \(attempts) (last: \(last))"
        }
    }
}

/// The retry state of one client login: each failed backend attempt goes in, the next step
/// comes out. All time is the caller's; jitter comes from the caller's generator.
public struct LoginRetryPlan: Sendable {
    public struct FailedAttempt: Sendable, Hashable {
        public var endpoint: String
        public var failure: LoginFailure
        public var at: ContinuousClock.Instant
    }

    public let policy: LoginRetryPolicy
    /// The client's login deadline: retries never run past it.
    public let deadline: ContinuousClock.Instant
    public private(set) var failures: [FailedAttempt] = []

    public init(deadline: ContinuousClock.Instant, policy: LoginRetryPolicy = LoginRetryPolicy()) {
        self.deadline = deadline
        self.policy = policy
    }

    /// Attempts made so far (all failed; a successful one ends the plan).
    public var attempts: Int { failures.count }

    /// Endpoints that failed this login: pass as the router's `avoiding`.
    public var failedEndpoints: Set<String> { Set(failures.map(\.endpoint)) }

    /// Records a failure and decides the next step.
    ///
    /// - Parameters:
    ///   - onReplica: the endpoint was serving as a readable replica (some errors are
    ///     transient only there).
    ///   - anotherEligible: the router has another endpoint for this session (another replica
    ///     for a read). False for writes, which have only the primary.
    public mutating func next(
        after failure: LoginFailure,
        on endpoint: String,
        onReplica: Bool = false,
        anotherEligible: Bool,
        now: ContinuousClock.Instant,
        random: inout some RandomNumberGenerator
    ) -> LoginRetryAction {
        let attempt = FailedAttempt(endpoint: endpoint, failure: failure, at: now)
        failures.append(attempt)
        let errorClass = failure.errorClass(onReplica: onReplica)
        func stop(_ kind: LoginRetryStop.Kind) -> LoginRetryAction {
            .giveUp(LoginRetryStop(kind: kind, last: attempt, attempts: attempts, errorClass: errorClass))
        }
        if errorClass == .permanent { return stop(.notTransient) }
        if attempts >= policy.maxAttempts { return stop(.attemptsExhausted) }
        let room = deadline - now - policy.minimumAttemptTime
        if room <= .zero { return stop(.deadline) }
        let sameInARow = failures.reversed().prefix { $0.endpoint == endpoint }.count
        let moveOn = anotherEligible && (errorClass == .unavailable || sameInARow >= policy.sameEndpointAttempts)
        var delay: Duration
        if moveOn {
            // Another endpoint owes us no backoff; a little spread still keeps many clients
            // that failed together from arriving together.
            delay = .seconds(policy.baseDelay.secondsValue * Double.random(in: 0...1, using: &random))
        } else {
            // "Equal jitter": half the exponential step fixed, half random, so the wait grows
            // with each attempt yet clients spread out.
            let exponent = min(attempts - 1, 30)
            let step = min(policy.maxDelay.secondsValue, policy.baseDelay.secondsValue * Double(1 << exponent))
            delay = .seconds(step / 2 + step / 2 * Double.random(in: 0...1, using: &random))
        }
        // Near the deadline a shorter wait beats none: the last attempt still gets its time.
        delay = min(delay, room)
        return moveOn ? .tryAnother(after: delay) : .retrySame(after: delay)
    }
}
