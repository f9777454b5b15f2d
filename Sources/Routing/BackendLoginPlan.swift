/// The worker Azure's gateway sent a login to (ENVCHANGE 20, MS-TDS 2.2.7.9).
public struct LoginRedirect: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { "\(host):\(port)" }
}

/// Where one backend login attempt goes: a configured endpoint, or the worker its gateway
/// redirected the login to. Either way the attempt counts for the endpoint (its health,
/// its sessions).
public struct LoginAttemptTarget: Sendable, Hashable {
    public var endpoint: String
    /// nil: the endpoint's own address.
    public var redirect: LoginRedirect?

    public init(endpoint: String, redirect: LoginRedirect? = nil) {
        self.endpoint = endpoint
        self.redirect = redirect
    }
}

/// How one attempt (connect, PRELOGIN, TLS, LOGIN7 and its reply) ended.
public enum LoginAttemptOutcome: Sendable, Hashable {
    /// LOGINACK without a redirect: the login is done.
    case loggedIn
    /// LOGINACK with a routing ENVCHANGE: log in again there.
    case redirected(LoginRedirect)
    case failed(LoginFailure)
}

/// What the executor of a `BackendLoginPlan` does next.
public enum BackendLoginAction: Sendable, Hashable {
    /// Ask the router for an endpoint (it may hold a write login while there is no primary),
    /// then call `routed` or `routeRefused`.
    case route(avoiding: Set<String>)
    /// Make one attempt, over by `deadline` whatever stage it is in, then call `attemptEnded`.
    case attempt(LoginAttemptTarget, deadline: ContinuousClock.Instant)
    /// Wait this long, then call `backOffEnded`.
    case backOff(Duration)
    /// The leg of the last attempt is logged in: hand it over.
    case loggedIn
    /// The login fails.
    case giveUp(LoginGiveUp)
}

/// Why a backend login failed, as a value: the client's error number and text are chosen
/// from it (`LoginRefusal` in Gateway), once.
public enum LoginGiveUp: Sendable, Hashable, CustomStringConvertible {
    /// The router could not place the session.
    case unroutable(RouteRefusal)
    /// Attempts failed and the retry plan stopped.
    case failed(LoginRetryStop)
    /// More redirects in a row than `BackendLoginPlan.maxRedirects`.
    case tooManyRedirects(endpoint: String, limit: Int)
    /// A redirect from a cluster pinned to Azure's Proxy connection policy.
    case redirectNotAllowed(endpoint: String, to: LoginRedirect)
    /// The deadline passed before an attempt could start (after `last`, if any).
    case deadlinePassed(last: LoginRetryPlan.FailedAttempt?)

    /// The condition may pass by itself: a client may retry later.
    public var isTemporary: Bool {
        switch self {
        case .unroutable(let refusal): refusal.isTemporary
        case .failed(let stop): stop.errorClass != .permanent
        case .deadlinePassed: true
        case .tooManyRedirects, .redirectNotAllowed: false
        }
    }

    public var description: String {
        switch self {
        case .unroutable(let refusal): refusal.reason
        case .failed(let stop): stop.description
        case .tooManyRedirects(let endpoint, let limit): "endpoint '\(endpoint)' redirected more than \(limit) times in a row"
        case .redirectNotAllowed(let endpoint, let to): "endpoint '\(endpoint)' redirected to \(to) although the cluster is pinned to the Proxy connection policy"
        case .deadlinePassed(let last?): "the login deadline passed (last: \(last.failure) from '\(last.endpoint)')"
        case .deadlinePassed(nil): "the login deadline passed before an attempt could start"
        }
    }
}

/// A failure that counts against an endpoint's health (the passive check).
public struct EndpointFailure: Sendable, Hashable {
    public var endpoint: String
    public var reason: FailureReason
}

/// The plan's answer to an attempt's end: what to do, and what to record against the
/// endpoint first.
public struct BackendLoginStep: Sendable, Hashable {
    public var action: BackendLoginAction
    /// Set when the failure says something about the endpoint (unreachable, database
    /// unavailable); nil for busy answers and refusals, which would punish the wrong party.
    public var endpointFailure: EndpointFailure?
}

/// One backend login, for a client session or a probe: where to connect, Azure's redirects
/// (one limit for both), transient errors retried with jittered backoff on the same or
/// another endpoint, a deadline over everything, and which failures count against the
/// endpoint. Pure: time and randomness come in as arguments, I/O is the executor's
/// (`SessionLogin`, `Prober`), which calls one input per event and carries out the action.
///
/// Failures never count against the client here: the backend login uses tdsgate's own
/// identity, so only the client's credentials (checked before the plan starts) feed the
/// throttle.
public struct BackendLoginPlan: Sendable {
    /// SqlClient follows 10 routing hops before it gives up; so does tdsgate, per chain
    /// (a retry starts a new chain at the endpoint).
    public static let maxRedirects = 10

    /// Where attempts go.
    public enum Placement: Sendable, Hashable {
        /// Ask the router (client sessions): retries may go to another endpoint.
        case router
        /// Always this endpoint (probes: they test one endpoint).
        case fixed(String)
    }

    private enum State: Sendable, Hashable {
        case initial
        case routing
        case attempting(LoginAttemptTarget, onReplica: Bool, anotherEligible: Bool)
        case backingOff(then: Next)
        case finished
    }

    private enum Next: Sendable, Hashable {
        case route
        case same(endpoint: String, onReplica: Bool, anotherEligible: Bool)
    }

