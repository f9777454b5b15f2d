import Foundation
import Gateway
import Identity
import Routing
import Testing

private let hash = ConfigTestSupport.hash

/// A small valid configuration; tests add to it or bend it.
private func minimal(listener: String = "", cluster: String = "", identity: String = "", rule: String = "", extra: String = "") -> String {
    """
    listeners:
      - name: main
        client_encryption: [plaintext]
    \(listener)
    clusters:
      - name: orders
        endpoints:
          - host: db.example.net
    \(cluster)
    backend_identities:
      - name: mi
        kind: imds
    \(identity)
    policy:
      - name: everyone
        match: any
        clusters: ["*"]
        backend_identity: mi
    \(rule)
    \(extra)
    """
}

@Suite("Config: defaults and values")
struct ConfigDefaultsTests {
    @Test("keys left out take their documented defaults")
    func defaults() throws {
        let config = try #require(ConfigTestSupport.parse(minimal()))
        let listener = try #require(config.listeners.first)
        #expect(listener == ListenerConfig(name: "main", address: "127.0.0.1", port: 1433, tls: nil, clientEncryption: [.plaintext], cluster: nil, entra: nil, tagSessions: false))
        let cluster = try #require(config.cluster(named: "orders"))
        #expect(cluster.databases.isEmpty && cluster.caFile == nil && !cluster.strict)
        #expect(cluster.connectTimeoutMs == 5_000 && cluster.loginTimeoutMs == 15_000)
        #expect(cluster.endpoints == [EndpointConfig(name: "db.example.net", host: "db.example.net", port: 1433, tlsName: "db.example.net", role: .auto)])
        #expect(config.backendIdentities == [BackendIdentityConfig(BackendIdentitySpec(name: "mi", kind: .imds, resource: "https://database.windows.net/"))])
        #expect(config.policy == [PolicyRuleConfig(PolicyRule(name: "everyone", match: [.any], clusters: ["*"], databases: ["*"], write: false,
                                                              backendIdentity: "mi", tagAppName: false, sessionContext: nil, backendIdentityReadOnly: false))])
        #expect(config.logins.isEmpty && config.loginsFile == nil)
        #expect(config.throttle == ThrottleConfig(maxFailures: 5, windowSeconds: 60, blockSeconds: 60))
        #expect(config.admin == nil)
        #expect(config.shutdownGraceSeconds == 30 && config.logLevel == .info)
        #expect(config.sourcePath == nil)
    }

    @Test("a listener without client_encryption needs tls: the default modes need a certificate")
    func defaultModesNeedTLS() {
        let yaml = minimal().replacingOccurrences(of: "    client_encryption: [plaintext]\n", with: "")
        let problems = ConfigTestSupport.problems(yaml)
        #expect(problems.count == 1, "\(problems.listing)")
        #expect(problems.message(at: "listeners.main.tls")?.hasPrefix("is required: client_encryption defaults to [required, strict]") == true)
    }

    @Test("tls files resolve against the base directory; a single mode may be written without brackets")
    func tlsAndModes() throws {
        let dir = try ConfigTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ConfigTestSupport.write(ConfigTestSupport.certificatePEM, to: "\(dir)/tls/cert.pem")
        try ConfigTestSupport.write(ConfigTestSupport.keyPEM, to: "\(dir)/tls/key.pem")
        let yaml = minimal(listener: """
              - name: tls
                port: 0
                tls: {certificate: tls/cert.pem, key: ./tls/../tls/key.pem}
                client_encryption: strict
                entra: {tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47}
            """)
        let config = try GatewayConfig.parse(yaml: yaml, baseDirectory: dir)
        let listener = try #require(config.listener(named: "tls"))
        #expect(listener.tls == TLSFilesConfig(certificate: "\(dir)/tls/cert.pem", key: "\(dir)/tls/key.pem"))
        #expect(listener.clientEncryption == [.strict] && listener.port == 0)
        let entra = try #require(listener.entra)
        #expect(entra.issuers == EntraListenerConfig.defaultIssuers(tenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47"))
        #expect(entra.jwksURL == EntraListenerConfig.defaultJWKSURL(tenantID: "72f988bf-86f1-41af-91ab-2d7cd011db47"))
        #expect(entra.audiences == EntraListenerConfig.defaultAudiences && entra.clockSkewSeconds == 300)
    }

    @Test("endpoints sharing a host get host:port names; a merge key fills in defaults")
    func endpointNamesAndMerge() throws {
        let yaml = minimal(listener: "    cluster: orders", cluster: """
              - name: emu
                databases: ["*"]
                endpoints:
                  - &node {host: 127.0.0.1, port: 14331, tls_name: localhost, role: primary}
                  - {<<: *node, port: 14332, role: replica}
            """)
        let config = try #require(ConfigTestSupport.parse(yaml))
        let emu = try #require(config.cluster(named: "emu"))
        #expect(emu.databases.isEmpty)
        #expect(emu.endpoints == [
            EndpointConfig(name: "127.0.0.1:14331", host: "127.0.0.1", port: 14331, tlsName: "localhost", role: .primary),
            EndpointConfig(name: "127.0.0.1:14332", host: "127.0.0.1", port: 14332, tlsName: "localhost", role: .replica),
        ])
        #expect(emu.endpoint(named: "127.0.0.1:14332")?.role == .replica)
    }

    @Test("yes/no booleans, underscores in numbers, log levels without case")
    func scalars() throws {
        let yaml = minimal(cluster: "    strict: yes\n    connect_timeout_ms: 2_500", extra: "shutdown_grace_seconds: 0\nlog_level: DEBUG")
        let config = try #require(ConfigTestSupport.parse(yaml))
        #expect(config.clusters[0].strict && config.clusters[0].connectTimeoutMs == 2_500)
        #expect(config.shutdownGraceSeconds == 0 && config.logLevel == .debug)
    }

    @Test("service principal and workload identity keys are read")
    func identities() throws {
        let yaml = minimal(identity: """
              - name: sp
                kind: service_principal
                tenant_id: contoso.onmicrosoft.com
                client_id: 6d0c4a4e-1b8a-4c43-9b9e-3f1f6f1c0a03
                client_secret: not-for-production
                authority_host: http://127.0.0.1:8080
                resource: https://database.usgovcloudapi.net/
              - name: wi
                kind: workload_identity
              - name: user-mi
                kind: app_service
                resource_id: /subscriptions/x/resourcegroups/y/providers/Microsoft.ManagedIdentity/userAssignedIdentities/z
                endpoint: http://127.0.0.1:41000/msi/token
            """)
        let config = try #require(ConfigTestSupport.parse(yaml))
        let sp = try #require(config.backendIdentity(named: "sp")?.spec)
        #expect(sp.kind == .servicePrincipal && sp.clientSecret == "not-for-production" && sp.tenantID == "contoso.onmicrosoft.com")
        #expect(sp.authorityHost == "http://127.0.0.1:8080" && sp.resource == "https://database.usgovcloudapi.net/")
        #expect(config.backendIdentity(named: "wi")?.spec.kind == .workloadIdentity)
        #expect(config.backendIdentity(named: "user-mi")?.spec.endpoint == "http://127.0.0.1:41000/msi/token")
    }

    @Test("a policy database outside every cluster allow-list is reported")
    func unreachableDatabase() {
        let yaml = minimal(cluster: "    databases: [appdb]", rule: """
              - name: other
                match: {upn: alice@contoso.example}
                clusters: [orders]
                databases: [AppDB, salesdb]
                backend_identity: mi
            """)
        let problems = ConfigTestSupport.problems(yaml)
        #expect(problems.unlocated == [ConfigProblem(path: "policy.other.databases[1]", message: "database 'salesdb' is not in the databases of cluster orders")])
    }
}

