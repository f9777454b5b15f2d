import Routing
import Logging

// The configuration as plain data. `GatewayConfig.load(path:)` / `parse(yaml:baseDirectory:)`
// produce it from YAML (see Configs/tdsgate.yaml for every key); everything here is already
// validated and has its defaults applied, and every file path is absolute.

/// The whole tdsgate configuration.
public struct GatewayConfig: Sendable, Hashable {
    public var listeners: [ListenerConfig]
    public var clusters: [ClusterConfig]
    public var backendIdentities: [BackendIdentityConfig]
    /// `logins` of the file with the entries of `logins_file` appended.
    public var logins: [LoginConfig]
    /// Absolute path of `logins_file`, when given (to reload or watch it).
    public var loginsFile: String?
    /// Rules in file order; the first rule whose `match` holds decides.
    public var policy: [PolicyRuleConfig]
    public var throttle: ThrottleConfig
    /// How long a verified SQL login password is remembered (keyed hash in memory) so the
    /// user's next logins skip PBKDF2; 0 = verify every login.
    public var loginCacheSeconds: Int
    public var admin: AdminConfig?
    /// The audit trail (JSON lines); nil = none.
    public var audit: AuditConfig?
    /// The packet dump (`dump:` or `tdsgate run --dump DIR`); nil = off until the admin API
    /// switches it on (follow only, no files).
    public var dump: DumpConfig?
    public var shutdownGraceSeconds: Int
    /// One of `GatewayConfig.logLevels` (swift-log's level names).
    public var logLevel: String
    /// Absolute path of the file this came from (`nil` when parsed from a string).
    public var sourcePath: String?

    public static let defaultShutdownGraceSeconds = 30
    public static let defaultLoginCacheSeconds = 300
    public static let defaultLogLevel = "info"
    public static let logLevels = Logger.Level.allCases.map(\.rawValue)

    public init(
        listeners: [ListenerConfig] = [],
        clusters: [ClusterConfig] = [],
        backendIdentities: [BackendIdentityConfig] = [],
        logins: [LoginConfig] = [],
        loginsFile: String? = nil,
        policy: [PolicyRuleConfig] = [],
        throttle: ThrottleConfig = ThrottleConfig(),
        loginCacheSeconds: Int = GatewayConfig.defaultLoginCacheSeconds,
        admin: AdminConfig? = nil,
        shutdownGraceSeconds: Int = GatewayConfig.defaultShutdownGraceSeconds,
        logLevel: String = GatewayConfig.defaultLogLevel,
        sourcePath: String? = nil
    ) {
        self.listeners = listeners
        self.clusters = clusters
        self.backendIdentities = backendIdentities
        self.logins = logins
        self.loginsFile = loginsFile
        self.policy = policy
        self.throttle = throttle
        self.loginCacheSeconds = loginCacheSeconds
        self.admin = admin
        self.shutdownGraceSeconds = shutdownGraceSeconds
        self.logLevel = logLevel
        self.sourcePath = sourcePath
    }

    public func listener(named name: String) -> ListenerConfig? {
        listeners.first { $0.name == name }
    }

    public func cluster(named name: String) -> ClusterConfig? {
        clusters.first { $0.name == name }
    }

    public func backendIdentity(named name: String) -> BackendIdentityConfig? {
        backendIdentities.first { $0.name == name }
    }

    /// SQL login names compare without regard to case, as SQL Server's default collation does.
    public func login(named name: String) -> LoginConfig? {
        let key = name.lowercased()
        return logins.first { $0.name.lowercased() == key }
    }

    public func policyRule(named name: String) -> PolicyRuleConfig? {
        policy.first { $0.name == name }
    }

    /// `logLevel` as a swift-log level.
    public var loggerLevel: Logger.Level {
        Logger.Level(rawValue: logLevel) ?? .info
    }
}

/// How a client may protect its connection to a listener.
public enum ClientEncryption: String, Sendable, Hashable, CaseIterable {
    /// TDS 7.x: TLS negotiated in PRELOGIN, the whole connection encrypted.
    case required
    /// TDS 8.0: TLS first, before PRELOGIN.
    case strict
    /// TDS 7.x with ENCRYPT_OFF: only the LOGIN7 packet is encrypted.
    case loginOnly = "login_only"
    /// No TLS at all.
    case plaintext

