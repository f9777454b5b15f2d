import Routing

/// A cluster as the admin API and `tdsgate status` show it.
public struct ClusterSnapshot: Codable, Sendable {
    public struct Endpoint: Codable, Sendable {
        public var name: String
        public var address: String
        public var roleHint: String
        public var health: String
        public var up: Bool
        public var admin: String
        public var lastRole: String?
        public var primary: Bool
        public var probeLatencyMs: Double?
        public var readSessions: Int
        public var writeSessions: Int

        enum CodingKeys: String, CodingKey {
            case name, address, health, up, admin, primary
            case roleHint = "role_hint"
            case lastRole = "last_role"
            case probeLatencyMs = "probe_latency_ms"
            case readSessions = "read_sessions"
            case writeSessions = "write_sessions"
        }
    }

    public var name: String
    public var primary: String?
    public var probing: Bool
    public var endpoints: [Endpoint]
}

extension ClusterRuntime {
    func snapshot() -> ClusterSnapshot {
        let now = ContinuousClock.now
        return withTopology { t in
            ClusterSnapshot(name: config.name, primary: t.currentPrimary, probing: config.probe != nil, endpoints: t.endpoints.map { e in
                let c = config.endpoint(named: e.spec.name)
                let latency = e.health.latency.map { Double($0.components.seconds) * 1000 + Double($0.components.attoseconds) / 1e15 }
                return ClusterSnapshot.Endpoint(
                    name: e.spec.name, address: c.map { "\($0.host):\($0.port)" } ?? "?", roleHint: "\(e.spec.roleHint)",
                    health: t.describe(e.spec.name, now: now), up: e.health.isUp, admin: "\(e.health.admin)",
                    lastRole: e.health.lastRole.map { "\($0.role)" }, primary: t.currentPrimary == e.spec.name,
                    probeLatencyMs: latency, readSessions: e.readSessions, writeSessions: e.writeSessions)
            })
        }
    }
}
