/// What `DATABASEPROPERTYEX(DB_NAME(), 'Updateability')` said.
public enum ObservedRole: String, Sendable, Hashable, Codable, CustomStringConvertible {
    case readWrite = "READ_WRITE"
    case readOnly = "READ_ONLY"
    /// The login worked but the role query gave nothing usable; never trusted for writes.
    case unknown = "UNKNOWN"

    public var description: String { rawValue }
}

/// `sys.dm_geo_replication_link_status.role`: 0 primary, 1 secondary.
public enum GeoRole: String, Sendable, Hashable, Codable, CustomStringConvertible {
    case primary
    case secondary

    public var description: String { rawValue }
}

/// The geo-replication part of a probe, present only where geo-replication is configured.
public struct GeoObservation: Sendable, Hashable {
    public var role: GeoRole
    public var replicationLag: Duration?

    public init(role: GeoRole, replicationLag: Duration? = nil) {
        self.role = role
        self.replicationLag = replicationLag
    }
}

/// Why a probe or a real session failed against an endpoint.
public enum FailureReason: Sendable, Hashable, CustomStringConvertible {
    /// TCP or TLS did not come up.
    case connect(String)
    /// The probe (or login) did not finish within its timeout.
    case timeout
    /// The server answered the login with an ERROR token.
    case login(number: Int32, message: String)
    /// Logged in, but the role query failed.
    case roleQuery(String)
    /// A live session's connection broke (passive health).
    case sessionBroken(String)
    case other(String)

    public var description: String {
        switch self {
        case .connect(let detail): "connect failed: \(detail)"
        case .timeout: "timed out"
        case .login(let number, let message): message.isEmpty ? "login error \(number)" : "login error \(number): \(message)"
        case .roleQuery(let detail): "role query failed: \(detail)"
        case .sessionBroken(let detail): "session broke: \(detail)"
        case .other(let detail): detail
        }
    }
}

/// One health check's outcome, as the prober reports it.
public enum ProbeResult: Sendable, Hashable {
    case success(role: ObservedRole, geo: GeoObservation? = nil, latency: Duration)
    case failure(FailureReason)
}

/// The role an endpoint was last seen in, and when.
public struct RoleObservation: Sendable, Hashable {
    public var role: ObservedRole
    public var geo: GeoObservation?
    public var at: ContinuousClock.Instant

    public init(role: ObservedRole, geo: GeoObservation? = nil, at: ContinuousClock.Instant) {
        self.role = role
        self.geo = geo
        self.at = at
    }

    /// Writes need positive proof: READ_WRITE, and no geo link calling this side secondary
    /// (a forced failover can leave an old primary briefly believing it is writable).
    public var allowsWrites: Bool {
        role == .readWrite && geo?.role != .secondary
    }
}
