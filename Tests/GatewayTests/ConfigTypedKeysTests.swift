import Audit
import Foundation
import Gateway
import Identity
import Kerberos
import Logging
import Routing
import Testing

/// A small valid configuration with places to add keys: the listener, the cluster, the
/// policy rule (each at its item's indentation), and top-level sections.
private func config(listener: String = "", cluster: String = "", rule: String = "", extra: String = "") -> String {
    """
    listeners:
      - name: main
        client_encryption: [plaintext]
    \(listener)
    clusters:
      - name: orders
        endpoints:
          - {name: east, host: east.example}
          - {name: west, host: west.example, role: replica}
    \(cluster)
    backend_identities:
      - {name: mi, kind: imds}
    logins:
      - {name: app, password_hash: "\(ConfigTestSupport.hash)"}
    policy:
      - name: everyone
        match: any
        clusters: ["*"]
        backend_identity: mi
    \(rule)
    \(extra)
    """
}

private func parsed(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) throws -> GatewayConfig {
    try #require(ConfigTestSupport.parse(yaml, sourceLocation: sourceLocation))
}

@Suite("Config: values become enums")
struct ConfigEnumTests {
    @Test("balancing", arguments: [("round_robin", Balancing.roundRobin), ("least_sessions", .leastSessions), ("lowest_latency", .lowestLatency)])
    func balancing(text: String, value: Balancing) throws {
        #expect(try parsed(config(cluster: "    balancing: \(text)")).clusters[0].balancing == value)
    }

    @Test("demotion", arguments: [("immediately", DemotionClosePolicy.immediately), ("after_request", .afterCurrentRequest)])
    func demotion(text: String, value: DemotionClosePolicy) throws {
        #expect(try parsed(config(cluster: "    demotion: \(text)")).clusters[0].demotion == value)
    }

    @Test("connection_policy", arguments: [("redirect", ConnectionPolicy.redirect), ("proxy", .proxy), ("Proxy", .proxy)])
    func connectionPolicy(text: String, value: ConnectionPolicy) throws {
        #expect(try parsed(config(cluster: "    connection_policy: \(text)")).clusters[0].connectionPolicy == value)
    }

    @Test("endpoint role", arguments: RoleHint.allCases)
    func role(value: RoleHint) throws {
        let yaml = config().replacingOccurrences(of: "{name: west, host: west.example, role: replica}", with: "{name: west, host: west.example, role: \(value.rawValue)}")
        #expect(try parsed(yaml).clusters[0].endpoints[1].role == value)
    }

    @Test("backend identity kind", arguments: BackendIdentityKind.allCases)
    func kind(value: BackendIdentityKind) throws {
        let keys = switch value {
        case .servicePrincipal: ", tenant_id: t.example, client_id: 6d0c4a4e-1b8a-4c43-9b9e-3f1f6f1c0a03, client_secret: x"
        case .staticFile: ", token_file: /run/token"
        default: ""
        }
        let yaml = config().replacingOccurrences(of: "{name: mi, kind: imds}", with: "{name: mi, kind: \(value.rawValue)\(keys)}")
        #expect(try parsed(yaml).backendIdentities[0].spec.kind == value)
    }

    @Test("log_level, without case", arguments: Logger.Level.allCases)
    func logLevel(value: Logger.Level) throws {
        #expect(try parsed(config(extra: "log_level: \(value.rawValue.uppercased())")).logLevel == value)
    }

    @Test("audit syslog transport and facility", arguments: SyslogConfiguration.Facility.allCases)
    func facility(value: SyslogConfiguration.Facility) throws {
        let audit = try parsed(config(extra: "audit: {syslog: {host: 127.0.0.1, transport: tcp, facility: \(value.name)}}")).audit
        #expect(audit?.destination == .syslog(SyslogConfiguration(host: "127.0.0.1", port: 514, transport: .tcp, facility: value, appName: "tdsgate")))
    }

    @Test("audit syslog defaults: udp, authpriv")
    func syslogDefaults() throws {
        let audit = try parsed(config(extra: "audit: {syslog: {host: logs.example}}")).audit
        #expect(audit?.destination == .syslog(SyslogConfiguration(host: "logs.example", port: 514, transport: .udp, facility: .authpriv, appName: "tdsgate")))
    }

