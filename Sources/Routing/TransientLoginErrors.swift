/// How a failed backend login should be treated.
public enum LoginErrorClass: String, Sendable, Hashable {
    /// Throttling, resource limits, a serverless database waking up: the endpoint is fine
    /// but needs a moment. Retry the same endpoint after a backoff.
    case busy
    /// The database there is unavailable (failover in progress, reconfiguration): another
    /// eligible endpoint may serve the session now.
    case unavailable
    /// Anything else (bad credentials, no such database, no permission): retrying cannot help.
    case permanent
}

/// The error numbers drivers retry at login (field guide section 7), sorted by what the
/// retry should do.
public enum TransientLoginErrors {
    /// Busy: 10928/10929 resource limits, 40501 service busy, 49918-49920 too many operations,
    /// 42108/42109 serverless pool warming up or paused.
    public static let busy: Set<Int32> = [10928, 10929, 40501, 49918, 49919, 49920, 42108, 42109]
    /// Unavailable: 4060 cannot open database (during failover), 4221 read-secondary not yet
    /// versioned, 40197 failover in progress, 40613 database not currently available,
    /// 40143, 40540, 40020, 40166 service errors during reconfiguration.
    public static let unavailable: Set<Int32> = [4060, 4221, 40197, 40613, 40143, 40540, 40020, 40166]
    /// Retried by drivers only on readable replicas, where they come from the replica's
    /// own transitions; on a primary they are not login-transient and are not retried.
    public static let replicaOnly: Set<Int32> = [3961, 1219, 3947]

    public static func classify(_ number: Int32, onReplica: Bool) -> LoginErrorClass {
        if busy.contains(number) { return .busy }
        if unavailable.contains(number) { return .unavailable }
        if onReplica && replicaOnly.contains(number) { return .unavailable }
        return .permanent
    }
}

/// Why one backend login attempt failed.
public enum LoginFailure: Sendable, Hashable, CustomStringConvertible {
    /// The server answered with an ERROR token.
    case server(number: Int32, message: String)
    /// TCP or TLS failed, or the connection dropped during login.
    case connect(String)
    /// The attempt's own timeout ran out.
    case timedOut

    public func errorClass(onReplica: Bool) -> LoginErrorClass {
        switch self {
        case .server(let number, _): TransientLoginErrors.classify(number, onReplica: onReplica)
        case .connect, .timedOut: .unavailable
        }
    }

    /// Whether this should count against the endpoint's health (passive check). An endpoint
    /// that cannot be reached or has no database counts; one that is merely busy, or that
    /// refused a bad password, does not: draining it would punish the wrong party.
    public func countsAgainstEndpoint(onReplica: Bool) -> Bool {
        errorClass(onReplica: onReplica) == .unavailable
    }

    /// The same failure in the terms of endpoint health.
    public var asFailureReason: FailureReason {
        switch self {
        case .server(let number, let message): .login(number: number, message: message)
        case .connect(let detail): .connect(detail)
        case .timedOut: .timeout
        }
    }

    public var description: String {
        switch self {
        case .server(let number, let message): message.isEmpty ? "error \(number)" : "error \(number) (\(message))"
        case .connect(let detail): "connect failed (\(detail))"
        case .timedOut: "login timed out"
        }
    }
}
