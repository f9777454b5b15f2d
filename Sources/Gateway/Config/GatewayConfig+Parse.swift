import TDSNIO
import Audit
import Foundation
import Identity
import Kerberos
import Logging
import Routing
import Yams

extension GatewayConfig {
    /// Reads and validates the configuration file at `path`. Relative paths in it resolve
    /// against the file's folder. Throws every problem found, not only the first; problems
    /// are located as `path:line:column` with `path` as given here.
    /// `checkFiles: false` skips the checks that named files exist and hold what they should.
    public static func load(path: String, checkFiles: Bool = true) throws(ConfigErrors) -> GatewayConfig {
        let absolute = ConfigFiles.absolute(path, relativeTo: FileManager.default.currentDirectoryPath)
        let yaml = try readText(absolute, pathForProblems: absolute)
        return try parse(yaml: yaml, baseDirectory: ConfigFiles.directory(of: absolute), sourcePath: absolute, file: path, checkFiles: checkFiles)
    }

    /// Parses and validates configuration text; relative paths resolve against `baseDirectory`.
    public static func parse(yaml: String, baseDirectory: String, checkFiles: Bool = true) throws(ConfigErrors) -> GatewayConfig {
        try parse(yaml: yaml, baseDirectory: baseDirectory, sourcePath: nil, file: nil, checkFiles: checkFiles)
    }

    /// Reads a logins file (a list of `{name, password_hash}`, or a mapping with one key
    /// `logins` holding that list), as `logins_file` does; for reloading it on its own.
    public static func loadLogins(path: String) throws(ConfigErrors) -> [LoginConfig] {
        let absolute = ConfigFiles.absolute(path, relativeTo: FileManager.default.currentDirectoryPath)
        let reader = ConfigReader(baseDirectory: ConfigFiles.directory(of: absolute), checkFiles: true)
        var names: [String: String] = [:]
        let logins = reader.parseLoginsFile(absolute, at: "logins_file", names: &names)
        if !reader.problems.isEmpty { throw ConfigErrors(problems: reader.problems) }
        return logins
    }

    static func parse(yaml: String, baseDirectory: String, sourcePath: String?, file: String?, checkFiles: Bool) throws(ConfigErrors) -> GatewayConfig {
        let reader = ConfigReader(baseDirectory: baseDirectory, checkFiles: checkFiles, file: file)
        var config = GatewayConfig()
        if let root = reader.compose(yaml) {
            var places = ConfigPlaces()
            config = reader.parseGateway(root, places: &places)
            reader.validate(config, places: places)
            if case let .mapping(mapping) = root {
                reader.orderProblems(byTopLevelKeys: mapping.keys.compactMap { $0.scalar?.string })
            }
        }
        config.sourcePath = sourcePath
        if !reader.problems.isEmpty { throw ConfigErrors(problems: reader.problems) }
        return config
    }

    static func readText(_ path: String, pathForProblems: String) throws(ConfigErrors) -> String {
        if let problem = ConfigFiles.problem(with: path, expect: .anything) {
            throw ConfigErrors(problems: [ConfigProblem(path: pathForProblems, message: problem)])
        }
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > ConfigReader.maximumFileBytes {
            throw ConfigErrors(problems: [ConfigProblem(path: pathForProblems, message: "the file is larger than \(ConfigReader.maximumFileBytes >> 20) MiB")])
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigErrors(problems: [ConfigProblem(path: pathForProblems, message: "not UTF-8 text: \(path)")])
        }
        return text
    }
}

/// Where the structural pass found each item, for the validation pass. Each list runs
/// parallel to the configuration's list of the same name.
struct ConfigPlaces {
    struct Cluster {
        var item: ConfigItemPlace
        var endpoints: [ConfigItemPlace] = []
        var routing: [ConfigItemPlace] = []
        var pool: ConfigItemPlace?
    }

    var listeners: [ConfigItemPlace] = []
    var clusters: [Cluster] = []
    var backendIdentities: [ConfigItemPlace] = []
    var policy: [ConfigItemPlace] = []
    var admin: ConfigItemPlace?
}

// MARK: - Sections

extension ConfigReader {
    static let topLevelKeys = [
        "listeners", "clusters", "backend_identities", "logins", "logins_file", "policy",
        "throttle", "login_cache_seconds", "admin", "audit", "dump", "shutdown_grace_seconds", "log_level",
    ]