    @Test("kerberos name rule output", arguments: [("user", KerberosNameRule.Output.user), ("principal", .principal), ("\"{user}@corp\"", .template("{user}@corp"))])
    func kerberosOutput(text: String, value: KerberosNameRule.Output) throws {
        let yaml = config(listener: "    kerberos: {keytab: k.keytab, realms: [CORP.EXAMPLE], name_rules: [{name: \(text)}]}")
        let kerberos = try #require(try parsed(yaml).listeners[0].kerberos)
        #expect(kerberos.nameRules.map(\.output) == [value] && kerberos.realms == .only(["CORP.EXAMPLE"]))
        // Without `name:` a rule maps to the user part.
        let plain = try parsed(config(listener: "    kerberos: {keytab: k.keytab, realms: [\"*\"], name_rules: [{realm: CORP.EXAMPLE}]}"))
        #expect(plain.listeners[0].kerberos?.nameRules.map(\.output) == [.user] && plain.listeners[0].kerberos?.realms == .anyRealm)
    }

    @Test("policy match keys, each its PolicyMatch", arguments: [
        ("login: app", PolicyMatch.login("app")), ("object_id: 0a7e2c1b-5d2f-4a0e-8f4c-1b2c3d4e5f01", .objectID("0a7e2c1b-5d2f-4a0e-8f4c-1b2c3d4e5f01")),
        ("group: g1", .group("g1")), ("app_role: Reports.Reader", .appRole("Reports.Reader")), ("upn: \"*@contoso.example\"", .upn("*@contoso.example")),
        ("app_id: 6d0c4a4e-1b8a-4c43-9b9e-3f1f6f1c0a03", .appID("6d0c4a4e-1b8a-4c43-9b9e-3f1f6f1c0a03")), ("realm: CORP.EXAMPLE", .realm("CORP.EXAMPLE")),
        ("kerberos: alice@CORP.EXAMPLE", .kerberos("alice@CORP.EXAMPLE")),
    ])
    func matchKey(text: String, value: PolicyMatch) throws {
        let yaml = config().replacingOccurrences(of: "    match: any", with: "    match: {\(text)}")
        #expect(try parsed(yaml).policy[0].rule.match == [value])
    }

    @Test("several match keys all hold; `any` and an empty mapping match everyone")
    func matchCombinations() throws {
        let yaml = config().replacingOccurrences(of: "    match: any", with: "    match: {upn: a@b.example, group: g}")
        #expect(try parsed(yaml).policy[0].rule.match == [.group("g"), .upn("a@b.example")])
        #expect(try parsed(config()).policy[0].rule.match == [.any])
        #expect(try parsed(config().replacingOccurrences(of: "    match: any", with: "    match: {}")).policy[0].rule.match == [.any])
    }

    @Test("a value outside an enum is refused at its place, with a suggestion", arguments: [
        ("    balancing: round_robbin", "clusters.orders.balancing", "unknown value 'round_robbin' (did you mean 'round_robin'?)"),
        ("    demotion: later", "clusters.orders.demotion", "unknown value 'later' (expected one of: immediately, after_request)"),
        ("    connection_policy: redirekt", "clusters.orders.connection_policy", "unknown value 'redirekt' (did you mean 'redirect'?)"),
        ("    pool: {mode: statement}", "clusters.orders.pool.mode", "unknown mode 'statement' (expected one of: session, transaction)"),
        ("    pool: {mode: transaction}", "clusters.orders.pool.mode", "transaction mode is not available in this version of tdsgate; use mode: session"),
        ("    balancing: [round_robin]", "clusters.orders.balancing", "expected a single value, found a list"),
    ])
    func refusedInCluster(line: String, path: String, message: String) {
        let problems = ConfigTestSupport.problems(config(cluster: line))
        #expect(problems.unlocated == [ConfigProblem(path: path, message: message)], "\(problems.listing)")
        #expect(problems.first?.location != nil)
    }