@Suite("Config: problems")
struct ConfigProblemTests {
    @Test("a config with many mistakes reports each one at its path")
    func manyMistakes() {
        let yaml = """
            listeners:
              - name: main
                port: 70000
                client_encryption: [requried, login_only]
                cluster: ordres
                tag_sesions: true
              - name: main
                address: "[::1]"
              - address: 127.0.0.1
                port: abc
                client_encryption: [plaintext]
            clusters:
              - name: orders
                databse: [appdb]
                connect_timeout_ms: 0
                endpoints:
                  - {name: gw, host: db.example.net}
                  - {name: gw2, host: ""}
                  - {host: "db.example.net,1433"}
                  - {name: gw, host: db.example.net, port: 1433, role: leader}
              - name: empty
                endpoints: []
            backend_identities:
              - name: mi
                kind: imsd
              - name: mi2
                kind: imds
                client_id: 6d0c4a4e-1b8a-4c43-9b9e-3f1f6f1c0a01
                object_id: not-a-guid
                tenant_id: 72f988bf-86f1-41af-91ab-2d7cd011db47
              - name: sp
                kind: service_principal
                client_id: 6d0c4a4e-1b8a-4c43-9b9e-3f1f6f1c0a03
              - name: static
                kind: static_file
            logins:
              - {name: app, password_hash: "md5$abc"}
              - {name: APP, password_hash: "\(hash)"}
              - {name: weak, password_hash: "pbkdf2-sha256$1000$dGRzZ2F0ZS1leGFtcGxlIQ==$Lcwh+mRHzsBknBBr89/thTX+Gkgn+E0s4wpm1u+VSfQ="}
            policy:
              - name: app-rw
                match: {login: ap, groups: x}
                clusters: [orders, nowhere]
                backend_identity: proxy-mi
              - name: no-match
                clusters: "*"
                backend_identity: mi
                write: maybe
            throttle: {max_failures: 0}
            admin: {address: 0.0.0.0, port: 9090}
            log_level: verbose
            listners: []
            """
        let problems = ConfigTestSupport.problems(yaml)
        let expected: [(String, String)] = [
            ("listeners.main.port", "must be between 0 and 65535, found 70000"),
            ("listeners.main.client_encryption[0]", "unknown value 'requried' (did you mean 'required'?)"),
            ("listeners.main.client_encryption", "login_only needs a certificate: add listeners.main.tls or allow only plaintext"),
            ("listeners.main.cluster", "unknown cluster 'ordres' (did you mean 'orders'?)"),
            ("listeners.main.tag_sesions", "unknown key (did you mean 'tag_sessions'?)"),
            ("listeners[1].name", "duplicate listener name 'main' (also listeners.main)"),
            ("listeners[1].address", "write IPv6 addresses without brackets"),
            ("listeners[1].tls", "is required: client_encryption defaults to [required, strict], which need a certificate (set client_encryption: [plaintext] for a listener without TLS)"),
            ("listeners[2].name", "is required"),
            ("listeners[1].cluster", "is required when there is more than one cluster (without it every login on this listener is refused)"),
            ("listeners[2].port", "expected a whole number between 0 and 65535, found 'abc'"),
            ("listeners[2].cluster", "is required when there is more than one cluster (without it every login on this listener is refused)"),
            ("clusters.orders.databse", "unknown key (did you mean 'databases'?)"),
            ("clusters.orders.connect_timeout_ms", "must be between 1 and 600000, found 0"),
            ("clusters.orders.endpoints[1].host", "must not be empty"),
            ("clusters.orders.endpoints[2].host", "expected a host name or IP address without a port (use the port key)"),
            ("clusters.orders.endpoints[3].role", "unknown value 'leader' (expected one of: primary, replica, auto)"),
            ("clusters.orders.endpoints[3]", "same host and port as clusters.orders.endpoints[0]"),
            ("clusters.orders.endpoints[3].name", "duplicate endpoint name 'gw' (also clusters.orders.endpoints[0])"),
            ("clusters.empty.endpoints", "must list at least one endpoint"),
            ("backend_identities.mi.kind", "unknown kind 'imsd' (did you mean 'imds'?)"),
            ("backend_identities.mi2.tenant_id", "is not used by kind imds (it uses: endpoint, client_id, object_id, resource_id)"),
            ("backend_identities.mi2.object_id", "must be the identity's object (principal) ID, a GUID"),
            ("backend_identities.mi2", "give at most one of client_id, object_id, resource_id (found client_id, object_id)"),
            ("backend_identities.sp.tenant_id", "is required for kind service_principal"),
            ("backend_identities.sp", "kind service_principal needs one of client_secret_file, client_secret, certificate_file"),
            ("backend_identities.static.token_file", "is required for kind static_file"),
            ("logins[1].name", "duplicate login name 'APP' (also logins.app)"),
            ("logins.weak.password_hash", "the iteration count must be at least 100000"),
            ("policy.app-rw.match.groups", "unknown key (did you mean 'group'?)"),
            ("policy.app-rw.match.login", "unknown login 'ap' (did you mean 'app'?)"),
            ("policy.app-rw.clusters[1]", "unknown cluster 'nowhere' (expected one of: empty, orders)"),
            ("policy.app-rw.backend_identity", "unknown backend identity 'proxy-mi' (expected one of: mi, mi2, sp, static)"),
            ("policy.no-match.match", "is required (write `match: any` for a rule that matches every principal)"),
            ("policy.no-match.write", "expected true or false, found 'maybe'"),
            ("throttle.max_failures", "must be between 1 and 1000000, found 0"),
            ("admin.bearer_token_file", "is required when admin.address is not a loopback address"),
            ("log_level", "unknown level 'verbose' (expected one of: trace, debug, info, notice, warning, error, critical)"),
            ("listners", "unknown key (did you mean 'listeners'?)"),
        ]
        for (path, message) in expected {
            #expect(problems.has(path, message), "missing \(path): \(message)\nall:\n\(problems.listing)")
        }
        #expect(problems.message(at: "logins.app.password_hash")?.hasPrefix("must have the form pbkdf2-sha256$") == true)
        #expect(problems.count == expected.count + 1, "\(problems.listing)")
    }

