import Foundation
import Routing
import Yams

extension GatewayConfig {
    /// Reads and validates the configuration file at `path`. Relative paths in it resolve
    /// against the file's folder. Throws every problem found, not only the first.
    /// `checkFiles: false` skips the checks that named files exist and hold what they should.
    public static func load(path: String, checkFiles: Bool = true) throws(ConfigErrors) -> GatewayConfig {
        let absolute = ConfigFiles.absolute(path, relativeTo: FileManager.default.currentDirectoryPath)
        let yaml = try readText(absolute, pathForProblems: absolute)
        return try parse(yaml: yaml, baseDirectory: ConfigFiles.directory(of: absolute), sourcePath: absolute, checkFiles: checkFiles)
    }

    /// Parses and validates configuration text; relative paths resolve against `baseDirectory`.
    public static func parse(yaml: String, baseDirectory: String, checkFiles: Bool = true) throws(ConfigErrors) -> GatewayConfig {
        try parse(yaml: yaml, baseDirectory: baseDirectory, sourcePath: nil, checkFiles: checkFiles)
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

    static func parse(yaml: String, baseDirectory: String, sourcePath: String?, checkFiles: Bool) throws(ConfigErrors) -> GatewayConfig {
        let reader = ConfigReader(baseDirectory: baseDirectory, checkFiles: checkFiles)
        var config = GatewayConfig()
        if let root = reader.compose(yaml) {
            config = reader.parseGateway(root)
        }
        config.sourcePath = sourcePath
        if !reader.problems.isEmpty { throw ConfigErrors(problems: reader.problems) }
        return config
    }

    static func readText(_ path: String, pathForProblems: String) throws(ConfigErrors) -> String {
        if let problem = ConfigFiles.problem(with: path, expect: .anything) {
            throw ConfigErrors(problems: [ConfigProblem(path: pathForProblems, message: problem)])
        }
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigErrors(problems: [ConfigProblem(path: pathForProblems, message: "not UTF-8 text: \(path)")])
        }
        return text
    }
}

// MARK: - Sections

extension ConfigReader {
    static let topLevelKeys = [
        "listeners", "clusters", "backend_identities", "logins", "logins_file", "policy",
        "throttle", "login_cache_seconds", "admin", "audit", "dump", "shutdown_grace_seconds", "log_level",
    ]