    /// Whether the mode needs the listener's certificate.
    public var needsTLS: Bool { self != .plaintext }
}

/// A socket tdsgate accepts clients on (HAProxy's frontend/bind).
public struct ListenerConfig: Sendable, Hashable {
    public var name: String
    public var address: String
    /// 0 = any free port.
    public var port: Int
    public var tls: TLSFilesConfig?
    public var clientEncryption: Set<ClientEncryption>
    /// Cluster for sessions on this listener unless a policy rule names another.
    public var cluster: String?
    public var entra: EntraListenerConfig?
    /// Append ` [tdsgate:<principal>]` to the AppName the backend sees.
    public var tagSessions: Bool
    /// Integrated (Kerberos) logins; nil = refused on this listener.
    public var kerberos: KerberosListenerConfig?

    public static let defaultAddress = "127.0.0.1"
    public static let defaultPort = 1433
    public static let defaultClientEncryption: Set<ClientEncryption> = [.required, .strict]

    public init(
        name: String,
        address: String = ListenerConfig.defaultAddress,
        port: Int = ListenerConfig.defaultPort,
        tls: TLSFilesConfig? = nil,
        clientEncryption: Set<ClientEncryption> = ListenerConfig.defaultClientEncryption,
        cluster: String? = nil,
        entra: EntraListenerConfig? = nil,
        tagSessions: Bool = false
    ) {
        self.name = name
        self.address = address
        self.port = port
        self.tls = tls
        self.clientEncryption = clientEncryption
        self.cluster = cluster
        self.entra = entra
        self.tagSessions = tagSessions
    }
}

/// `kerberos:` of a listener: tdsgate as a GSSAPI acceptor for `MSSQLSvc/<host>:<port>`.
public struct KerberosListenerConfig: Sendable, Hashable {
    /// Keytab with the service keys; re-read when it changes.
    public var keytab: String
    /// Client realms accepted; `["*"]` = any realm the keytab's KDC vouches for.
    public var realms: [String]
    public var nameRules: [KerberosNameRuleConfig]

    public init(keytab: String, realms: [String], nameRules: [KerberosNameRuleConfig] = []) {
        self.keytab = keytab
        self.realms = realms
        self.nameRules = nameRules
    }
}

/// One `name_rules` entry: which client principals it applies to and the tdsgate name.
public struct KerberosNameRuleConfig: Sendable, Hashable {
    public var realm: String?
    /// Regular expression over the whole `user@REALM`.
    public var pattern: String?
    /// `user`, `principal`, or a template with `{user}`, `{realm}`, `{principal}`, `$1`...
    public var name: String
    public var lowercase: Bool

    public init(realm: String? = nil, pattern: String? = nil, name: String = "user", lowercase: Bool = false) {
        self.realm = realm
        self.pattern = pattern
        self.name = name
        self.lowercase = lowercase
    }
}

/// A PEM certificate chain and its private key (absolute paths).
public struct TLSFilesConfig: Sendable, Hashable {
    public var certificate: String
    public var key: String

    public init(certificate: String, key: String) {
        self.certificate = certificate
        self.key = key
    }
}

/// Acceptance of client Entra (Azure AD) access tokens on a listener.
///
/// When `tenant_id` is given, missing `issuers` and `jwks_url` default to that tenant's
/// (`https://sts.windows.net/<tid>/`, `https://login.microsoftonline.com/<tid>/v2.0`;
/// `https://login.microsoftonline.com/<tid>/discovery/v2.0/keys`).
public struct EntraListenerConfig: Sendable, Hashable {
    public var tenantID: String?
    public var issuers: [String]
    public var audiences: [String]
    /// Exactly one of `jwksURL` and `jwksFile` is set.
    public var jwksURL: String?
    public var jwksFile: String?
    public var clockSkewSeconds: Int

    public static let defaultAudiences = ["https://database.windows.net/", "https://database.windows.net"]
    public static let defaultClockSkewSeconds = 300

