import Foundation

/// One relayed session as the admin API lists it (`GET /v1/clusters/{name}/sessions`):
/// enough for an operator, or the drill tool, to see which endpoint carries whom.
public struct SessionInfo: Codable, Sendable, Hashable {
    public var id: Int
    public var client: String
    public var principal: String
    public var authMethod: String
    public var cluster: String
    public var endpoint: String
    public var intent: String
    public var database: String
    public var appName: String
    public var hostName: String
    public var backendIdentity: String
    public var openedAt: Date

    enum CodingKeys: String, CodingKey {
        case id, client, principal, cluster, endpoint, intent, database
        case authMethod = "auth_method"
        case appName = "app_name"
        case hostName = "host_name"
        case backendIdentity = "backend_identity"
        case openedAt = "opened_at"
    }
}