    func parseGateway(_ root: Node) -> GatewayConfig {
        var config = GatewayConfig()
        if Self.isNull(root) {
            report("(root)", "the configuration is empty (expected \(Self.topLevelKeys.joined(separator: ", ")))")
            return config
        }
        guard let top = map(root, at: "", keys: Self.topLevelKeys) else { return config }
        defer {
            if case let .mapping(mapping) = root {
                orderProblems(byTopLevelKeys: mapping.keys.compactMap { $0.scalar?.string })
            }
        }

        // Names that other sections refer to, gathered first so that references can be
        // checked wherever they appear.
        var clusterNames: [String: String] = [:]
        var identityNames: [String: String] = [:]
        var loginNames: [String: String] = [:]

        if let node = top["clusters"] {
            config.clusters = parseClusters(node, names: &clusterNames)
            if case let .sequence(s) = node, s.isEmpty { report("clusters", "must list at least one cluster") }
        } else {
            report("clusters", "is required (at least one cluster of backend endpoints)")
        }
        if let node = top["backend_identities"] {
            config.backendIdentities = parseBackendIdentities(node, names: &identityNames)
        }
        for ref in probeReferences {
            checkReference(ref.name, at: ref.path, what: "backend identity", names: identityNames)
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
            config.listeners = parseListeners(node, clusters: clusterNames)
            if case let .sequence(s) = node, s.isEmpty { report("listeners", "must list at least one listener") }
        } else {
            report("listeners", "is required (at least one listener for clients)")
        }
        if let node = top["policy"] {
            config.policy = parsePolicy(node, config: config, clusters: clusterNames, identities: identityNames, logins: loginNames)
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
        if let node = top["admin"] {
            config.admin = parseAdmin(node, listeners: config.listeners)
        }
        if let node = top["audit"] {
            config.audit = parseAudit(node)
        }
        if let node = top["dump"] {
            config.dump = parseDump(node)
        }
        config.loginCacheSeconds = int(top, "login_cache_seconds", default: GatewayConfig.defaultLoginCacheSeconds, range: 0...86_400)
        config.shutdownGraceSeconds = int(top, "shutdown_grace_seconds", default: GatewayConfig.defaultShutdownGraceSeconds, range: 0...3_600)
        if let node = top["log_level"], let text = string(node, at: "log_level") {
            if GatewayConfig.logLevels.contains(text.lowercased()) {
                config.logLevel = text.lowercased()
            } else {
                report("log_level", Self.unknownValue(text, among: GatewayConfig.logLevels, what: "level"))
            }
        }
        return config
    }

    // MARK: listeners

    func parseListeners(_ node: Node, clusters: [String: String]) -> [ListenerConfig] {
        var names: [String: String] = [:]
        var binds: [(address: String, port: Int, path: String)] = []
        var result: [ListenerConfig] = []
        let keys = ["name", "address", "port", "tls", "client_encryption", "cluster", "entra", "tag_sessions", "kerberos"]
        for item in namedItems(node, at: "listeners", keys: keys, what: "listener", names: &names) {
            let m = item.map
            var listener = ListenerConfig(name: item.name ?? "")
            if let address = string(m, "address") {
                if let problem = ConfigValues.hostProblem(address) { report(m.path("address"), problem) }
                listener.address = address
            }
            let problemsBeforePort = problems.count
            listener.port = int(m, "port", default: ListenerConfig.defaultPort, range: 0...65_535)
            let portIsValid = problems.count == problemsBeforePort
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
            if !m.has("tls") {
                let needing = ClientEncryption.allCases.filter { listener.clientEncryption.contains($0) && $0.needsTLS }
                if !needing.isEmpty {
                    if m.has("client_encryption") {
                        let list = needing.map(\.rawValue).joined(separator: ", ")
                        report(m.path("client_encryption"), "\(list) need\(needing.count == 1 ? "s" : "") a certificate: add \(m.path("tls")) or allow only plaintext")
                    } else {
                        report(m.path("tls"), "is required: client_encryption defaults to [required, strict], which need a certificate (set client_encryption: [plaintext] for a listener without TLS)")
                    }
                }
            }
            if let cluster = string(m, "cluster") {
                checkReference(cluster, at: m.path("cluster"), what: "cluster", names: clusters)
                listener.cluster = cluster
            }
            if let entraNode = m["entra"] {
                listener.entra = parseEntra(entraNode, at: m.path("entra"))
            }
            listener.tagSessions = bool(m, "tag_sessions") ?? false
            if let node = m["kerberos"] {
                listener.kerberos = parseKerberos(node, at: m.path("kerberos"))
            }

            if listener.port != 0 && portIsValid {
                if let clash = binds.first(where: { $0.port == listener.port && Self.addressesOverlap($0.address, listener.address) }) {
                    report(m.path("port"), "address and port already used by \(clash.path)")
                }
                binds.append((listener.address, listener.port, item.path))
            }
            result.append(listener)
        }
        return result
    }

    static func addressesOverlap(_ a: String, _ b: String) -> Bool {
        a.lowercased() == b.lowercased() || ConfigValues.isWildcard(a) || ConfigValues.isWildcard(b)
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
            let transport = string(sys, "transport") ?? "udp"
            if !["udp", "tcp"].contains(transport) { report(sys.path("transport"), "must be udp or tcp") }
            let facility = string(sys, "facility") ?? "authpriv"
            if !AuditConfig.facilities.contains(facility) {
                report(sys.path("facility"), Self.unknownValue(facility, among: AuditConfig.facilities, what: "facility"))
            }
            audit.destination = .syslog(host: host, port: int(sys, "port", default: 514, range: 1...65_535), transport: transport,
                                        facility: facility, appName: string(sys, "app_name") ?? "tdsgate")
        default:
            report(m.path("destination"), Self.unknownValue(destination, among: AuditConfig.destinations, what: "destination"))
        }
        return audit
    }

