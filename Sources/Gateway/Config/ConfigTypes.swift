import Audit
import Identity
import Kerberos
import Logging
import Routing
import TDSNIO

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
    public var logLevel: Logger.Level
    /// Absolute path of the file this came from (`nil` when parsed from a string).
    public var sourcePath: String?

    public static let defaultShutdownGraceSeconds = 30
    public static let defaultLoginCacheSeconds = 300
    public static let defaultLogLevel = Logger.Level.info

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
        logLevel: Logger.Level = GatewayConfig.defaultLogLevel,
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
    /// Bounds the time from accept to the login reply; a client that has not logged in by
    /// then is closed.
    public var loginTimeoutSeconds: Int = ListenerConfig.defaultLoginTimeoutSeconds
    /// Client connections open at once (all sources); nil = no limit.
    public var maxConnections: Int?
    /// Client connections open at once from one client address; nil = no limit.
    public var maxConnectionsPerSource: Int?
    /// Connections accepted but not yet logged in; nil = no limit.
    public var maxPendingLogins: Int?
    /// PROXY protocol headers from trusted load balancers; nil = none accepted.
    public var proxyProtocol: ProxyProtocolConfig?
    /// Put the principal in each session's SESSION_CONTEXT (`tdsgate.principal`); a policy
    /// rule's `session_context` overrides it.
    public var sessionContext: Bool = false

    public static let defaultAddress = "127.0.0.1"
    public static let defaultPort = 1433
    public static let defaultClientEncryption: Set<ClientEncryption> = [.required, .strict]
    public static let defaultLoginTimeoutSeconds = 30
    public static let loginTimeoutSecondsRange = 1...3_600
    /// For max_connections, max_connections_per_source and max_pending_logins.
    public static let connectionLimitRange = 1...1_000_000

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

/// A PROXY protocol version (HAProxy's `send-proxy` is v1 text, `send-proxy-v2` binary).
/// `proxy_protocol:` of a listener: connections from `trustedSources` must start with a
/// PROXY header, whose address is then the client's.
public struct ProxyProtocolConfig: Sendable, Hashable {
    public var versions: Set<ProxyProtocolVersion>
    /// Never empty.
    public var trustedSources: [IPNetwork]

    public static let defaultVersions: Set<ProxyProtocolVersion> = [.v1, .v2]

    public init(versions: Set<ProxyProtocolVersion> = ProxyProtocolConfig.defaultVersions, trustedSources: [IPNetwork]) {
        self.versions = versions
        self.trustedSources = trustedSources
    }

    /// Whether a connection from `address` (4 or 16 bytes) comes from a trusted source.
    public func trusts(_ address: [UInt8]) -> Bool {
        trustedSources.contains { $0.contains(address) }
    }
}

/// `kerberos:` of a listener: tdsgate as a GSSAPI acceptor for `MSSQLSvc/<host>:<port>`.
public struct KerberosListenerConfig: Sendable, Hashable {
    /// Keytab with the service keys; re-read when it changes.
    public var keytab: String
    /// Client realms accepted (`["*"]` in the file = any realm the keytab's KDC vouches for).
    public var realms: KerberosRealmPolicy
    public var nameRules: [KerberosNameRuleConfig]

    public init(keytab: String, realms: KerberosRealmPolicy, nameRules: [KerberosNameRuleConfig] = []) {
        self.keytab = keytab
        self.realms = realms
        self.nameRules = nameRules
    }

    /// The acceptor's settings. Patterns were checked when the file was read, so this
    /// throws only for a value built in code with a bad pattern.
    public func acceptorConfig() throws -> KerberosAcceptorConfig {
        let rules = try nameRules.map { try KerberosNameRule(realm: $0.realm, pattern: $0.pattern, output: $0.output, lowercase: $0.lowercase) }
        return KerberosAcceptorConfig(keytabPath: keytab, acceptedRealms: realms, nameRules: rules, replayCache: nil)
    }
}