    /// The structural pass: every section into typed values, with defaults; references to
    /// other sections are recorded (`references`) for the validation pass.
    func parseGateway(_ root: Node, places: inout ConfigPlaces) -> GatewayConfig {
        var config = GatewayConfig()
        if Self.isNull(root) {
            report("(root)", "the configuration is empty (expected \(Self.topLevelKeys.joined(separator: ", ")))")
            return config
        }
        guard let top = map(root, at: "", keys: Self.topLevelKeys) else { return config }

        if let node = top["clusters"] {
            config.clusters = parseClusters(node, places: &places.clusters)
            if case let .sequence(s) = node, s.isEmpty { report("clusters", "must list at least one cluster") }
        } else {
            report("clusters", "is required (at least one cluster of backend endpoints)")
        }
        if let node = top["backend_identities"] {
            config.backendIdentities = parseBackendIdentities(node, places: &places.backendIdentities)
        }
        if let node = top["logins"] {
            config.logins = parseLogins(node, at: "logins", names: &loginNames)
        }
        if let file = self.file(top, "logins_file") {
            config.loginsFile = file
            var isDirectory: ObjCBool = false
            if checkFiles || (FileManager.default.fileExists(atPath: file, isDirectory: &isDirectory) && !isDirectory.boolValue) {
                config.logins += parseLoginsFile(file, at: "logins_file", names: &loginNames)
            }
        }
        if let node = top["listeners"] {
            config.listeners = parseListeners(node, places: &places.listeners)
            if case let .sequence(s) = node, s.isEmpty { report("listeners", "must list at least one listener") }
        } else {
            report("listeners", "is required (at least one listener for clients)")
        }
        if let node = top["policy"] {
            config.policy = parsePolicy(node, places: &places.policy)
            if case let .sequence(s) = node, s.isEmpty {
                report("policy", "must list at least one rule (without rules every login is refused)")
            }
        } else {
            report("policy", "is required (without rules every login is refused)")
        }
        if let node = top["throttle"], let m = map(node, at: "throttle", keys: ["max_failures", "window_seconds", "block_seconds"]) {
            let defaults = ThrottleConfig()
            config.throttle = ThrottleConfig(
                maxFailures: int(m, "max_failures", default: defaults.maxFailures, range: 1...1_000_000),
                windowSeconds: int(m, "window_seconds", default: defaults.windowSeconds, range: 1...86_400),
                blockSeconds: int(m, "block_seconds", default: defaults.blockSeconds, range: 1...604_800)
            )
        }
        if let node = top["admin"], let m = map(node, at: "admin", keys: ["address", "port", "bearer_token_file"]) {
            config.admin = parseAdmin(m)
            places.admin = m.place
        }
        if let node = top["audit"] {
            config.audit = parseAudit(node)
        }
        if let node = top["dump"] {
            config.dump = parseDump(node)
        }
        config.loginCacheSeconds = int(top, "login_cache_seconds", default: GatewayConfig.defaultLoginCacheSeconds, range: 0...86_400)
        config.shutdownGraceSeconds = int(top, "shutdown_grace_seconds", default: GatewayConfig.defaultShutdownGraceSeconds, range: 0...3_600)
        config.logLevel = choice(top, "log_level", as: Logger.Level.self, what: "level") ?? GatewayConfig.defaultLogLevel
        return config
    }

    // MARK: listeners

    static let listenerKeys = [
        "name", "address", "port", "tls", "client_encryption", "cluster", "entra", "tag_sessions", "kerberos",
        "login_timeout_s", "max_connections", "max_connections_per_source", "max_pending_logins", "proxy_protocol",
        "session_context",
    ]