    func parseKerberos(_ node: Node, at base: String) -> KerberosListenerConfig? {
        guard let m = map(node, at: base, keys: ["keytab", "realms", "name_rules"]) else { return nil }
        let keytab = file(m, "keytab", required: true, expect: .nonEmpty) ?? ""
        let realms = stringList(m, "realms")?.map(\.value) ?? []
        if realms.isEmpty {
            report(m.path("realms"), "is required: the client realms to accept, or [\"*\"] for any realm the KDC vouches for")
        }
        var rules: [KerberosNameRuleConfig] = []
        if let rulesNode = m["name_rules"] {
            guard case let .sequence(sequence) = rulesNode else {
                report(m.path("name_rules"), "expected a list of rules, found \(Self.shape(rulesNode))")
                return KerberosListenerConfig(keytab: keytab, realms: realms)
            }
            for (index, element) in sequence.enumerated() {
                let path = ConfigPath.index(m.path("name_rules"), index)
                guard let r = map(element, at: path, keys: ["realm", "pattern", "name", "lowercase"]) else { continue }
                var rule = KerberosNameRuleConfig(realm: string(r, "realm"), pattern: string(r, "pattern"),
                                                  name: string(r, "name") ?? "user", lowercase: bool(r, "lowercase") ?? false)
                if let pattern = rule.pattern, (try? NSRegularExpression(pattern: pattern)) == nil {
                    report(r.path("pattern"), "is not a valid regular expression")
                    rule.pattern = nil
                }
                rules.append(rule)
            }
        }
        return KerberosListenerConfig(keytab: keytab, realms: realms, nameRules: rules)
    }

    // MARK: clusters