    public init(
        tenantID: String? = nil,
        issuers: [String] = [],
        audiences: [String] = EntraListenerConfig.defaultAudiences,
        jwksURL: String? = nil,
        jwksFile: String? = nil,
        clockSkewSeconds: Int = EntraListenerConfig.defaultClockSkewSeconds
    ) {
        self.tenantID = tenantID
        self.issuers = issuers
        self.audiences = audiences
        self.jwksURL = jwksURL
        self.jwksFile = jwksFile
        self.clockSkewSeconds = clockSkewSeconds
    }

    public static func defaultIssuers(tenantID: String) -> [String] {
        ["https://sts.windows.net/\(tenantID)/", "https://login.microsoftonline.com/\(tenantID)/v2.0"]
    }

    public static func defaultJWKSURL(tenantID: String) -> String {
        "https://login.microsoftonline.com/\(tenantID)/discovery/v2.0/keys"
    }
}

/// A set of backend endpoints serving the same databases (HAProxy's backend).
public struct ClusterConfig: Sendable, Hashable {
    public var name: String
    /// Databases sessions may use; empty = any.
    public var databases: [String]
    /// PEM roots for the backend certificates; `nil` = the system's roots.
    public var caFile: String?
    /// TDS 8.0 (TLS before PRELOGIN) to the backend.
    public var strict: Bool
    public var connectTimeoutMs: Int
    public var loginTimeoutMs: Int
    public var endpoints: [EndpointConfig]
    /// Health checks (HAProxy-like); `nil` = no probing: every endpoint is taken as
    /// healthy and its configured role as true.
    public var probe: ProbeConfig?
    /// How read-intent sessions spread over healthy replicas.
    public var balancing: String
    /// Read-intent sessions go to the primary when no replica is healthy.
    public var readFallbackToPrimary: Bool
    /// How long a write login waits for a primary during a failover.
    public var maxWriteWaitMs: Int
    /// Sessions on a demoted primary: `immediately` or `after_request`.
    public var demotion: String
    /// `routing:` rules in order; the first that matches a session decides its options.
    public var routing: [RoutingRule] = []
    /// `redirect` (default): follow Azure's routing ENVCHANGE to the worker. `proxy`: the
    /// servers are pinned to the Proxy connection policy, so tdsgate stays on the endpoint it
    /// dialled and treats a redirect as a misconfiguration (e.g. only port 1433 is open).
    public var connectionPolicy: String = "redirect"
    /// The Azure failover group behind this cluster, for `tdsgate drill failover`.
    public var failoverGroup: FailoverGroupConfig?

    public static let defaultConnectTimeoutMs = 5_000
    public static let defaultLoginTimeoutMs = 15_000
    public static let balancingModes = ["round_robin", "least_sessions", "lowest_latency"]
    public static let demotionModes = ["immediately", "after_request"]
    public static let connectionPolicies = ["redirect", "proxy"]

    public init(
        name: String,
        databases: [String] = [],
        caFile: String? = nil,
        strict: Bool = false,
        connectTimeoutMs: Int = ClusterConfig.defaultConnectTimeoutMs,
        loginTimeoutMs: Int = ClusterConfig.defaultLoginTimeoutMs,
        endpoints: [EndpointConfig] = [],
        probe: ProbeConfig? = nil,
        balancing: String = "round_robin",
        readFallbackToPrimary: Bool = true,
        maxWriteWaitMs: Int = 15_000,
        demotion: String = "after_request"
    ) {
        self.name = name
        self.databases = databases
        self.caFile = caFile
        self.strict = strict
        self.connectTimeoutMs = connectTimeoutMs
        self.loginTimeoutMs = loginTimeoutMs
        self.endpoints = endpoints
        self.probe = probe
        self.balancing = balancing
        self.readFallbackToPrimary = readFallbackToPrimary
        self.maxWriteWaitMs = maxWriteWaitMs
        self.demotion = demotion
    }

    public func endpoint(named name: String) -> EndpointConfig? {
        endpoints.first { $0.name == name }
    }
}

/// `audit:`: where the JSON-lines audit trail goes and what it holds.
public struct AuditConfig: Sendable, Hashable {
    public enum Destination: Sendable, Hashable {
        case stdout
        case file(path: String, maxBytes: Int)
        case syslog(host: String, port: Int, transport: String, facility: String, appName: String)
    }

