import Foundation
import Yams

/// The YAML description of an emulated Azure SQL deployment (see Configs/emulator.yaml).
public struct EmulatorConfig: Sendable, Decodable {
    public var tenant: TenantConfig
    public var servers: [ServerConfig]
    public var failoverGroups: [FailoverGroupConfig]
    /// Address every endpoint listens on; drivers reach it through `tlsHost`.
    public var host: String
    /// Name in the endpoint certificates and in redirects, so that drivers which check
    /// certificate names connect with `Server=localhost`.
    public var tlsHost: String
    /// Port of the Entra/IMDS/ARM HTTP endpoint (0 = any free port).
    public var httpPort: Int
    public var subscriptionID: String
    public var resourceGroup: String
    /// A certificate to serve instead of one from the generated CA (PEM files).
    public var tls: EmulatorTLSFiles?

    enum CodingKeys: String, CodingKey {
        case tenant, servers, host, tls
        case failoverGroups = "failover_groups"
        case tlsHost = "tls_host"
        case httpPort = "http_port"
        case subscriptionID = "subscription_id"
        case resourceGroup = "resource_group"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        tenant = try c.decode(TenantConfig.self, forKey: .tenant)
        servers = try c.decode([ServerConfig].self, forKey: .servers)
        failoverGroups = try c.decodeIfPresent([FailoverGroupConfig].self, forKey: .failoverGroups) ?? []
        host = try c.decodeIfPresent(String.self, forKey: .host) ?? "127.0.0.1"
        tlsHost = try c.decodeIfPresent(String.self, forKey: .tlsHost) ?? "localhost"
        httpPort = try c.decodeIfPresent(Int.self, forKey: .httpPort) ?? 0
        subscriptionID = try c.decodeIfPresent(String.self, forKey: .subscriptionID) ?? "00000000-0000-4000-8000-00000000a001"
        resourceGroup = try c.decodeIfPresent(String.self, forKey: .resourceGroup) ?? "rg-tdsgate-emulator"
        tls = try c.decodeIfPresent(EmulatorTLSFiles.self, forKey: .tls)
    }

    public static func load(yaml: String) throws -> EmulatorConfig {
        let config = try YAMLDecoder().decode(EmulatorConfig.self, from: yaml)
        try config.validate()
        return config
    }

    public static func load(path: String) throws -> EmulatorConfig {
        try load(yaml: String(contentsOfFile: path, encoding: .utf8))
    }

    public func validate() throws {
        var nodeNames = Set<String>()
        var serverNames = Set<String>()
        for (si, server) in servers.enumerated() {
            guard serverNames.insert(server.name).inserted else {
                throw EmulatorConfigError("servers[\(si)].name: duplicate server '\(server.name)'")
            }
            if server.nodes.filter({ $0.kind == .primaryReplica }).count != 1 {
                throw EmulatorConfigError("servers[\(si)].nodes: a server needs exactly one node of kind primary_replica")
            }
            for (ni, node) in server.nodes.enumerated() {
                guard nodeNames.insert(node.name).inserted else {
                    throw EmulatorConfigError("servers[\(si)].nodes[\(ni)].name: duplicate node '\(node.name)'")
                }
            }
        }
        for (gi, group) in failoverGroups.enumerated() {
            for s in [group.primaryServer, group.secondaryServer] where !serverNames.contains(s) {
                throw EmulatorConfigError("failover_groups[\(gi)]: unknown server '\(s)'")
            }
        }
    }
}

/// `tls: {certificate: cert.pem, key: key.pem, ca: ca.pem}`: the nodes serve this
/// certificate; `ca` is what clients must trust (reported as `ca_file`).
public struct EmulatorTLSFiles: Sendable, Decodable {
    public var certificate: String
    public var key: String
    public var ca: String
}

public struct EmulatorConfigError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

public struct TenantConfig: Sendable, Decodable {
    public var id: String
    public var identities: [EmulatedIdentity]
    /// Token lifetime in seconds.
    public var tokenLifetime: Int

    enum CodingKeys: String, CodingKey {
        case id, identities
        case tokenLifetime = "token_lifetime"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        id = try c.decode(String.self, forKey: .id)
        identities = try c.decodeIfPresent([EmulatedIdentity].self, forKey: .identities) ?? []
        tokenLifetime = try c.decodeIfPresent(Int.self, forKey: .tokenLifetime) ?? 3600
    }
}