    @Test("log level, kind, transport and facility are refused with the names they may take")
    func refusedElsewhere() {
        let problems = ConfigTestSupport.problems(config(extra: "log_level: loud\naudit: {syslog: {host: h.example, transport: sctp, facility: mail}}")
            .replacingOccurrences(of: "{name: mi, kind: imds}", with: "{name: mi, kind: managed}"))
        #expect(problems.has("log_level", "unknown level 'loud' (expected one of: trace, debug, info, notice, warning, error, critical)"), "\(problems.listing)")
        #expect(problems.has("backend_identities.mi.kind", "unknown kind 'managed' (expected one of: imds, app_service, arc, workload_identity, service_principal, static_file, auto)"), "\(problems.listing)")
        #expect(problems.has("audit.syslog.transport", "unknown transport 'sctp' (expected one of: udp, tcp)"), "\(problems.listing)")
        #expect(problems.message(at: "audit.syslog.facility")?.hasPrefix("unknown facility 'mail' (expected one of: kern, user, daemon") == true, "\(problems.listing)")
        #expect(problems.count == 4, "\(problems.listing)")
    }
}

@Suite("Config: listener keys for limits, timeouts, PROXY protocol and session context")
struct ConfigListenerKeyTests {
    @Test func defaults() throws {
        let listener = try parsed(config()).listeners[0]
        #expect(listener.loginTimeoutSeconds == 30)
        #expect(listener.maxConnections == nil && listener.maxConnectionsPerSource == nil && listener.maxPendingLogins == nil)
        #expect(listener.proxyProtocol == nil && !listener.sessionContext)
    }