    @Test("missing sections, wrong shapes and an empty file")
    func shapes() {
        #expect(ConfigTestSupport.problems("").unlocated == [ConfigProblem(path: "(root)", message: "the configuration is empty (expected listeners, clusters, backend_identities, logins, logins_file, policy, throttle, login_cache_seconds, admin, audit, dump, shutdown_grace_seconds, log_level)")])
        #expect(ConfigTestSupport.problems("- a\n- b").unlocated == [ConfigProblem(path: "", message: "expected a mapping, found a list")])
        let problems = ConfigTestSupport.problems("listeners: {main: {}}\nclusters: [orders]\nadmin: 9090")
        #expect(problems.message(at: "listeners") == "expected a list of listeners, found a mapping")
        #expect(problems.message(at: "clusters[0]") == "expected a mapping (a cluster), found a single value")
        #expect(problems.message(at: "admin") == "expected a mapping, found a single value")
        #expect(problems.message(at: "policy") == "is required (without rules every login is refused)")
    }

    @Test("YAML syntax errors give line and column")
    func syntaxError() {
        let problems = ConfigTestSupport.problems("listeners:\n  - name: main\n    port: [1433\nclusters: []\n")
        #expect(problems.count == 1)
        let problem = problems.first
        // libyaml notices the unclosed list where the next line starts.
        #expect(problem?.path == "" && problem?.location == ConfigLocation(line: 4, column: 9), "\(problems.listing)")
        #expect(problem?.message.hasPrefix("YAML syntax error: ") == true)
        #expect(problem?.description.hasPrefix("4:9: YAML syntax error: ") == true, "\(problems.listing)")

        let duplicate = ConfigTestSupport.problems("log_level: info\nlog_level: debug\n")
        #expect(duplicate.count == 1 && duplicate.first?.message == "YAML syntax error: duplicate key 'log_level' in one mapping", "\(duplicate.listing)")
        #expect(duplicate.first?.path == "" && duplicate.first?.location != nil)
    }