    public let placement: Placement
    /// Redirects are followed (Azure's Redirect policy); false when pinned to Proxy.
    public let followsRedirects: Bool
    public var deadline: ContinuousClock.Instant { retry.deadline }
    private var retry: LoginRetryPlan
    private var state = State.initial
    private var chainHops = 0
    /// Redirects followed in all (for the audit trail).
    public private(set) var hops = 0
    /// Attempts started after a failure.
    public private(set) var retries = 0

    public init(placement: Placement, deadline: ContinuousClock.Instant, followsRedirects: Bool = true,
                policy: LoginRetryPolicy = LoginRetryPolicy()) {
        self.placement = placement
        self.followsRedirects = followsRedirects
        self.retry = LoginRetryPlan(deadline: deadline, policy: policy)
    }

    /// Endpoints that failed this login.
    public var failedEndpoints: Set<String> { retry.failedEndpoints }

    public mutating func start(now: ContinuousClock.Instant) -> BackendLoginAction {
        guard state == .initial else { preconditionFailure("start called twice") }
        return next(.route, now: now)
    }

    /// The router placed the session on `endpoint`.
    ///
    /// - Parameters:
    ///   - onReplica: it serves the session as a readable replica.
    ///   - anotherEligible: the router has somewhere else for this session if `endpoint` fails.
    public mutating func routed(to endpoint: String, onReplica: Bool, anotherEligible: Bool, now: ContinuousClock.Instant) -> BackendLoginAction {
        guard state == .routing else { preconditionFailure("routed while \(state)") }
        return attempt(endpoint: endpoint, onReplica: onReplica, anotherEligible: anotherEligible, now: now)
    }

    public mutating func routeRefused(_ refusal: RouteRefusal) -> BackendLoginAction {
        guard state == .routing else { preconditionFailure("routeRefused while \(state)") }
        return giveUp(.unroutable(refusal))
    }

    public mutating func attemptEnded(_ outcome: LoginAttemptOutcome, now: ContinuousClock.Instant,
                                      random: inout some RandomNumberGenerator) -> BackendLoginStep {
        guard case .attempting(let target, let onReplica, let anotherEligible) = state else {
            preconditionFailure("attemptEnded while \(state)")
        }
        switch outcome {
        case .loggedIn:
            state = .finished
            return BackendLoginStep(action: .loggedIn)
        case .redirected(let to):
            guard followsRedirects else {
                return BackendLoginStep(action: giveUp(.redirectNotAllowed(endpoint: target.endpoint, to: to)))
            }
            guard chainHops < Self.maxRedirects else {
                return BackendLoginStep(action: giveUp(.tooManyRedirects(endpoint: target.endpoint, limit: Self.maxRedirects)))
            }
            chainHops += 1
            hops += 1
            let next = LoginAttemptTarget(endpoint: target.endpoint, redirect: to)
            state = .attempting(next, onReplica: onReplica, anotherEligible: anotherEligible)
            return BackendLoginStep(action: .attempt(next, deadline: deadline))
        case .failed(let failure):
            let charge = failure.countsAgainstEndpoint(onReplica: onReplica)
                ? EndpointFailure(endpoint: target.endpoint, reason: failure.asFailureReason) : nil
            let decision = retry.next(after: failure, on: target.endpoint, onReplica: onReplica,
                                      anotherEligible: anotherEligible && placement == .router, now: now, random: &random)
            let action: BackendLoginAction
            switch decision {
            case .giveUp(let stop):
                action = giveUp(.failed(stop))
            case .retrySame(let delay):
                state = .backingOff(then: .same(endpoint: target.endpoint, onReplica: onReplica, anotherEligible: anotherEligible))
                action = .backOff(delay)
            case .tryAnother(let delay):
                state = .backingOff(then: .route)
                action = .backOff(delay)
            }
            return BackendLoginStep(action: action, endpointFailure: charge)
        }
    }

    public mutating func backOffEnded(now: ContinuousClock.Instant) -> BackendLoginAction {
        guard case .backingOff(let then) = state else { preconditionFailure("backOffEnded while \(state)") }
        retries += 1
        return next(then, now: now)
    }

    private mutating func next(_ next: Next, now: ContinuousClock.Instant) -> BackendLoginAction {
        guard now < deadline else { return giveUp(.deadlinePassed(last: retry.failures.last)) }
        chainHops = 0
        switch (next, placement) {
        case (.route, .router):
            state = .routing
            return .route(avoiding: retry.failedEndpoints)
        case (.route, .fixed(let endpoint)):
            return attempt(endpoint: endpoint, onReplica: false, anotherEligible: false, now: now)
        case (.same(let endpoint, let onReplica, let anotherEligible), _):
            return attempt(endpoint: endpoint, onReplica: onReplica, anotherEligible: anotherEligible, now: now)
        }
    }

    private mutating func attempt(endpoint: String, onReplica: Bool, anotherEligible: Bool, now: ContinuousClock.Instant) -> BackendLoginAction {
        // The router may have held the login until the deadline.
        guard now < deadline else { return giveUp(.deadlinePassed(last: retry.failures.last)) }
        let target = LoginAttemptTarget(endpoint: endpoint)
        state = .attempting(target, onReplica: onReplica, anotherEligible: anotherEligible)
        return .attempt(target, deadline: deadline)
    }

    private mutating func giveUp(_ why: LoginGiveUp) -> BackendLoginAction {
        state = .finished
        return .giveUp(why)
    }
}