    @Test func values() throws {
        let listener = try parsed(config(listener: """
                login_timeout_s: 5
                max_connections: 1_000
                max_connections_per_source: 50
                max_pending_logins: 200
                proxy_protocol: {versions: [v2], trusted_sources: [10.0.0.0/24, "fd00::/8", 192.0.2.7]}
                session_context: true
            """)).listeners[0]
        #expect(listener.loginTimeoutSeconds == 5 && listener.maxConnections == 1_000)
        #expect(listener.maxConnectionsPerSource == 50 && listener.maxPendingLogins == 200 && listener.sessionContext)
        #expect(listener.proxyProtocol == ProxyProtocolConfig(versions: [.v2], trustedSources: [
            try IPNetwork(parsing: "10.0.0.0/24"), try IPNetwork(parsing: "fd00::/8"), try IPNetwork(parsing: "192.0.2.7/32"),
        ]))
        // versions default to both; a single source may be written without brackets.
        let both = try parsed(config(listener: "    proxy_protocol: {trusted_sources: 127.0.0.1}")).listeners[0].proxyProtocol
        #expect(both == ProxyProtocolConfig(versions: [.v1, .v2], trustedSources: [try IPNetwork(parsing: "127.0.0.1")]))
    }

    @Test("numbers out of range or of the wrong type", arguments: [
        ("login_timeout_s: 0", "listeners.main.login_timeout_s", "must be between 1 and 3600, found 0"),
        ("login_timeout_s: 3601", "listeners.main.login_timeout_s", "must be between 1 and 3600, found 3601"),
        ("login_timeout_s: 1.5", "listeners.main.login_timeout_s", "expected a whole number between 1 and 3600, found '1.5'"),
        ("login_timeout_s: \"30\"", "listeners.main.login_timeout_s", "expected a whole number between 1 and 3600, found '30'"),
        ("login_timeout_s: [30]", "listeners.main.login_timeout_s", "expected a whole number between 1 and 3600, found a list"),
        ("login_timeout_s: true", "listeners.main.login_timeout_s", "expected a whole number between 1 and 3600, found 'true'"),
        ("max_connections: 0", "listeners.main.max_connections", "must be between 1 and 1000000, found 0"),
        ("max_connections: -5", "listeners.main.max_connections", "must be between 1 and 1000000, found -5"),
        ("max_connections_per_source: 99999999999999999999999", "listeners.main.max_connections_per_source",
         "must be between 1 and 1000000, found a number of 23 digits"),
        ("max_pending_logins: .nan", "listeners.main.max_pending_logins", "expected a whole number between 1 and 1000000, found '.nan'"),
        ("session_context: maybe", "listeners.main.session_context", "expected true or false, found 'maybe'"),
    ])
    func refused(line: String, path: String, message: String) {
        let problems = ConfigTestSupport.problems(config(listener: "    " + line))
        #expect(problems.unlocated == [ConfigProblem(path: path, message: message)], "\(problems.listing)")
        // The value's own line and column: line 4 of the document, after the key.
        let column = line.distance(from: line.startIndex, to: line.firstIndex(of: ":")!) + 7
        #expect(problems.first?.location == ConfigLocation(line: 4, column: column), "\(problems.listing)")
    }

    @Test("proxy_protocol mistakes")
    func proxyProtocolMistakes() {
        let problems = ConfigTestSupport.problems(config(listener: """
                proxy_protocol: {versions: [v3], trusted_sources: [10.1.2.3/16, 300.1.1.1, "10.0.0.0/40", proxy.example]}
              - name: second
                port: 1434
                client_encryption: plaintext
                proxy_protocol: {versions: []}
            """))
        #expect(problems.has("listeners.main.proxy_protocol.versions[0]", "unknown version 'v3' (did you mean 'v1'?)"), "\(problems.listing)")
        #expect(problems.has("listeners.main.proxy_protocol.trusted_sources[0]", "has bits set after the prefix (did you mean 10.1.0.0/16?)"), "\(problems.listing)")
        #expect(problems.has("listeners.main.proxy_protocol.trusted_sources[1]", "expected an IPv4 or IPv6 address or network in CIDR form (10.0.0.0/8, fd00::/8), found '300.1.1.1'"), "\(problems.listing)")
        #expect(problems.has("listeners.main.proxy_protocol.trusted_sources[2]", "the prefix length must be a number from 0 to 32, found '10.0.0.0/40'"), "\(problems.listing)")
        #expect(problems.message(at: "listeners.main.proxy_protocol.trusted_sources[3]") != nil, "\(problems.listing)")
        #expect(problems.has("listeners.second.proxy_protocol.versions", "must list at least one of v1, v2"), "\(problems.listing)")
        #expect(problems.message(at: "listeners.second.proxy_protocol.trusted_sources")?.hasPrefix("is required") == true, "\(problems.listing)")
        #expect(problems.count == 7, "\(problems.listing)")
    }

    @Test("per-source and pending limits may not exceed max_connections")
    func limitRelations() {
        let problems = ConfigTestSupport.problems(config(listener: """
                max_connections: 100
                max_connections_per_source: 101
                max_pending_logins: 500
            """))
        #expect(problems.unlocated == [
            ConfigProblem(path: "listeners.main.max_connections_per_source", message: "must not exceed max_connections (100), found 101"),
            ConfigProblem(path: "listeners.main.max_pending_logins", message: "must not exceed max_connections (100), found 500"),
        ], "\(problems.listing)")
        #expect(problems.map { $0.location?.line } == [5, 6])
        // Without max_connections, the others stand alone.
        #expect(ConfigTestSupport.problems(config(listener: "    max_pending_logins: 500")).isEmpty)
    }
}

@Suite("Config: policy rule keys for session context and read-only identities")
struct ConfigPolicyKeyTests {
    @Test func defaultsAndValues() throws {
        let rule = try parsed(config()).policy[0].rule
        #expect(rule.sessionContext == nil && !rule.backendIdentityReadOnly && !rule.tagAppName)
        let set = try parsed(config(rule: """
              - name: readers
                match: {login: app}
                clusters: [orders]
                backend_identity: mi
                session_context: false
                backend_identity_read_only: true
                tag_app_name: yes
            """)).policy[1].rule
        #expect(set.sessionContext == false && set.backendIdentityReadOnly && set.tagAppName)
    }

    @Test func wrongTypes() {
        let problems = ConfigTestSupport.problems(config(rule: "    session_context: [true]\n    backend_identity_read_only: 1"))
        #expect(problems.has("policy.everyone.session_context", "expected true or false, found a list"), "\(problems.listing)")
        #expect(problems.has("policy.everyone.backend_identity_read_only", "expected true or false, found '1'"), "\(problems.listing)")
        #expect(problems.count == 2, "\(problems.listing)")
    }
}