    func parseListeners(_ node: Node, places: inout [ConfigItemPlace]) -> [ListenerConfig] {
        var names: [String: String] = [:]
        var result: [ListenerConfig] = []
        for item in namedItems(node, at: "listeners", keys: Self.listenerKeys, what: "listener", names: &names) {
            let m = item.map
            var listener = ListenerConfig(name: item.name ?? "")
            if let address = string(m, "address") {
                if let problem = ConfigValues.hostProblem(address) { report(m.path("address"), problem) }
                listener.address = address
            }
            listener.port = int(m, "port", default: ListenerConfig.defaultPort, range: 0...65_535)
            if let tlsNode = m["tls"], let tls = map(tlsNode, at: m.path("tls"), keys: ["certificate", "key"]) {
                let certificate = file(tls, "certificate", required: true, expect: .certificatePEM)
                let key = file(tls, "key", required: true, expect: .privateKeyPEM)
                if let certificate, let key { listener.tls = TLSFilesConfig(certificate: certificate, key: key) }
            }
            if let modes = stringList(m, "client_encryption") {
                var set: Set<ClientEncryption> = []
                for (text, path) in modes {
                    if let mode = choice(text, at: path, as: ClientEncryption.self) { set.insert(mode) }
                }
                if modes.isEmpty {
                    report(m.path("client_encryption"), "must list at least one mode (\(ClientEncryption.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                if !set.isEmpty { listener.clientEncryption = set }
            }
            if let cluster = string(m, "cluster") {
                references.append(ConfigReference(kind: .cluster, name: cluster, path: m.path("cluster")))
                listener.cluster = cluster
            }
            if let entraNode = m["entra"] {
                listener.entra = parseEntra(entraNode, at: m.path("entra"))
            }
            listener.tagSessions = bool(m, "tag_sessions") ?? false
            if let node = m["kerberos"] {
                listener.kerberos = parseKerberos(node, at: m.path("kerberos"))
            }
            listener.loginTimeoutSeconds = int(m, "login_timeout_s", default: ListenerConfig.defaultLoginTimeoutSeconds,
                                               range: ListenerConfig.loginTimeoutSecondsRange)
            listener.maxConnections = optionalInt(m, "max_connections", range: ListenerConfig.connectionLimitRange)
            listener.maxConnectionsPerSource = optionalInt(m, "max_connections_per_source", range: ListenerConfig.connectionLimitRange)
            listener.maxPendingLogins = optionalInt(m, "max_pending_logins", range: ListenerConfig.connectionLimitRange)
            if let node = m["proxy_protocol"] {
                listener.proxyProtocol = parseProxyProtocol(node, at: m.path("proxy_protocol"))
            }
            listener.sessionContext = bool(m, "session_context") ?? false
            result.append(listener)
            places.append(m.place)
        }
        return result
    }

    func parseProxyProtocol(_ node: Node, at path: String) -> ProxyProtocolConfig? {
        guard let m = map(node, at: path, keys: ["versions", "trusted_sources"]) else { return nil }
        var config = ProxyProtocolConfig(trustedSources: [])
        if let versions = stringList(m, "versions") {
            config.versions = Set(versions.compactMap { choice($0.value, at: $0.path, as: ProxyProtocolVersion.self, what: "version") })
            if versions.isEmpty { report(m.path("versions"), "must list at least one of v1, v2") }
            if config.versions.isEmpty { config.versions = ProxyProtocolConfig.defaultVersions }
        }
        if let sources = stringList(m, "trusted_sources") {
            for source in sources {
                do {
                    config.trustedSources.append(try IPNetwork(parsing: source.value))
                } catch {
                    if case .hostBitsSet = error {
                        report(source.path, error.description)
                    } else {
                        report(source.path, "\(error), found '\(Self.clip(source.value))'")
                    }
                }
            }
            if sources.isEmpty { report(m.path("trusted_sources"), "must list at least one address or network") }
        } else {
            report(m.path("trusted_sources"), "is required: the load balancers' addresses or networks (CIDR) allowed to send PROXY headers")
        }
        return config
    }

    func parseEntra(_ node: Node, at path: String) -> EntraListenerConfig? {
        let keys = ["tenant_id", "issuers", "audiences", "jwks_url", "jwks_file", "clock_skew_seconds"]
        guard let m = map(node, at: path, keys: keys) else { return nil }
        var entra = EntraListenerConfig()
        if let tenant = string(m, "tenant_id") {
            if ConfigValues.isGUID(tenant) {
                entra.tenantID = tenant
            } else {
                report(m.path("tenant_id"), "must be a tenant ID (a GUID such as 72f988bf-86f1-41af-91ab-2d7cd011db47)")
            }
        }
        if let issuers = stringList(m, "issuers") {
            entra.issuers = issuers.map(\.value)
            if issuers.isEmpty && m["issuers"]?.sequence != nil { report(m.path("issuers"), "must list at least one issuer") }
        } else if let tenant = entra.tenantID {
            entra.issuers = EntraListenerConfig.defaultIssuers(tenantID: tenant)
        } else if !m.has("tenant_id") {
            report(m.path("issuers"), "is required when tenant_id is not given")
        }
        if let audiences = stringList(m, "audiences") {
            entra.audiences = audiences.map(\.value)
            if audiences.isEmpty && m["audiences"]?.sequence != nil { report(m.path("audiences"), "must list at least one audience") }
        }
        let url = string(m, "jwks_url")
        let jwksFile = file(m, "jwks_file")
        if let url {
            if let problem = ConfigValues.urlProblem(url) { report(m.path("jwks_url"), problem) }
        }
        if url != nil && jwksFile != nil {
            report(path, "give jwks_url or jwks_file, not both")
        }
        entra.jwksURL = url
        entra.jwksFile = jwksFile
        if url == nil && jwksFile == nil && !m.has("jwks_url") && !m.has("jwks_file") {
            if let tenant = entra.tenantID {
                entra.jwksURL = EntraListenerConfig.defaultJWKSURL(tenantID: tenant)
            } else if !m.has("tenant_id") {
                report(m.path("jwks_url"), "is required when tenant_id is not given (or give jwks_file)")
            }
        }
        entra.clockSkewSeconds = int(m, "clock_skew_seconds", default: EntraListenerConfig.defaultClockSkewSeconds, range: 0...3_600)
        return entra
    }

    func parseKerberos(_ node: Node, at base: String) -> KerberosListenerConfig? {
        guard let m = map(node, at: base, keys: ["keytab", "realms", "name_rules"]) else { return nil }
        let keytab = file(m, "keytab", required: true, expect: .nonEmpty) ?? ""
        let realms = stringList(m, "realms")?.map(\.value) ?? []
        if realms.isEmpty {
            report(m.path("realms"), "is required: the client realms to accept, or [\"*\"] for any realm the KDC vouches for")
        }
        let policy: KerberosRealmPolicy = realms.contains("*") ? .anyRealm : .only(realms)
        var rules: [KerberosNameRuleConfig] = []
        if let rulesNode = m["name_rules"] {
            guard case let .sequence(sequence) = rulesNode else {
                report(m.path("name_rules"), "expected a list of rules, found \(Self.shape(rulesNode))")
                return KerberosListenerConfig(keytab: keytab, realms: policy)
            }
            for (index, element) in sequence.enumerated() {
                let path = ConfigPath.index(m.path("name_rules"), index)
                guard let r = map(element, at: path, keys: ["realm", "pattern", "name", "lowercase"]) else { continue }
                var rule = KerberosNameRuleConfig(realm: string(r, "realm"), pattern: string(r, "pattern"),
                                                  output: Self.kerberosOutput(string(r, "name")), lowercase: bool(r, "lowercase") ?? false)
                if let pattern = rule.pattern, (try? KerberosNameRule(pattern: pattern)) == nil {
                    report(r.path("pattern"), "is not a valid regular expression")
                    rule.pattern = nil
                }
                rules.append(rule)
            }
        }
        return KerberosListenerConfig(keytab: keytab, realms: policy, nameRules: rules)
    }

    /// `name:` of a Kerberos name rule: `user` (the default), `principal`, or a template.
    static func kerberosOutput(_ text: String?) -> KerberosNameRule.Output {
        switch text {
        case nil, "user": .user
        case "principal": .principal
        case let template?: .template(template)
        }
    }

    // MARK: audit

    static let facilityNames = SyslogConfiguration.Facility.allCases.map { (name: $0.name, value: $0) }

    func parseAudit(_ node: Node) -> AuditConfig? {
        guard let m = map(node, at: "audit", keys: ["destination", "file", "max_bytes", "syslog", "statements", "mask_literals", "queue_capacity"]) else {
            return nil
        }
        var audit = AuditConfig()
        audit.statements = bool(m, "statements") ?? false
        audit.maskLiterals = bool(m, "mask_literals") ?? true
        audit.queueCapacity = int(m, "queue_capacity", default: 10_000, range: 16...10_000_000)
        let destination = string(m, "destination") ?? (m.has("syslog") ? "syslog" : m.has("file") ? "file" : "stdout")
        switch destination {
        case "stdout":
            audit.destination = .stdout
        case "file":
            guard let path = string(m, "file", required: true) else { return audit }
            audit.destination = .file(path: ConfigFiles.absolute(path, relativeTo: baseDirectory),
                                      maxBytes: int(m, "max_bytes", default: 1 << 30, range: 4096...(1 << 50)))
        case "syslog":
            guard let sysNode = m["syslog"], let sys = map(sysNode, at: m.path("syslog"), keys: ["host", "port", "transport", "facility", "app_name"]) else {
                report(m.path("syslog"), "is required with destination syslog ({host, port, transport: udp|tcp})")
                return audit
            }
            let host = string(sys, "host", required: true) ?? ""
            if !host.isEmpty, let problem = ConfigValues.hostProblem(host) { report(sys.path("host"), problem) }
            var syslog = SyslogConfiguration(host: host, port: int(sys, "port", default: 514, range: 1...65_535))
            syslog.transport = choice(sys, "transport", as: SyslogConfiguration.Transport.self, what: "transport") ?? .udp
            syslog.facility = choice(sys, "facility", among: Self.facilityNames, what: "facility") ?? .authpriv
            syslog.appName = string(sys, "app_name") ?? "tdsgate"
            audit.destination = .syslog(syslog)
        default:
            report(m.path("destination"), Self.unknownValue(destination, among: AuditConfig.destinations, what: "destination"))
        }
        return audit
    }

    // MARK: clusters

    static let clusterKeys = [
        "name", "databases", "ca_file", "strict", "connect_timeout_ms", "login_timeout_ms", "endpoints",
        "probe", "balancing", "read_fallback_to_primary", "max_write_wait_ms", "demotion",
        "routing", "failover_group", "connection_policy", "pool", "recover_sessions",
    ]

    func parseClusters(_ node: Node, places: inout [ConfigPlaces.Cluster]) -> [ClusterConfig] {
        var names: [String: String] = [:]
        var result: [ClusterConfig] = []
        for item in namedItems(node, at: "clusters", keys: Self.clusterKeys, what: "cluster", names: &names) {
            let m = item.map
            var cluster = ClusterConfig(name: item.name ?? "")
            var place = ConfigPlaces.Cluster(item: m.place)
            if let databases = stringList(m, "databases") {
                // `*` in a cluster's list means the same as no list: any database.
                cluster.databases = databases.map(\.value).contains("*") ? [] : databases.map(\.value)
            }
            cluster.caFile = file(m, "ca_file", expect: .certificatePEM)
            cluster.strict = bool(m, "strict") ?? false
            cluster.connectTimeoutMs = int(m, "connect_timeout_ms", default: ClusterConfig.defaultConnectTimeoutMs, range: 1...600_000)
            cluster.loginTimeoutMs = int(m, "login_timeout_ms", default: ClusterConfig.defaultLoginTimeoutMs, range: 1...600_000)
            cluster.balancing = choice(m, "balancing", as: Balancing.self) ?? .roundRobin
            cluster.demotion = choice(m, "demotion", among: ClusterConfig.demotionNames) ?? .afterCurrentRequest
            cluster.connectionPolicy = choice(m, "connection_policy", as: ConnectionPolicy.self) ?? .redirect
            cluster.readFallbackToPrimary = bool(m, "read_fallback_to_primary") ?? true
            cluster.maxWriteWaitMs = int(m, "max_write_wait_ms", default: 15_000, range: 0...600_000)
            if let probeNode = m["probe"], let p = map(probeNode, at: m.path("probe"),
                                                      keys: ["identity", "database", "interval_ms", "timeout_ms", "rise", "fall"]) {
                var probe = ProbeConfig(identity: string(p, "identity", required: true) ?? "")
                probe.database = string(p, "database")
                probe.intervalMs = int(p, "interval_ms", default: 2_000, range: 100...600_000)
                probe.timeoutMs = int(p, "timeout_ms", default: 2_000, range: 100...600_000)
                probe.rise = int(p, "rise", default: 2, range: 1...100)
                probe.fall = int(p, "fall", default: 3, range: 1...100)
                cluster.probe = probe
                if !probe.identity.isEmpty {
                    references.append(ConfigReference(kind: .backendIdentity, name: probe.identity, path: p.path("identity")))
                }
            }
            if let endpointsNode = m["endpoints"] {
                cluster.endpoints = parseEndpoints(endpointsNode, at: m.path("endpoints"), places: &place.endpoints)
            } else {
                report(m.path("endpoints"), "is required (at least one backend endpoint)")
            }
            if let node = m["routing"] {
                cluster.routing = parseRoutingRules(node, at: m.path("routing"), places: &place.routing, defaults: RouteOptions(
                    allowReadOnlyFallbackToPrimary: cluster.readFallbackToPrimary, balancing: cluster.balancing))
            }
            if let node = m["failover_group"] {
                cluster.failoverGroup = parseFailoverGroup(node, at: m.path("failover_group"))
            }
            if let node = m["pool"], let p = map(node, at: m.path("pool"), keys: ["mode", "max_backend_connections", "min_idle",
                                                                                  "idle_timeout_s", "max_lifetime_s", "acquire_timeout_ms"]) {
                let defaults = PoolConfig()
                cluster.pool = PoolConfig(
                    mode: choice(p, "mode", as: PoolMode.self, what: "mode") ?? defaults.mode,
                    maxBackendConnections: int(p, "max_backend_connections", default: defaults.maxBackendConnections,
                                               range: PoolConfig.maxBackendConnectionsRange),
                    minIdle: int(p, "min_idle", default: defaults.minIdle, range: 0...PoolConfig.maxBackendConnectionsRange.upperBound),
                    idleTimeoutSeconds: int(p, "idle_timeout_s", default: defaults.idleTimeoutSeconds, range: PoolConfig.idleTimeoutSecondsRange),
                    maxLifetimeSeconds: int(p, "max_lifetime_s", default: defaults.maxLifetimeSeconds, range: PoolConfig.maxLifetimeSecondsRange),
                    acquireTimeoutMs: int(p, "acquire_timeout_ms", default: defaults.acquireTimeoutMs, range: PoolConfig.acquireTimeoutMsRange))
                place.pool = p.place
            }
            cluster.recoverSessions = bool(m, "recover_sessions") ?? true
            result.append(cluster)
            places.append(place)
        }
        return result
    }

    /// `routing:` of a cluster. A rule matches on intent, database and the principal's names
    /// (login, UPN, object/app id, groups, app roles); the first match sets the options.
    func parseRoutingRules(_ node: Node, at base: String, places: inout [ConfigItemPlace], defaults: RouteOptions) -> [RoutingRule] {
        var names: [String: String] = [:]
        var rules: [RoutingRule] = []
        let keys = ["name", "match", "read_target", "replicas", "read_fallback_to_primary", "balancing"]
        let intents: [(name: String, value: SessionIntent)] = [("read_only", .readOnly), ("read_write", .readWrite)]
        for item in namedItems(node, at: base, keys: keys, what: "routing rule", names: &names) {
            let m = item.map
            var place = m.place
            var rule = RoutingRule(name: item.name ?? "", options: defaults)
            if let matchNode = m["match"], let match = map(matchNode, at: m.path("match"), keys: ["intent", "databases", "roles"]) {
                rule.intent = choice(match, "intent", among: intents, what: "intent")
                rule.databases = stringList(match, "databases")?.map(\.value) ?? []
                rule.roles = Set(stringList(match, "roles")?.map(\.value) ?? [])
            }
            rule.options.readTarget = choice(m, "read_target", as: ReadTarget.self) ?? .replica
            if let replicas = stringList(m, "replicas") {
                rule.options.replicas = Set(replicas.map(\.value))
                place.lists["replicas"] = replicas
            }
            rule.options.allowReadOnlyFallbackToPrimary = bool(m, "read_fallback_to_primary") ?? defaults.allowReadOnlyFallbackToPrimary
            rule.options.balancing = choice(m, "balancing", as: Balancing.self) ?? defaults.balancing
            rules.append(rule)
            places.append(place)
        }
        return rules
    }

    func parseFailoverGroup(_ node: Node, at base: String) -> FailoverGroupConfig? {
        guard let m = map(node, at: base, keys: ["name", "subscription_id", "resource_group", "servers", "identity", "arm_url"]) else {
            return nil
        }
        let servers = stringList(m, "servers")?.map(\.value) ?? []
        if servers.count != 2 { report(m.path("servers"), "must name the failover group's two partner servers") }
        var group = FailoverGroupConfig(
            name: string(m, "name", required: true) ?? "", subscriptionID: string(m, "subscription_id", required: true) ?? "",
            resourceGroup: string(m, "resource_group", required: true) ?? "", servers: servers,
            identity: string(m, "identity", required: true) ?? "")
        if let url = string(m, "arm_url") {
            if URL(string: url)?.scheme.map({ ["http", "https"].contains($0) }) != true {
                report(m.path("arm_url"), "must be an http(s) URL")
            }
            group.armURL = url
        }
        if !group.identity.isEmpty {
            references.append(ConfigReference(kind: .backendIdentity, name: group.identity, path: m.path("identity")))
        }
        return group
    }

    func parseEndpoints(_ node: Node, at base: String, places: inout [ConfigItemPlace]) -> [EndpointConfig] {
        guard case let .sequence(sequence) = node else {
            report(base, "expected a list of endpoints, found \(Self.shape(node))")
            return []
        }
        if sequence.isEmpty { report(base, "must list at least one endpoint") }
        let keys = ["name", "host", "port", "tls_name", "role", "geo"]
        var parsed: [(endpoint: EndpointConfig, explicitName: Bool)] = []
        for (index, element) in sequence.enumerated() {
            let path = ConfigPath.index(base, index)
            note(path, element.mark)
            guard let m = map(element, at: path, keys: keys) else { continue }
            var name: String?
            if let text = string(m, "name") {
                if let problem = Self.nameProblem(text, rule: .identifier) { report(m.path("name"), problem) } else { name = text }
            }
            var host = ""
            if let text = string(m, "host", required: true) {
                if let problem = ConfigValues.hostProblem(text) { report(m.path("host"), problem) }
                host = text
            }
            let port = int(m, "port", default: EndpointConfig.defaultPort, range: 1...65_535)
            var tlsName: String?
            if let text = string(m, "tls_name") {
                if !ConfigValues.isHostName(text) && !ConfigValues.isIPv4(text) && !ConfigValues.isIPv6(text) {
                    report(m.path("tls_name"), "is not a valid host name")
                }
                tlsName = text
            }
            let role = choice(m, "role", as: RoleHint.self) ?? EndpointConfig.defaultRole
            var endpoint = EndpointConfig(name: name ?? "", host: host, port: port, tlsName: tlsName, role: role)
            endpoint.geo = bool(m, "geo") ?? false
            parsed.append((endpoint, name != nil))
            places.append(m.place)
        }
        // Default names: the host, or host:port when the host is shared.
        var hostCounts: [String: Int] = [:]
        for entry in parsed { hostCounts[entry.endpoint.host.lowercased(), default: 0] += 1 }
        return parsed.map { entry in
            var endpoint = entry.endpoint
            if !entry.explicitName {
                endpoint.name = hostCounts[endpoint.host.lowercased(), default: 0] > 1 ? "\(endpoint.host):\(endpoint.port)" : endpoint.host
            }
            return endpoint
        }
    }

    // MARK: backend identities

    static let identityKeys = [
        "name", "kind", "endpoint", "client_id", "object_id", "resource_id", "tenant_id", "authority_host",
        "client_secret", "client_secret_file", "certificate_file", "private_key_file", "token_file", "resource",
    ]

    func parseBackendIdentities(_ node: Node, places: inout [ConfigItemPlace]) -> [BackendIdentityConfig] {
        var names: [String: String] = [:]
        var result: [BackendIdentityConfig] = []
        for item in namedItems(node, at: "backend_identities", keys: Self.identityKeys, what: "backend identity", names: &names) {
            let m = item.map
            let kind = m.has("kind") ? choice(m, "kind", as: BackendIdentityKind.self, what: "kind") : nil
            if !m.has("kind") { report(m.path("kind"), "is required (\(BackendIdentityKind.allCases.map(\.rawValue).joined(separator: ", ")))") }
            // An identity whose kind is missing or wrong is kept (as `auto`) so that its other
            // keys are still checked; the problem above refuses the file.
            var spec = BackendIdentitySpec(name: item.name ?? "", kind: kind ?? .auto)
            if let text = string(m, "endpoint") {
                if let problem = ConfigValues.urlProblem(text, httpAllowed: true) { report(m.path("endpoint"), problem) }
                spec.endpoint = text
            }
            if let text = string(m, "client_id") {
                if !ConfigValues.isGUID(text) { report(m.path("client_id"), "must be the identity's client ID, a GUID") }
                spec.clientID = text
            }
            if let text = string(m, "object_id") {
                if !ConfigValues.isGUID(text) { report(m.path("object_id"), "must be the identity's object (principal) ID, a GUID") }
                spec.objectID = text
            }
            if let text = string(m, "resource_id") {
                if !text.lowercased().hasPrefix("/subscriptions/") {
                    report(m.path("resource_id"), "must be an ARM resource ID (/subscriptions/<id>/resourcegroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>)")
                }
                spec.resourceID = text
            }
            if let text = string(m, "tenant_id") {
                if !ConfigValues.isGUID(text) && !ConfigValues.isHostName(text) {
                    report(m.path("tenant_id"), "must be a tenant ID (a GUID) or the tenant's domain name")
                }
                spec.tenantID = text
            }
            if let text = string(m, "authority_host") {
                if let problem = ConfigValues.urlProblem(text) { report(m.path("authority_host"), problem) }
                spec.authorityHost = text
            }
            spec.clientSecret = string(m, "client_secret")
            spec.clientSecretFile = file(m, "client_secret_file", expect: .nonEmpty)
            spec.certificateFile = file(m, "certificate_file", expect: .certificatePEM)
            spec.privateKeyFile = file(m, "private_key_file", expect: .privateKeyPEM)
            spec.tokenFile = file(m, "token_file")
            spec.resource = string(m, "resource") ?? BackendIdentityConfig.defaultResource
            result.append(BackendIdentityConfig(spec))
            places.append(m.place)
        }
        return result
    }

    // MARK: logins

    static let loginHints = [
        "password": "plaintext passwords are not accepted: store password_hash instead (make one with `tdsgate hash-password`)",
    ]

    func parseLogins(_ node: Node, at base: String, names: inout [String: String]) -> [LoginConfig] {
        var result: [LoginConfig] = []
        let items = namedItems(node, at: base, keys: ["name", "password_hash"], rule: .sqlLogin, what: "login", names: &names, hints: Self.loginHints)
        for item in items {
            let m = item.map
            guard let hash = string(m, "password_hash", required: true) else { continue }
            if let problem = PasswordHashFormat.problem(with: hash) {
                report(m.path("password_hash"), problem)
                continue
            }
            if let name = item.name { result.append(LoginConfig(name: name, passwordHash: hash)) }
        }
        return result
    }

    /// Reads `logins_file`: a list of logins, or a mapping whose only key is `logins`.
    /// Its problems are reported under `base`, located in that file.
    func parseLoginsFile(_ path: String, at base: String, names: inout [String: String]) -> [LoginConfig] {
        if let problem = ConfigFiles.problem(with: path, expect: .anything) {
            report(base, problem)
            return []
        }
        if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > Self.maximumFileBytes {
            report(base, "the file is larger than \(Self.maximumFileBytes >> 20) MiB: \(path)")
            return []
        }
        guard let data = FileManager.default.contents(atPath: path), let yaml = String(data: data, encoding: .utf8) else {
            report(base, "not UTF-8 text: \(path)")
            return []
        }
        let mainFile = currentFile
        currentFile = path
        defer { currentFile = mainFile }
        guard let root = compose(yaml, path: base) else { return [] }
        if Self.isNull(root) { return [] }
        var list = root
        if case .mapping = root {
            guard let m = map(root, at: base, keys: ["logins"]) else { return [] }
            guard let inner = m["logins"] else { return [] }
            list = inner
        }
        return parseLogins(list, at: base, names: &names)
    }

    // MARK: policy

    static let policyKeys = ["name", "match", "clusters", "databases", "write", "backend_identity", "tag_app_name",
                             "session_context", "backend_identity_read_only"]

    func parsePolicy(_ node: Node, places: inout [ConfigItemPlace]) -> [PolicyRuleConfig] {
        var names: [String: String] = [:]
        var result: [PolicyRuleConfig] = []
        for item in namedItems(node, at: "policy", keys: Self.policyKeys, what: "policy rule", names: &names) {
            let m = item.map
            var place = m.place
            var rule = PolicyRule(name: item.name ?? "", match: [], backendIdentity: "")
            if let matchNode = m["match"] {
                rule.match = parseMatch(matchNode, at: m.path("match"))
            } else {
                report(m.path("match"), "is required (write `match: any` for a rule that matches every principal)")
            }
            if let entries = stringList(m, "clusters") {
                for (name, path) in entries where name != "*" {
                    references.append(ConfigReference(kind: .cluster, name: name, path: path))
                }
                if entries.isEmpty { report(m.path("clusters"), "must list at least one cluster (or \"*\")") }
                rule.clusters = entries.map(\.value)
            } else {
                report(m.path("clusters"), "is required (cluster names, or \"*\" for any)")
            }
            if let entries = stringList(m, "databases") {
                if entries.isEmpty { report(m.path("databases"), "must list at least one database (or \"*\")") }
                rule.databases = entries.map(\.value)
                place.lists["databases"] = entries
            }
            rule.write = bool(m, "write") ?? false
            if let identity = string(m, "backend_identity", required: true) {
                references.append(ConfigReference(kind: .backendIdentity, name: identity, path: m.path("backend_identity")))
                rule.backendIdentity = identity
            }
            rule.tagAppName = bool(m, "tag_app_name") ?? false
            rule.sessionContext = bool(m, "session_context")
            rule.backendIdentityReadOnly = bool(m, "backend_identity_read_only") ?? false
            result.append(PolicyRuleConfig(rule))
            places.append(place)
        }
        return result
    }

    /// `match:` of a policy rule: `any`, or a mapping of `PolicyRuleConfig.matchKeys`, all of
    /// which must hold.
    func parseMatch(_ node: Node, at path: String) -> [PolicyMatch] {
        let keys = PolicyRuleConfig.matchKeys.map(\.key)
        if case let .scalar(scalar) = node {
            if scalar.string.lowercased() == "any" || scalar.string == "*" { return [.any] }
            report(path, "expected a mapping of \(keys.joined(separator: ", ")), or `any`")
            return []
        }
        guard let m = map(node, at: path, keys: keys) else { return [] }
        var match: [PolicyMatch] = []
        for (key, make) in PolicyRuleConfig.matchKeys {
            guard m.has(key), let value = string(m, key) else { continue }
            match.append(make(value))
            switch key {
            case "login":
                references.append(ConfigReference(kind: .login, name: value, path: m.path(key)))
            case "object_id", "app_id":
                if !ConfigValues.isGUID(value) { report(m.path(key), "must be a GUID") }
            default:
                break
            }
        }
        return match.isEmpty ? [.any] : match
    }

    // MARK: admin

    func parseAdmin(_ m: ConfigMap) -> AdminConfig {
        var admin = AdminConfig()
        if let address = string(m, "address") {
            if let problem = ConfigValues.hostProblem(address) { report(m.path("address"), problem) }
            admin.address = address
        }
        admin.port = int(m, "port", default: AdminConfig.defaultPort, range: 0...65_535)
        admin.bearerTokenFile = file(m, "bearer_token_file", expect: .nonEmpty)
        return admin
    }
}