    public var destination: Destination
    /// SQL batches and RPC calls too (not only logins and sessions).
    public var statements: Bool
    /// Literals in SQL text and RPC parameter values replaced by `?` / `<masked>`.
    public var maskLiterals: Bool
    public var queueCapacity: Int

    public static let destinations = ["stdout", "file", "syslog"]
    public static let facilities = ["kern", "user", "daemon", "auth", "syslog", "authpriv",
                                    "local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"]

    public init(destination: Destination = .stdout, statements: Bool = false, maskLiterals: Bool = true, queueCapacity: Int = 10_000) {
        self.destination = destination
        self.statements = statements
        self.maskLiterals = maskLiterals
        self.queueCapacity = queueCapacity
    }
}

/// `failover_group:` of a cluster: where ARM's failover-group API is and which identity
/// may call it (needs a role such as SQL Server Contributor on both servers).
public struct FailoverGroupConfig: Sendable, Hashable {
    public var name: String
    public var subscriptionID: String
    public var resourceGroup: String
    /// The two partner servers (Azure resource names, not host names).
    public var servers: [String]
    public var identity: String
    public var armURL: String

    public static let defaultARMURL = "https://management.azure.com"

    public init(name: String, subscriptionID: String, resourceGroup: String, servers: [String], identity: String,
                armURL: String = FailoverGroupConfig.defaultARMURL) {
        self.name = name
        self.subscriptionID = subscriptionID
        self.resourceGroup = resourceGroup
        self.servers = servers
        self.identity = identity
        self.armURL = armURL
    }

    /// The failover group's ARM resource path as seen from `server`.
    public func resourcePath(server: String) -> String {
        "/subscriptions/\(subscriptionID)/resourceGroups/\(resourceGroup)/providers/Microsoft.Sql/servers/\(server)/failoverGroups/\(name)"
    }
}

/// `probe:` of a cluster: a real TDS login with `identity` and a role query.
public struct ProbeConfig: Sendable, Hashable {
    public var identity: String
    public var database: String?
    public var intervalMs: Int
    public var timeoutMs: Int
    public var rise: Int
    public var fall: Int

    public init(identity: String, database: String? = nil, intervalMs: Int = 2_000, timeoutMs: Int = 2_000, rise: Int = 2, fall: Int = 3) {
        self.identity = identity
        self.database = database
        self.intervalMs = intervalMs
        self.timeoutMs = timeoutMs
        self.rise = rise
        self.fall = fall
    }
}

/// What an endpoint is expected to be; `auto` leaves it to the prober.
public enum EndpointRole: String, Sendable, Hashable, CaseIterable {
    case primary, replica, auto
}

/// One backend server of a cluster (HAProxy's server).
public struct EndpointConfig: Sendable, Hashable {
    /// Unique in its cluster; defaults to `host` (or `host:port` when two endpoints share a host).
    public var name: String
    public var host: String
    public var port: Int
    /// Name expected in the backend certificate; defaults to `host`.
    public var tlsName: String
    public var role: EndpointRole
    /// A geo-replicated server: probes also read sys.dm_geo_replication_link_status.
    public var geo: Bool = false

    public static let defaultPort = 1433
    public static let defaultRole = EndpointRole.auto

    public init(name: String, host: String, port: Int = EndpointConfig.defaultPort, tlsName: String? = nil, role: EndpointRole = EndpointConfig.defaultRole) {
        self.name = name
        self.host = host
        self.port = port
        self.tlsName = tlsName ?? host
        self.role = role
    }
}

/// Where tdsgate gets the access token it logs in to the backend with.
public struct BackendIdentityConfig: Sendable, Hashable {
    public var name: String
    /// One of `BackendIdentityConfig.kinds`.
    public var kind: String
    /// Override of the kind's well-known token URL (IMDS, App Service, Arc).
    public var endpoint: String?
    /// User-assigned identity selectors: at most one of the three.
    public var clientID: String?
    public var objectID: String?
    public var resourceID: String?
    public var tenantID: String?
    public var authorityHost: String?
    /// Given inline in the file (allowed; `clientSecretFile` is recommended).
    public var clientSecret: String?
    public var clientSecretFile: String?
    public var certificateFile: String?
    public var privateKeyFile: String?
    public var tokenFile: String?
    /// Resource (audience) the token is requested for.
    public var resource: String