/// One `name_rules` entry: which client principals it applies to and the tdsgate name.
/// (`KerberosNameRule` itself holds a compiled expression and is not comparable.)
public struct KerberosNameRuleConfig: Sendable, Hashable {
    public var realm: String?
    /// Regular expression over the whole `user@REALM`.
    public var pattern: String?
    /// `name:` in the file: `user`, `principal`, or a template with `{user}`, `{realm}`,
    /// `{principal}`, `$1`...
    public var output: KerberosNameRule.Output
    public var lowercase: Bool

    public init(realm: String? = nil, pattern: String? = nil, output: KerberosNameRule.Output = .user, lowercase: Bool = false) {
        self.realm = realm
        self.pattern = pattern
        self.output = output
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
    public var balancing: Balancing
    /// Read-intent sessions go to the primary when no replica is healthy.
    public var readFallbackToPrimary: Bool
    /// How long a write login waits for a primary during a failover.
    public var maxWriteWaitMs: Int
    /// Sessions on a demoted primary (`demotion: immediately | after_request`).
    public var demotion: DemotionClosePolicy
    /// `routing:` rules in order; the first that matches a session decides its options.
    public var routing: [RoutingRule] = []
    /// `redirect` (default): follow Azure's routing ENVCHANGE to the worker. `proxy`: the
    /// servers are pinned to the Proxy connection policy, so tdsgate stays on the endpoint it
    /// dialled and treats a redirect as a misconfiguration (e.g. only port 1433 is open).
    public var connectionPolicy: ConnectionPolicy = .redirect
    /// The Azure failover group behind this cluster, for `tdsgate drill failover`.
    public var failoverGroup: FailoverGroupConfig?
    /// Backend connection pooling; nil = every client login opens its own backend session.
    public var pool: PoolConfig?
    /// Re-establish a backend session that breaks while idle (TDS session recovery).
    public var recoverSessions: Bool = true

    public static let defaultConnectTimeoutMs = 5_000
    public static let defaultLoginTimeoutMs = 15_000
    /// `demotion:` values in the file.
    public static let demotionNames: [(name: String, value: DemotionClosePolicy)] = [
        ("immediately", .immediately), ("after_request", .afterCurrentRequest),
    ]

    public init(
        name: String,
        databases: [String] = [],
        caFile: String? = nil,
        strict: Bool = false,
        connectTimeoutMs: Int = ClusterConfig.defaultConnectTimeoutMs,
        loginTimeoutMs: Int = ClusterConfig.defaultLoginTimeoutMs,
        endpoints: [EndpointConfig] = [],
        probe: ProbeConfig? = nil,
        balancing: Balancing = .roundRobin,
        readFallbackToPrimary: Bool = true,
        maxWriteWaitMs: Int = 15_000,
        demotion: DemotionClosePolicy = .afterCurrentRequest
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

/// `connection_policy:` of a cluster.
public enum ConnectionPolicy: String, Sendable, Hashable, CaseIterable {
    /// Follow Azure's routing ENVCHANGE to the worker (Azure's Redirect policy).
    case redirect
    /// The servers are pinned to Azure's Proxy policy: stay on the endpoint dialled and
    /// treat a redirect as a misconfiguration.
    case proxy
}

/// How a pooled backend connection is shared.
public enum PoolMode: String, Sendable, Hashable, CaseIterable {
    /// A client session holds its backend connection from login to logout.
    case session
    /// Client sessions share backend connections between transactions.
    case transaction
}

/// `pool:` of a cluster. Limits are per endpoint and backend identity.
public struct PoolConfig: Sendable, Hashable {
    public var mode: PoolMode
    public var maxBackendConnections: Int
    /// Idle connections kept open ahead of demand; at most `maxBackendConnections`.
    public var minIdle: Int
    public var idleTimeoutSeconds: Int
    /// A connection is retired after this long (and never used past its token's expiry).
    public var maxLifetimeSeconds: Int
    /// How long a login waits for a connection at the limit before it is refused.
    public var acquireTimeoutMs: Int

    public static let maxBackendConnectionsRange = 1...100_000
    public static let idleTimeoutSecondsRange = 1...86_400
    public static let maxLifetimeSecondsRange = 1...604_800
    public static let acquireTimeoutMsRange = 0...600_000

    public init(mode: PoolMode = .session, maxBackendConnections: Int = 100, minIdle: Int = 0, idleTimeoutSeconds: Int = 300,
                maxLifetimeSeconds: Int = 3_600, acquireTimeoutMs: Int = 5_000) {
        self.mode = mode
        self.maxBackendConnections = maxBackendConnections
        self.minIdle = minIdle
        self.idleTimeoutSeconds = idleTimeoutSeconds
        self.maxLifetimeSeconds = maxLifetimeSeconds
        self.acquireTimeoutMs = acquireTimeoutMs
    }
}

/// `audit:`: where the JSON-lines audit trail goes and what it holds.
public struct AuditConfig: Sendable, Hashable {
    public var destination: AuditLog.Destination
    /// SQL batches and RPC calls too (not only logins and sessions).
    public var statements: Bool
    /// Literals in SQL text and RPC parameter values replaced by `?` / `<masked>`.
    public var maskLiterals: Bool
    public var queueCapacity: Int

    public static let destinations = ["stdout", "file", "syslog"]

    public init(destination: AuditLog.Destination = .stdout, statements: Bool = false, maskLiterals: Bool = true, queueCapacity: Int = 10_000) {
        self.destination = destination
        self.statements = statements
        self.maskLiterals = maskLiterals
        self.queueCapacity = queueCapacity
    }
}

extension SyslogConfiguration.Facility {
    /// The facility's name as syslog.conf writes it (`audit.syslog.facility`).
    public var name: String {
        switch self {
        case .kern: "kern"
        case .user: "user"
        case .daemon: "daemon"
        case .auth: "auth"
        case .syslog: "syslog"
        case .authpriv: "authpriv"
        case .local0: "local0"
        case .local1: "local1"
        case .local2: "local2"
        case .local3: "local3"
        case .local4: "local4"
        case .local5: "local5"
        case .local6: "local6"
        case .local7: "local7"
        }
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

/// One backend server of a cluster (HAProxy's server).
public struct EndpointConfig: Sendable, Hashable {
    /// Unique in its cluster; defaults to `host` (or `host:port` when two endpoints share a host).
    public var name: String
    public var host: String
    public var port: Int
    /// Name expected in the backend certificate; defaults to `host`.
    public var tlsName: String
    /// What the endpoint is expected to be; `auto` leaves it to the prober.
    public var role: RoleHint
    /// A geo-replicated server: probes also read sys.dm_geo_replication_link_status.
    public var geo: Bool = false

    public static let defaultPort = 1433
    public static let defaultRole = RoleHint.auto

    public init(name: String, host: String, port: Int = EndpointConfig.defaultPort, tlsName: String? = nil, role: RoleHint = EndpointConfig.defaultRole) {
        self.name = name
        self.host = host
        self.port = port
        self.tlsName = tlsName ?? host
        self.role = role
    }
}

/// Where tdsgate gets the access token it logs in to the backend with: the Identity
/// module's spec, as the file gives it (secret files as absolute paths).
public struct BackendIdentityConfig: Sendable, Hashable {
    public var spec: BackendIdentitySpec

    public var name: String { spec.name }

    public static let defaultResource = "https://database.windows.net/"

    public init(_ spec: BackendIdentitySpec) {
        self.spec = spec
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

/// Who (match) may reach what (clusters, databases, write) as which backend identity: the
/// Identity module's rule, as the file gives it.
public struct PolicyRuleConfig: Sendable, Hashable {
    public var rule: PolicyRule

    public var name: String { rule.name }

    /// `match:` keys in the file, each one `PolicyMatch` case.
    public static let matchKeys: [(key: String, match: @Sendable (String) -> PolicyMatch)] = [
        ("login", PolicyMatch.login), ("object_id", PolicyMatch.objectID), ("group", PolicyMatch.group),
        ("app_role", PolicyMatch.appRole), ("upn", PolicyMatch.upn), ("app_id", PolicyMatch.appID),
        ("realm", PolicyMatch.realm), ("kerberos", PolicyMatch.kerberos),
    ]

    public init(_ rule: PolicyRule) {
        self.rule = rule
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