    func parseClusters(_ node: Node, names: inout [String: String]) -> [ClusterConfig] {
        var result: [ClusterConfig] = []
        let keys = ["name", "databases", "ca_file", "strict", "connect_timeout_ms", "login_timeout_ms", "endpoints",
                    "probe", "balancing", "read_fallback_to_primary", "max_write_wait_ms", "demotion",
                    "routing", "failover_group", "connection_policy"]
        for item in namedItems(node, at: "clusters", keys: keys, what: "cluster", names: &names) {
            let m = item.map
            var cluster = ClusterConfig(name: item.name ?? "")
            if let databases = stringList(m, "databases") {
                // `*` in a cluster's list means the same as no list: any database.
                cluster.databases = databases.map(\.value).contains("*") ? [] : databases.map(\.value)
            }
            cluster.caFile = file(m, "ca_file", expect: .certificatePEM)
            cluster.strict = bool(m, "strict") ?? false
            cluster.connectTimeoutMs = int(m, "connect_timeout_ms", default: ClusterConfig.defaultConnectTimeoutMs, range: 1...600_000)
            cluster.loginTimeoutMs = int(m, "login_timeout_ms", default: ClusterConfig.defaultLoginTimeoutMs, range: 1...600_000)
            if let text = string(m, "balancing") {
                if ClusterConfig.balancingModes.contains(text) { cluster.balancing = text } else {
                    report(m.path("balancing"), "must be one of \(ClusterConfig.balancingModes.joined(separator: ", "))")
                }
            }
            if let text = string(m, "demotion") {
                if ClusterConfig.demotionModes.contains(text) { cluster.demotion = text } else {
                    report(m.path("demotion"), "must be one of \(ClusterConfig.demotionModes.joined(separator: ", "))")
                }
            }
            if let text = string(m, "connection_policy") {
                if ClusterConfig.connectionPolicies.contains(text) { cluster.connectionPolicy = text } else {
                    report(m.path("connection_policy"), "must be one of \(ClusterConfig.connectionPolicies.joined(separator: ", "))")
                }
            }
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
                probeReferences.append((p.path("identity"), probe.identity))
            }
            if let endpointsNode = m["endpoints"] {
                cluster.endpoints = parseEndpoints(endpointsNode, at: m.path("endpoints"))
            } else {
                report(m.path("endpoints"), "is required (at least one backend endpoint)")
            }
            if let node = m["routing"] {
                cluster.routing = parseRoutingRules(node, at: m.path("routing"), endpoints: cluster.endpoints, defaults: RouteOptions(
                    allowReadOnlyFallbackToPrimary: cluster.readFallbackToPrimary, balancing: Balancing(rawValue: cluster.balancing) ?? .roundRobin))
            }
            if let node = m["failover_group"] {
                cluster.failoverGroup = parseFailoverGroup(node, at: m.path("failover_group"))
            }
            result.append(cluster)
        }
        return result
    }

    /// `routing:` of a cluster. A rule matches on intent, database and the principal's names
    /// (login, UPN, object/app id, groups, app roles); the first match sets the options.
    func parseRoutingRules(_ node: Node, at base: String, endpoints: [EndpointConfig], defaults: RouteOptions) -> [RoutingRule] {
        var names: [String: String] = [:]
        var rules: [RoutingRule] = []
        let keys = ["name", "match", "read_target", "replicas", "read_fallback_to_primary", "balancing"]
        for item in namedItems(node, at: base, keys: keys, what: "routing rule", names: &names) {
            let m = item.map
            var rule = RoutingRule(name: item.name ?? "", options: defaults)
            if let matchNode = m["match"], let match = map(matchNode, at: m.path("match"), keys: ["intent", "databases", "roles"]) {
                if let intentNode = match["intent"], let text = string(intentNode, at: match.path("intent")) {
                    switch text {
                    case "read_only": rule.intent = .readOnly
                    case "read_write": rule.intent = .readWrite
                    default: report(match.path("intent"), "must be read_only or read_write")
                    }
                }
                rule.databases = stringList(match, "databases")?.map(\.value) ?? []
                rule.roles = Set(stringList(match, "roles")?.map(\.value) ?? [])
            }
            if let node = m["read_target"] {
                rule.options.readTarget = choice(node, at: m.path("read_target"), as: ReadTarget.self) ?? .replica
            }
            if let replicas = stringList(m, "replicas") {
                for r in replicas where !endpoints.contains(where: { $0.name == r.value }) {
                    report(r.path, "no endpoint named '\(r.value)' in this cluster (endpoints: \(endpoints.map(\.name).joined(separator: ", ")))")
                }
                rule.options.replicas = Set(replicas.map(\.value))
            }
            rule.options.allowReadOnlyFallbackToPrimary = bool(m, "read_fallback_to_primary") ?? defaults.allowReadOnlyFallbackToPrimary
            if let node = m["balancing"] {
                rule.options.balancing = choice(node, at: m.path("balancing"), as: Balancing.self) ?? defaults.balancing
            }
            rules.append(rule)
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
        probeReferences.append((m.path("identity"), group.identity))
        return group
    }

    func parseEndpoints(_ node: Node, at base: String) -> [EndpointConfig] {
        guard case let .sequence(sequence) = node else {
            report(base, "expected a list of endpoints, found \(Self.shape(node))")
            return []
        }
        if sequence.isEmpty { report(base, "must list at least one endpoint") }
        let keys = ["name", "host", "port", "tls_name", "role", "geo"]
        var parsed: [(endpoint: EndpointConfig, explicitName: Bool, path: String)] = []
        for (index, element) in sequence.enumerated() {
            let path = ConfigPath.index(base, index)
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
            let role = m["role"].flatMap { choice($0, at: m.path("role"), as: EndpointRole.self) } ?? EndpointConfig.defaultRole
            var endpoint = EndpointConfig(name: name ?? "", host: host, port: port, tlsName: tlsName, role: role)
            endpoint.geo = bool(m, "geo") ?? false
            parsed.append((endpoint, name != nil, path))
        }
        // Default names: the host, or host:port when the host is shared.
        var hostCounts: [String: Int] = [:]
        for entry in parsed { hostCounts[entry.endpoint.host.lowercased(), default: 0] += 1 }
        var seenNames: [String: String] = [:]
        var seenTargets: [String: String] = [:]
        var result: [EndpointConfig] = []
        for var entry in parsed {
            if !entry.explicitName {
                let host = entry.endpoint.host
                entry.endpoint.name = hostCounts[host.lowercased()]! > 1 ? "\(host):\(entry.endpoint.port)" : host
            }
            if !entry.endpoint.host.isEmpty {
                let target = "\(entry.endpoint.host.lowercased()):\(entry.endpoint.port)"
                if let first = seenTargets[target] {
                    report(entry.path, "same host and port as \(first)")
                } else {
                    seenTargets[target] = entry.path
                }
                if let first = seenNames[entry.endpoint.name] {
                    let note = entry.explicitName ? "" : " (the default name is the host; add a name)"
                    report(ConfigPath.key(entry.path, "name"), "duplicate endpoint name '\(entry.endpoint.name)' (also \(first))\(note)")
                } else {
                    seenNames[entry.endpoint.name] = entry.path
                }
            }
            result.append(entry.endpoint)
        }
        return result
    }

    // MARK: backend identities

    static let identityKeys = [
        "name", "kind", "endpoint", "client_id", "object_id", "resource_id", "tenant_id", "authority_host",
        "client_secret", "client_secret_file", "certificate_file", "private_key_file", "token_file", "resource",
    ]

    /// Keys each kind uses besides name, kind and resource.
    static let identityKeysByKind: [String: Set<String>] = [
        "imds": ["endpoint", "client_id", "object_id", "resource_id"],
        "app_service": ["endpoint", "client_id", "object_id", "resource_id"],
        "arc": ["endpoint"],
        "workload_identity": ["client_id", "tenant_id", "authority_host", "token_file"],
        "service_principal": ["client_id", "tenant_id", "authority_host", "client_secret", "client_secret_file", "certificate_file", "private_key_file"],
        "static_file": ["token_file"],
        "auto": Set(identityKeys),
    ]

    func parseBackendIdentities(_ node: Node, names: inout [String: String]) -> [BackendIdentityConfig] {
        var result: [BackendIdentityConfig] = []
        for item in namedItems(node, at: "backend_identities", keys: Self.identityKeys, what: "backend identity", names: &names) {
            let m = item.map
            var kind: String?
            if let text = string(m, "kind", required: true) {
                if BackendIdentityConfig.kinds.contains(text) {
                    kind = text
                } else {
                    report(m.path("kind"), Self.unknownValue(text, among: BackendIdentityConfig.kinds, what: "kind"))
                }
            }
            var identity = BackendIdentityConfig(name: item.name ?? "", kind: kind ?? "")
            if let kind, let used = Self.identityKeysByKind[kind] {
                for (key, _) in m.entries where !["name", "kind", "resource"].contains(key) && !used.contains(key) {
                    report(m.path(key), "is not used by kind \(kind) (it uses: \(Self.identityKeys.filter { used.contains($0) }.joined(separator: ", ")))")
                }
            }
            if let text = string(m, "endpoint") {
                if let problem = ConfigValues.urlProblem(text, httpAllowed: true) { report(m.path("endpoint"), problem) }
                identity.endpoint = text
            }
            for (key, label) in [("client_id", "client ID"), ("object_id", "object (principal) ID")] {
                if let text = string(m, key) {
                    if !ConfigValues.isGUID(text) { report(m.path(key), "must be the identity's \(label), a GUID") }
                    if key == "client_id" { identity.clientID = text } else { identity.objectID = text }
                }
            }
            if let text = string(m, "resource_id") {
                if !text.lowercased().hasPrefix("/subscriptions/") {
                    report(m.path("resource_id"), "must be an ARM resource ID (/subscriptions/<id>/resourcegroups/<group>/providers/Microsoft.ManagedIdentity/userAssignedIdentities/<name>)")
                }
                identity.resourceID = text
            }
            if let text = string(m, "tenant_id") {
                if !ConfigValues.isGUID(text) && !ConfigValues.isHostName(text) {
                    report(m.path("tenant_id"), "must be a tenant ID (a GUID) or the tenant's domain name")
                }
                identity.tenantID = text
            }
            if let text = string(m, "authority_host") {
                if let problem = ConfigValues.urlProblem(text) { report(m.path("authority_host"), problem) }
                identity.authorityHost = text
            }
            identity.clientSecret = string(m, "client_secret")
            identity.clientSecretFile = file(m, "client_secret_file", expect: .nonEmpty)
            identity.certificateFile = file(m, "certificate_file", expect: .certificatePEM)
            identity.privateKeyFile = file(m, "private_key_file", expect: .privateKeyPEM)
            identity.tokenFile = file(m, "token_file")
            if let text = string(m, "resource") { identity.resource = text }

            // Rules across keys.
            let selectors = ["client_id", "object_id", "resource_id"].filter { m.has($0) }
            if selectors.count > 1, kind == "imds" || kind == "app_service" || kind == "auto" {
                report(item.path, "give at most one of client_id, object_id, resource_id (found \(selectors.joined(separator: ", ")))")
            }
            if kind == "service_principal" {
                for key in ["tenant_id", "client_id"] where !m.has(key) {
                    report(m.path(key), "is required for kind service_principal")
                }
                let credentials = ["client_secret_file", "client_secret", "certificate_file"].filter { m.has($0) }
                if credentials.isEmpty {
                    report(item.path, "kind service_principal needs one of client_secret_file, client_secret, certificate_file")
                } else if credentials.count > 1 {
                    report(item.path, "give only one of client_secret_file, client_secret, certificate_file (found \(credentials.joined(separator: ", ")))")
                }
            }
            if m.has("private_key_file") && !m.has("certificate_file") {
                report(m.path("private_key_file"), "is used only with certificate_file")
            }
            if kind == "static_file" && !m.has("token_file") {
                report(m.path("token_file"), "is required for kind static_file")
            }
            result.append(identity)
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
    func parseLoginsFile(_ path: String, at base: String, names: inout [String: String]) -> [LoginConfig] {
        if let problem = ConfigFiles.problem(with: path, expect: .anything) {
            report(base, problem)
            return []
        }
        guard let data = FileManager.default.contents(atPath: path), let yaml = String(data: data, encoding: .utf8) else {
            report(base, "not UTF-8 text: \(path)")
            return []
        }
        guard let root = compose(yaml, path: base, source: path) else { return [] }
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

    static let policyKeys = ["name", "match", "clusters", "databases", "write", "backend_identity", "tag_app_name"]

    func parsePolicy(
        _ node: Node, config: GatewayConfig,
        clusters: [String: String], identities: [String: String], logins: [String: String]
    ) -> [PolicyRuleConfig] {
        var names: [String: String] = [:]
        var result: [PolicyRuleConfig] = []
        for item in namedItems(node, at: "policy", keys: Self.policyKeys, what: "policy rule", names: &names) {
            let m = item.map
            var rule = PolicyRuleConfig(name: item.name ?? "", backendIdentity: "")
            if let matchNode = m["match"] {
                rule.match = parseMatch(matchNode, at: m.path("match"), logins: logins)
            } else {
                report(m.path("match"), "is required (write `match: any` for a rule that matches every principal)")
            }
            if let entries = stringList(m, "clusters") {
                for (name, path) in entries where name != "*" {
                    checkReference(name, at: path, what: "cluster", names: clusters)
                }
                if entries.isEmpty { report(m.path("clusters"), "must list at least one cluster (or \"*\")") }
                rule.clusters = entries.map(\.value)
            } else {
                report(m.path("clusters"), "is required (cluster names, or \"*\" for any)")
            }
            if let entries = stringList(m, "databases") {
                if entries.isEmpty { report(m.path("databases"), "must list at least one database (or \"*\")") }
                rule.databases = entries.map(\.value)
                // A database no cluster of the rule serves can never be reached.
                let ruleClusters = rule.clusters.contains("*")
                    ? config.clusters
                    : config.clusters.filter { rule.clusters.contains($0.name) }
                if !ruleClusters.isEmpty, ruleClusters.allSatisfy({ !$0.databases.isEmpty }) {
                    for (database, path) in entries where database != "*" {
                        let served = ruleClusters.contains { $0.databases.contains { $0.lowercased() == database.lowercased() } }
                        if !served {
                            report(path, "database '\(Self.clip(database))' is not in the databases of cluster \(ruleClusters.map(\.name).joined(separator: ", "))")
                        }
                    }
                }
            }
            rule.write = bool(m, "write") ?? false
            if let identity = string(m, "backend_identity", required: true) {
                checkReference(identity, at: m.path("backend_identity"), what: "backend identity", names: identities)
                rule.backendIdentity = identity
            }
            rule.tagAppName = bool(m, "tag_app_name")
            result.append(rule)
        }
        return result
    }

    func parseMatch(_ node: Node, at path: String, logins: [String: String]) -> [String: String] {
        if case let .scalar(scalar) = node {
            if scalar.string.lowercased() == "any" || scalar.string == "*" { return [:] }
            report(path, "expected a mapping of \(PolicyRuleConfig.matchKeys.joined(separator: ", ")), or `any`")
            return [:]
        }
        guard let m = map(node, at: path, keys: PolicyRuleConfig.matchKeys) else { return [:] }
        var match: [String: String] = [:]
        for (key, _) in m.entries {
            guard let value = string(m, key) else { continue }
            match[key] = value
            switch key {
            case "login":
                checkReference(value, at: m.path(key), what: "login", names: logins, rule: .sqlLogin)
            case "object_id", "app_id":
                if !ConfigValues.isGUID(value) { report(m.path(key), "must be a GUID") }
            default:
                break
            }
        }
        return match
    }

    // MARK: admin

    func parseAdmin(_ node: Node, listeners: [ListenerConfig]) -> AdminConfig? {
        guard let m = map(node, at: "admin", keys: ["address", "port", "bearer_token_file"]) else { return nil }
        var admin = AdminConfig()
        if let address = string(m, "address") {
            if let problem = ConfigValues.hostProblem(address) { report(m.path("address"), problem) }
            admin.address = address
        }
        let problemsBeforePort = problems.count
        admin.port = int(m, "port", default: AdminConfig.defaultPort, range: 0...65_535)
        let portIsValid = problems.count == problemsBeforePort
        admin.bearerTokenFile = file(m, "bearer_token_file", expect: .nonEmpty)
        if admin.bearerTokenFile == nil && !m.has("bearer_token_file") && !ConfigValues.isLoopback(admin.address) {
            report(m.path("bearer_token_file"), "is required when admin.address is not a loopback address")
        }
        if admin.port != 0, portIsValid, let clash = listeners.first(where: { $0.port == admin.port && Self.addressesOverlap($0.address, admin.address) }) {
            report(m.path("port"), "address and port already used by listeners.\(clash.name)")
        }
        return admin
    }

    // MARK: references

    func checkReference(_ name: String, at path: String, what: String, names: [String: String], rule: ConfigNameRule = .identifier) {
        guard names[rule.key(name)] == nil else { return }
        if names.isEmpty {
            report(path, "unknown \(what) '\(Self.clip(name))' (none is defined)")
        } else {
            report(path, Self.unknownValue(name, among: names.keys.sorted(), what: what))
        }
    }
}