    @Test("files that do not exist, are folders, or hold the wrong thing")
    func files() throws {
        let dir = try ConfigTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ConfigTestSupport.write("not a certificate", to: "\(dir)/cert.pem")
        try ConfigTestSupport.write(ConfigTestSupport.certificatePEM, to: "\(dir)/key.pem")
        try ConfigTestSupport.write("", to: "\(dir)/token")
        let yaml = minimal(listener: """
              - name: tls
                port: 1434
                tls: {certificate: cert.pem, key: key.pem}
            """, cluster: "    ca_file: missing-ca.pem", extra: "admin: {address: 10.1.2.3, bearer_token_file: token}\nlogins_file: \(dir)")
        let problems = ConfigTestSupport.problems(yaml, baseDirectory: dir)
        #expect(problems.message(at: "listeners.tls.tls.certificate") == "no PEM certificate (-----BEGIN CERTIFICATE-----) in \(dir)/cert.pem")
        #expect(problems.message(at: "listeners.tls.tls.key") == "no PEM private key (-----BEGIN ... PRIVATE KEY-----) in \(dir)/key.pem")
        #expect(problems.message(at: "clusters.orders.ca_file") == "file does not exist: \(dir)/missing-ca.pem")
        #expect(problems.message(at: "admin.bearer_token_file") == "file is empty: \(dir)/token")
        #expect(problems.message(at: "logins_file") == "is a folder, not a file: \(dir)")
        #expect(problems.count == 5, "\(problems.listing)")
        // The same text passes when file checks are off.
        #expect(ConfigTestSupport.problems(yaml, baseDirectory: dir, checkFiles: false).isEmpty)
    }