@Suite("Config: cluster pool and session recovery")
struct ConfigPoolKeyTests {
    @Test func absentMeansNoPooling() throws {
        let cluster = try parsed(config()).clusters[0]
        #expect(cluster.pool == nil && cluster.recoverSessions)
    }

    @Test("a pool with only a mode takes the documented defaults")
    func defaults() throws {
        let cluster = try parsed(config(cluster: "    pool: {mode: session}\n    recover_sessions: false")).clusters[0]
        #expect(cluster.pool == PoolConfig(mode: .session, maxBackendConnections: 100, minIdle: 0, idleTimeoutSeconds: 300,
                                           maxLifetimeSeconds: 3_600, acquireTimeoutMs: 5_000))
        #expect(!cluster.recoverSessions)
        #expect(try parsed(config(cluster: "    pool: {}")).clusters[0].pool == PoolConfig())
    }

    @Test func values() throws {
        let pool = try parsed(config(cluster: """
                pool:
                  mode: session
                  max_backend_connections: 50
                  min_idle: 5
                  idle_timeout_s: 60
                  max_lifetime_s: 1800
                  acquire_timeout_ms: 0
            """)).clusters[0].pool
        #expect(pool == PoolConfig(mode: .session, maxBackendConnections: 50, minIdle: 5, idleTimeoutSeconds: 60,
                                   maxLifetimeSeconds: 1_800, acquireTimeoutMs: 0))
    }

    @Test("ranges", arguments: [
        ("max_backend_connections: 0", "max_backend_connections", "must be between 1 and 100000, found 0"),
        ("min_idle: -1", "min_idle", "must be between 0 and 100000, found -1"),
        ("idle_timeout_s: 0", "idle_timeout_s", "must be between 1 and 86400, found 0"),
        ("max_lifetime_s: 604801", "max_lifetime_s", "must be between 1 and 604800, found 604801"),
        ("acquire_timeout_ms: 600001", "acquire_timeout_ms", "must be between 0 and 600000, found 600001"),
        ("acquire_timeout_ms: 5s", "acquire_timeout_ms", "expected a whole number between 0 and 600000, found '5s'"),
        ("colour: blue", "colour", "unknown key (expected one of: mode, max_backend_connections, min_idle, idle_timeout_s, max_lifetime_s, acquire_timeout_ms)"),
    ])
    func refused(entry: String, key: String, message: String) {
        let problems = ConfigTestSupport.problems(config(cluster: "    pool: {\(entry)}"))
        #expect(problems.unlocated == [ConfigProblem(path: "clusters.orders.pool.\(key)", message: message)], "\(problems.listing)")
        #expect(problems.first?.location?.line == 10)
    }

    @Test("min_idle within max_backend_connections; idle timeout within the lifetime")
    func relations() {
        let problems = ConfigTestSupport.problems(config(cluster: "    pool: {max_backend_connections: 10, min_idle: 11, idle_timeout_s: 4000, max_lifetime_s: 3600}"))
        #expect(problems.unlocated == [
            ConfigProblem(path: "clusters.orders.pool.min_idle", message: "must not exceed max_backend_connections (10), found 11"),
            ConfigProblem(path: "clusters.orders.pool.idle_timeout_s", message: "must not exceed max_lifetime_s (3600): a connection is retired before it could time out idle"),
        ], "\(problems.listing)")
        // A relation is not checked against a value that was itself refused.
        let refused = ConfigTestSupport.problems(config(cluster: "    pool: {max_backend_connections: 0, min_idle: 150}"))
        #expect(refused.unlocated == [ConfigProblem(path: "clusters.orders.pool.max_backend_connections", message: "must be between 1 and 100000, found 0")], "\(refused.listing)")
    }
}

@Suite("Config: problems carry line and column")
struct ConfigLocationTests {
    @Test("a file's problems print as file:line:column: path: message")
    func fromAFile() throws {
        let dir = try ConfigTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let yaml = config(cluster: """
                probe:
                  identity: mi
                  interval_ms: 5
            """)
        try ConfigTestSupport.write(yaml, to: "\(dir)/tdsgate.yaml")
        do {
            _ = try GatewayConfig.load(path: "\(dir)/tdsgate.yaml")
            Issue.record("expected a problem")
        } catch {
            #expect(error.problems.map(\.description) == ["\(dir)/tdsgate.yaml:12:20: clusters.orders.probe.interval_ms: must be between 100 and 600000, found 5"])
        }
    }

