import Foundation
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
    /// When the current primary (or the lack of one) began, by the proxy's clock.
    public var primarySince: Date?
    public var probing: Bool
    public var endpoints: [Endpoint]

    enum CodingKeys: String, CodingKey {
        case name, primary, probing, endpoints
        case primarySince = "primary_since"
    }
}

extension ClusterRuntime {
    func snapshot() -> ClusterSnapshot {
        let now = ContinuousClock.now
        return withTopology { t in
            let since = t.primarySince.map { Date().addingTimeInterval(-Double((now - $0).components.seconds) - Double((now - $0).components.attoseconds) / 1e18) }
            return ClusterSnapshot(name: config.name, primary: t.currentPrimary, primarySince: since, probing: config.probe != nil, endpoints: t.endpoints.map { e in
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

extension ClusterSnapshot {
    /// Reads what the admin API writes (times as RFC 3339 with milliseconds).
    public static func jsonDecoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.dateDecodingStrategy = .custom { decoder in
            let text = try decoder.singleValueContainer().decode(String.self)
            let f = ISO8601DateFormatter()
            f.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
            if let date = f.date(from: text) { return date }
            f.formatOptions = [.withInternetDateTime]
            if let date = f.date(from: text) { return date }
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "not an RFC 3339 time: \(text)"))
        }
        return d
    }
}