    @Test("a config file that cannot be read is one problem at its path")
    func unreadableConfig() {
        do {
            _ = try GatewayConfig.load(path: "/nonexistent/tdsgate.yaml")
            Issue.record("expected an error")
        } catch {
            #expect(error.problems == [ConfigProblem(path: "/nonexistent/tdsgate.yaml", message: "file does not exist: /nonexistent/tdsgate.yaml")])
        }
    }

    @Test("entra needs issuers and keys when no tenant is given; not both jwks sources")
    func entra() {
        let yaml = minimal(listener: """
              - name: e1
                port: 1501
                client_encryption: [plaintext]
                entra: {audiences: []}
              - name: e2
                port: 1502
                client_encryption: [plaintext]
                entra: {tenant_id: contoso, issuers: [x], jwks_url: "http://login.example/keys", jwks_file: /none, clock_skew_seconds: -1}
            """)
        let problems = ConfigTestSupport.problems(yaml, checkFiles: false)
        #expect(problems.message(at: "listeners.e1.entra.issuers") == "is required when tenant_id is not given")
        #expect(problems.message(at: "listeners.e1.entra.audiences") == "must list at least one audience")
        #expect(problems.message(at: "listeners.e1.entra.jwks_url") == "is required when tenant_id is not given (or give jwks_file)")
        #expect(problems.message(at: "listeners.e2.entra.tenant_id")?.hasPrefix("must be a tenant ID") == true)
        #expect(problems.message(at: "listeners.e2.entra.jwks_url") == "must be an https URL (http only for loopback addresses)")
        #expect(problems.message(at: "listeners.e2.entra") == "give jwks_url or jwks_file, not both")
        #expect(problems.message(at: "listeners.e2.entra.clock_skew_seconds") == "must be between 0 and 3600, found -1")
        #expect(problems.count == 7, "\(problems.listing)")
    }

    @Test("listeners and admin may not share an address and port")
    func bindClashes() {
        let yaml = minimal(listener: """
              - name: all
                address: 0.0.0.0
                client_encryption: [plaintext]
            """, extra: "admin: {port: 1433}")
        let problems = ConfigTestSupport.problems(yaml)
        #expect(problems.unlocated == [
            ConfigProblem(path: "listeners.all.port", message: "address and port already used by listeners.main"),
            ConfigProblem(path: "admin.port", message: "address and port already used by listeners.main"),
        ], "\(problems.listing)")
    }
}

@Suite("Config: logins")
struct ConfigLoginTests {
    @Test("logins_file is merged after logins, relative to the config's folder, in list or mapping form")
    func loginsFileMerge() throws {
        let dir = try ConfigTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ConfigTestSupport.write("- {name: reporting, password_hash: \"\(hash)\"}\n- {name: etl, password_hash: \"\(hash)\"}\n", to: "\(dir)/conf/logins.yaml")
        try ConfigTestSupport.write("logins:\n  - {name: ops, password_hash: \"\(hash)\"}\n", to: "\(dir)/conf/more.yaml")
        let yaml = minimal(extra: "logins:\n  - {name: app, password_hash: \"\(hash)\"}\nlogins_file: logins.yaml")
        try ConfigTestSupport.write(yaml, to: "\(dir)/conf/tdsgate.yaml")
        let config = try GatewayConfig.load(path: "\(dir)/conf/tdsgate.yaml")
        #expect(config.logins.map(\.name) == ["app", "reporting", "etl"])
        #expect(config.loginsFile == "\(dir)/conf/logins.yaml")

        let second = try GatewayConfig.parse(yaml: minimal(extra: "logins_file: more.yaml"), baseDirectory: "\(dir)/conf")
        #expect(second.logins == [LoginConfig(name: "ops", passwordHash: hash)])
        #expect(try GatewayConfig.loadLogins(path: "\(dir)/conf/logins.yaml").count == 2)
    }