    @Test("unknown keys point at the key, missing keys at the mapping that lacks them")
    func keysAndMappings() {
        let problems = ConfigTestSupport.problems(config(cluster: "    probe: {database: appdb, intervall_ms: 1000}"))
        #expect(problems.problem(at: "clusters.orders.probe.intervall_ms")?.location == ConfigLocation(line: 10, column: 30), "\(problems.listing)")
        #expect(problems.problem(at: "clusters.orders.probe.identity")?.location == ConfigLocation(line: 10, column: 12), "\(problems.listing)")
        #expect(problems.count == 2, "\(problems.listing)")
    }

    @Test("problems of the validation pass are located too")
    func validationProblems() {
        let problems = ConfigTestSupport.problems(config(listener: "    cluster: ordrs", rule: "    databases: [appdb]").replacingOccurrences(of: "backend_identity: mi", with: "backend_identity: mj"))
        #expect(problems.problem(at: "listeners.main.cluster")?.location == ConfigLocation(line: 4, column: 14), "\(problems.listing)")
        #expect(problems.problem(at: "policy.everyone.backend_identity")?.location == ConfigLocation(line: 19, column: 23), "\(problems.listing)")
        #expect(problems.count == 2, "\(problems.listing)")
    }

    @Test("problems in logins_file are located in that file")
    func loginsFile() throws {
        let dir = try ConfigTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ConfigTestSupport.write("- {name: ops, password_hash: \"\(ConfigTestSupport.hash)\"}\n- {name: etl, password_hash: md5}\n", to: "\(dir)/logins.yaml")
        let problems = ConfigTestSupport.problems(config(extra: "logins_file: logins.yaml"), baseDirectory: dir)
        #expect(problems.count == 1, "\(problems.listing)")
        #expect(problems.first?.path == "logins_file.etl.password_hash")
        #expect(problems.first?.location == ConfigLocation(file: "\(dir)/logins.yaml", line: 2, column: 30), "\(problems.listing)")
    }

    @Test("problems are listed section by section, in the order of their lines")
    func order() {
        let problems = ConfigTestSupport.problems(config(listener: "    port: -1\n    cluster: nowhere", cluster: "    strict: perhaps"))
        #expect(problems.map(\.path) == ["listeners.main.port", "listeners.main.cluster", "clusters.orders.strict"], "\(problems.listing)")
    }
}

