/// What the configuration says an endpoint is (`role:` in tdsgate.yaml).
public enum RoleHint: String, Sendable, Hashable, Codable, CaseIterable {
    /// Expected to be the primary: preferred when several endpoints are seen READ_WRITE.
    case primary
    /// Expected to serve reads: eligible for read sessions even while its role is unknown.
    case replica
    /// Let the probes tell.
    case auto
}

/// One endpoint as the routing core knows it: a name (the proxy maps it to host, port and
/// TLS name), the configured role hint, and whether geo-replication is configured there.
public struct EndpointSpec: Sendable, Hashable {
    public var name: String
    public var roleHint: RoleHint
    /// Probes also query `sys.dm_geo_replication_link_status` (geo-secondary servers and
    /// failover-group members).
    public var geo: Bool
    public var probe: ProbeSettings

    public init(name: String, roleHint: RoleHint = .auto, geo: Bool = false, probe: ProbeSettings = ProbeSettings()) {
        self.name = name
        self.roleHint = roleHint
        self.geo = geo
        self.probe = probe
    }
}

/// What happens to sessions on a primary that stops being primary.
public enum DemotionClosePolicy: String, Sendable, Hashable, Codable {
    /// Close at once: the fastest way to move writers, at the cost of their current request.
    case immediately
    /// Close each session when its current request has finished (or at once when idle).
    case afterCurrentRequest = "after_current_request"
}

/// One cluster: endpoints in configuration order (the order breaks ties) and its databases.
public struct ClusterSpec: Sendable, Hashable {
    public var name: String
    /// Databases sessions may use; empty = any.
    public var databases: [String]
    public var endpoints: [EndpointSpec]
    public var demotionPolicy: DemotionClosePolicy

    public init(
        name: String,
        databases: [String] = [],
        endpoints: [EndpointSpec],
        demotionPolicy: DemotionClosePolicy = .afterCurrentRequest
    ) {
        self.name = name
        self.databases = databases
        self.endpoints = endpoints
        self.demotionPolicy = demotionPolicy
    }

    /// Whether the cluster serves `database`; an empty name means the login's default database.
    public func serves(database: String?) -> Bool {
        Self.list(databases, serves: database)
    }

    static func list(_ databases: [String], serves database: String?) -> Bool {
        guard let database, !database.isEmpty, !databases.isEmpty else { return true }
        // SQL Server database names compare without case under the default collation.
        let key = database.lowercased()
        return databases.contains { $0.lowercased() == key }
    }
}