public struct SQLLoginConfig: Sendable, Decodable, Hashable {
    public var user: String
    public var password: String
}

public struct ServerConfig: Sendable, Decodable {
    public var name: String
    public var logins: [SQLLoginConfig]
    public var databases: [String]
    /// Entra principals (by upn, appid or oid, or the identity's name) allowed to log in.
    /// Empty means every identity of the tenant, as if each had a contained user.
    public var entraUsers: [String]
    public var nodes: [NodeConfig]
    public var flavor: ServerFlavor

    enum CodingKeys: String, CodingKey {
        case name, logins, databases, nodes, flavor
        case entraUsers = "entra_users"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        logins = try c.decodeIfPresent([SQLLoginConfig].self, forKey: .logins) ?? []
        databases = try c.decodeIfPresent([String].self, forKey: .databases) ?? []
        entraUsers = try c.decodeIfPresent([String].self, forKey: .entraUsers) ?? []
        nodes = try c.decode([NodeConfig].self, forKey: .nodes)
        flavor = try c.decodeIfPresent(ServerFlavor.self, forKey: .flavor) ?? .sqlDatabase
    }
}

/// Which Azure SQL offering a server is: it decides what USE may do.
public enum ServerFlavor: String, Sendable, Decodable {
    /// Azure SQL Database: USE only names the current database (else error 40508).
    case sqlDatabase = "sql_database"
    /// Azure SQL Managed Instance: a SQL Server instance, USE switches databases.
    case managedInstance = "managed_instance"
}

public enum NodeKind: String, Sendable, Decodable {
    /// Azure's gateway on 1433: authenticates the login, then redirects (ENVCHANGE 20)
    /// to the worker that holds the database, or proxies nothing in this emulator.
    case gateway
    /// The replica that takes writes while its server is primary in its failover group.
    case primaryReplica = "primary_replica"
    /// A read-scale-out replica: ReadOnlyIntent sessions land here; never writable.
    case readableReplica = "readable_replica"
}

public enum NodeEncryption: String, Sendable, Decodable {
    /// SQL Server without forced encryption: login-only TLS when the client says OFF.
    case off
    /// Forced encryption (Azure SQL): every session fully encrypted.
    case required
    /// No certificate: plaintext only.
    case notSupported = "not_supported"
}

public struct NodeConfig: Sendable, Decodable {
    public var name: String
    public var kind: NodeKind
    public var port: Int
    public var encryption: NodeEncryption
    /// Whether TDS 8.0 strict connections are accepted (needs a certificate).
    public var strict: Bool
    /// Replication delay from the primary, in milliseconds.
    public var lagMilliseconds: Int
    /// Logged-in sessions the node accepts before logins fail with error 10928 (the
    /// service tier's session cap); nil is no limit. The control API can change it.
    public var maxSessions: Int?

    enum CodingKeys: String, CodingKey {
        case name, kind, port, encryption, strict
        case lagMilliseconds = "lag_ms"
        case maxSessions = "max_sessions"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        name = try c.decode(String.self, forKey: .name)
        kind = try c.decode(NodeKind.self, forKey: .kind)
        port = try c.decodeIfPresent(Int.self, forKey: .port) ?? 0
        encryption = try c.decodeIfPresent(NodeEncryption.self, forKey: .encryption) ?? .required
        strict = try c.decodeIfPresent(Bool.self, forKey: .strict) ?? (encryption != .notSupported)
        lagMilliseconds = try c.decodeIfPresent(Int.self, forKey: .lagMilliseconds) ?? 0
        maxSessions = try c.decodeIfPresent(Int.self, forKey: .maxSessions)
        if let m = maxSessions, m < 1 {
            throw DecodingError.dataCorruptedError(forKey: .maxSessions, in: c, debugDescription: "max_sessions must be at least 1 (leave it out for no limit)")
        }
    }
}

public struct FailoverGroupConfig: Sendable, Decodable {
    public var name: String
    public var primaryServer: String
    public var secondaryServer: String

    enum CodingKeys: String, CodingKey {
        case name
        case primaryServer = "primary_server"
        case secondaryServer = "secondary_server"
    }
}