@Suite("Config: the validation pass")
struct ConfigCrossFieldTests {
    @Test("references to clusters, backend identities and logins must name something defined")
    func references() {
        let problems = ConfigTestSupport.problems(config(listener: "    cluster: ordres", cluster: """
                probe: {identity: probe-mi}
                failover_group: {name: fog, subscription_id: s, resource_group: rg, servers: [a, b], identity: arm-mi}
            """, rule: """
              - name: named
                match: {login: APP}
                clusters: [orders, east]
                backend_identity: mi
              - name: stranger
                match: {login: nobody}
                clusters: [orders]
                backend_identity: mi
            """))
        #expect(problems.unlocated == [
            ConfigProblem(path: "listeners.main.cluster", message: "unknown cluster 'ordres' (did you mean 'orders'?)"),
            ConfigProblem(path: "clusters.orders.probe.identity", message: "unknown backend identity 'probe-mi' (expected one of: mi)"),
            ConfigProblem(path: "clusters.orders.failover_group.identity", message: "unknown backend identity 'arm-mi' (expected one of: mi)"),
            ConfigProblem(path: "policy.named.clusters[1]", message: "unknown cluster 'east' (expected one of: orders)"),
            ConfigProblem(path: "policy.stranger.match.login", message: "unknown login 'nobody' (expected one of: app)"),
        ], "\(problems.listing)")
    }

    @Test("a reference into an empty section says none is defined")
    func noneDefined() {
        let yaml = config(rule: "    match: {login: app}")
            .replacingOccurrences(of: "logins:\n  - {name: app, password_hash: \"\(ConfigTestSupport.hash)\"}\n", with: "")
            .replacingOccurrences(of: "backend_identities:\n  - {name: mi, kind: imds}\n", with: "")
        let problems = ConfigTestSupport.problems(yaml.replacingOccurrences(of: "    match: any\n", with: ""))
        #expect(problems.has("policy.everyone.backend_identity", "unknown backend identity 'mi' (none is defined)"), "\(problems.listing)")
        #expect(problems.has("policy.everyone.match.login", "unknown login 'app' (none is defined)"), "\(problems.listing)")
        #expect(problems.count == 2, "\(problems.listing)")
    }

    @Test("with two clusters every listener names one")
    func listenerCluster() {
        let second = "  - {name: reports, endpoints: [{host: reports.example}]}"
        let problems = ConfigTestSupport.problems(config(cluster: second))
        #expect(problems.unlocated == [ConfigProblem(path: "listeners.main.cluster", message: "is required when there is more than one cluster (without it every login on this listener is refused)")])
        #expect(ConfigTestSupport.problems(config(listener: "    cluster: reports", cluster: second)).isEmpty)
    }

    @Test("endpoints: one name and one host:port each; routing replicas exist")
    func endpointsAndReplicas() {
        let yaml = config(cluster: """
                routing: [{name: r, replicas: [west, north]}]
              - name: dup
                endpoints:
                  - {host: a.example}
                  - {host: a.example, port: 1433}
                  - {name: a.example, host: b.example}
            """)
        let problems = ConfigTestSupport.problems(yaml.replacingOccurrences(of: "clusters: [\"*\"]", with: "clusters: [orders]")
            .replacingOccurrences(of: "    client_encryption: [plaintext]\n", with: "    client_encryption: [plaintext]\n    cluster: orders\n"))
        #expect(problems.unlocated == [
            ConfigProblem(path: "clusters.orders.routing.r.replicas[1]", message: "no endpoint named 'north' in this cluster (endpoints: east, west)"),
            ConfigProblem(path: "clusters.dup.endpoints[1]", message: "same host and port as clusters.dup.endpoints[0]"),
            ConfigProblem(path: "clusters.dup.endpoints[1].name", message: "duplicate endpoint name 'a.example:1433' (also clusters.dup.endpoints[0]) (the default name is the host; add a name)"),
        ], "\(problems.listing)")
    }

    @Test("a value refused by the structural pass is not checked again")
    func noDoubleReports() {
        let problems = ConfigTestSupport.problems(config(listener: """
                port: 99999
              - name: other
                port: 99999
                client_encryption: plaintext
            """, extra: "admin: {address: not_an_address!, port: 99999}"))
        #expect(Set(problems.map(\.path)) == ["listeners.main.port", "listeners.other.port", "admin.address", "admin.port"], "\(problems.listing)")
    }

    @Test("backend identity keys are checked against the kind")
    func identityKinds() {
        let yaml = config().replacingOccurrences(of: "  - {name: mi, kind: imds}", with: """
              - {name: mi, kind: imds}
              - {name: arc, kind: arc, client_id: 6d0c4a4e-1b8a-4c43-9b9e-3f1f6f1c0a03}
              - {name: sp, kind: service_principal, tenant_id: t.example, client_id: 6d0c4a4e-1b8a-4c43-9b9e-3f1f6f1c0a03, client_secret: a, certificate_file: /c.pem, private_key_file: /k.pem}
              - {name: key, kind: auto, private_key_file: /k.pem}
              - {name: bad, kind: wrong, token_file: /t}
            """)
        let problems = ConfigTestSupport.problems(yaml, checkFiles: false)
        #expect(problems.unlocated == [
            ConfigProblem(path: "backend_identities.arc.client_id", message: "is not used by kind arc (it uses: endpoint)"),
            ConfigProblem(path: "backend_identities.sp", message: "give only one of client_secret_file, client_secret, certificate_file (found client_secret, certificate_file)"),
            ConfigProblem(path: "backend_identities.key.private_key_file", message: "is used only with certificate_file"),
            ConfigProblem(path: "backend_identities.bad.kind", message: "unknown kind 'wrong' (expected one of: imds, app_service, arc, workload_identity, service_principal, static_file, auto)"),
        ], "\(problems.listing)")
    }
}