    @Test("problems inside logins_file are reported under logins_file, duplicates across both lists too")
    func loginsFileProblems() throws {
        let dir = try ConfigTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try ConfigTestSupport.write("- {name: App, password_hash: \"\(hash)\"}\n- {name: x, password: hunter2}\n", to: "\(dir)/logins.yaml")
        try ConfigTestSupport.write("- {name: a\n", to: "\(dir)/broken.yaml")
        let yaml = minimal(extra: "logins:\n  - {name: app, password_hash: \"\(hash)\"}\nlogins_file: logins.yaml")
        let problems = ConfigTestSupport.problems(yaml, baseDirectory: dir)
        #expect(problems.message(at: "logins_file[0].name") == "duplicate login name 'App' (also logins.app)")
        #expect(problems.message(at: "logins_file.x.password")?.hasPrefix("plaintext passwords are not accepted") == true)
        #expect(problems.message(at: "logins_file.x.password_hash") == "is required")
        #expect(problems.count == 3, "\(problems.listing)")
        #expect(!problems.listing.contains("hunter2"))

        let broken = ConfigTestSupport.problems(minimal(extra: "logins_file: broken.yaml"), baseDirectory: dir)
        #expect(broken.count == 1 && broken.first?.path == "logins_file", "\(broken.listing)")
        #expect(broken.first?.message.hasPrefix("YAML syntax error: ") == true)
        #expect(broken.first?.location?.file == "\(dir)/broken.yaml" && broken.first?.location?.line == 2, "\(broken.listing)")
    }
}

@Suite("Config: secrets")
struct ConfigSecretTests {
    @Test("secret values never appear in problem messages")
    func secretsStayOut() {
        let secret = "Sup3r-S3cret-Value"
        let yaml = """
            listeners: [{name: main, client_encryption: [plaintext]}]
            clusters: [{name: c, endpoints: [{host: h.example}]}]
            backend_identities:
              - {name: a, kind: imds, client_secret: \(secret)}
              - {name: b, kind: service_principal, tenant_id: t.example, client_id: 6d0c4a4e-1b8a-4c43-9b9e-3f1f6f1c0a03, client_secret: [\(secret)], client_secret_file: x}
              - {name: c, kind: service_principal, tenant_id: t.example, client_id: 6d0c4a4e-1b8a-4c43-9b9e-3f1f6f1c0a03, client_secret: ""}
              - {name: d, kind: auto, client_secret:\(secret)}
            logins:
              - {name: u1, password_hash: \(secret)}
              - {name: u2, password_hash: "pbkdf2-sha256$1000$\(secret)$\(secret)"}
              - {name: u3, password_hash: "pbkdf2-sha256$600000$\(secret)=$\(secret)"}
              - {name: u4, password_hash: {value: \(secret)}}
              - {\(secret): x, name: u5, password_hash: "\(hash)"}
            policy: [{name: p, match: any, clusters: ["*"], backend_identity: a}]
            """
        let problems = ConfigTestSupport.problems(yaml, checkFiles: false)
        #expect(problems.count >= 8, "\(problems.listing)")
        #expect(problems.message(at: "backend_identities.a.client_secret")?.hasPrefix("is not used by kind imds") == true)
        #expect(problems.message(at: "backend_identities.b.client_secret") == "expected a single value, found a list")
        #expect(problems.message(at: "backend_identities.c.client_secret") == "must not be empty")
        #expect(problems.message(at: "logins.u4.password_hash") == "expected a single value, found a mapping")
        #expect(problems.message(at: "backend_identities.d") == "a key is not a plain name (missing space after ':'? write `key: value`)")
        for problem in problems {
            #expect(!problem.message.contains(secret) && !problem.message.lowercased().contains("s3cret"), "\(problem)")
        }
        // A syntax error on a line holding a secret does not quote the line.
        let broken = ConfigTestSupport.problems("backend_identities:\n  - {name: a, client_secret: \"\(secret)\n")
        #expect(broken.count == 1 && !broken.listing.contains(secret), "\(broken.listing)")
        // A login prints without its hash.
        #expect(!"\(LoginConfig(name: "app", passwordHash: hash))".contains("pbkdf2"))
    }
}