    public static let kinds = ["imds", "app_service", "arc", "workload_identity", "service_principal", "static_file", "auto"]
    public static let defaultResource = "https://database.windows.net/"

    public init(
        name: String,
        kind: String,
        endpoint: String? = nil,
        clientID: String? = nil,
        objectID: String? = nil,
        resourceID: String? = nil,
        tenantID: String? = nil,
        authorityHost: String? = nil,
        clientSecret: String? = nil,
        clientSecretFile: String? = nil,
        certificateFile: String? = nil,
        privateKeyFile: String? = nil,
        tokenFile: String? = nil,
        resource: String = BackendIdentityConfig.defaultResource
    ) {
        self.name = name
        self.kind = kind
        self.endpoint = endpoint
        self.clientID = clientID
        self.objectID = objectID
        self.resourceID = resourceID
        self.tenantID = tenantID
        self.authorityHost = authorityHost
        self.clientSecret = clientSecret
        self.clientSecretFile = clientSecretFile
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
        self.tokenFile = tokenFile
        self.resource = resource
    }
}

/// A SQL login held by tdsgate (clients log in with it; the backend never sees it).
public struct LoginConfig: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    /// `pbkdf2-sha256$<iterations>$<salt base64>$<hash base64>`
    public var passwordHash: String

    public init(name: String, passwordHash: String) {
        self.name = name
        self.passwordHash = passwordHash
    }

    /// Leaves the hash out, so that logging a login does not leak it.
    public var description: String { "LoginConfig(name: \(name))" }
}

/// Who (match) may reach what (clusters, databases, write) as which backend identity.
public struct PolicyRuleConfig: Sendable, Hashable {
    public var name: String
    /// Claim → value; every entry must hold; empty = any principal.
    /// Keys are `PolicyRuleConfig.matchKeys`.
    public var match: [String: String]
    /// Cluster names, or `*` for any.
    public var clusters: [String]
    /// Database names, or `*` for any.
    public var databases: [String]
    /// `false` = read-only sessions (ApplicationIntent=ReadOnly).
    public var write: Bool
    public var backendIdentity: String
    /// Overrides the listener's `tag_sessions` when set.
    public var tagAppName: Bool?

    public static let matchKeys = ["login", "object_id", "group", "app_role", "upn", "app_id", "realm", "kerberos"]

    public init(
        name: String,
        match: [String: String] = [:],
        clusters: [String] = ["*"],
        databases: [String] = ["*"],
        write: Bool = false,
        backendIdentity: String,
        tagAppName: Bool? = nil
    ) {
        self.name = name
        self.match = match
        self.clusters = clusters
        self.databases = databases
        self.write = write
        self.backendIdentity = backendIdentity
        self.tagAppName = tagAppName
    }

    /// Whether `cluster` is among the rule's clusters (`*` = any).
    public func allows(cluster: String) -> Bool {
        clusters.contains("*") || clusters.contains(cluster)
    }

    /// Whether `database` is among the rule's databases (`*` = any; case-insensitive).
    public func allows(database: String) -> Bool {
        databases.contains("*") || databases.contains { $0.lowercased() == database.lowercased() }
    }
}

/// Blocking of sources after repeated failed logins.
public struct ThrottleConfig: Sendable, Hashable {
    public var maxFailures: Int
    public var windowSeconds: Int
    public var blockSeconds: Int

    public init(maxFailures: Int = 5, windowSeconds: Int = 60, blockSeconds: Int = 60) {
        self.maxFailures = maxFailures
        self.windowSeconds = windowSeconds
        self.blockSeconds = blockSeconds
    }
}

/// The admin HTTP API.
public struct AdminConfig: Sendable, Hashable {
    public var address: String
    /// 0 = any free port.
    public var port: Int
    /// File holding the bearer token; required when `address` is not loopback.
    public var bearerTokenFile: String?

    public static let defaultAddress = "127.0.0.1"
    public static let defaultPort = 9090

    public init(address: String = AdminConfig.defaultAddress, port: Int = AdminConfig.defaultPort, bearerTokenFile: String? = nil) {
        self.address = address
        self.port = port
        self.bearerTokenFile = bearerTokenFile
    }
}
