import Audit
import Foundation
import Gateway
import Identity
import Kerberos
import Routing
import Testing

@Suite("Config: the example file")
struct ConfigExampleTests {
    @Test("Configs/tdsgate.yaml has no problem besides files missing on this machine")
    func exampleOnlyMissesFiles() throws {
        let problems = ConfigTestSupport.problems(try ConfigTestSupport.exampleText(), baseDirectory: "/nonexistent-config-dir")
        #expect(problems.allSatisfy { $0.message.hasPrefix("file does not exist: /etc/tdsgate/") }, "\(problems.listing)")
        #expect(Set(problems.map(\.path)) == [
            "listeners.main.tls.certificate", "listeners.main.tls.key", "clusters.orders.ca_file",
            "backend_identities.reporting-sp.client_secret_file", "logins_file", "admin.bearer_token_file",
            "listeners.main.kerberos.keytab",
        ], "\(problems.listing)")
    }

    @Test("the example parses to the values its comments describe")
    func exampleValues() throws {
        let config = try #require(ConfigTestSupport.parse(try ConfigTestSupport.exampleText()))
        #expect(config.listeners.map(\.name) == ["main", "local-legacy"])
        let main = try #require(config.listener(named: "main"))
        #expect(main.address == "0.0.0.0" && main.port == 1433)
        #expect(main.tls == TLSFilesConfig(certificate: "/etc/tdsgate/cert.pem", key: "/etc/tdsgate/key.pem"))
        #expect(main.clientEncryption == [.required, .strict])
        #expect(main.cluster == "orders" && main.tagSessions)
        let entra = try #require(main.entra)
        #expect(entra.tenantID == "11111111-2222-3333-4444-555555555555")
        #expect(entra.issuers.count == 2 && entra.audiences == ["https://database.windows.net/"])
        #expect(entra.jwksURL?.hasSuffix("/discovery/v2.0/keys") == true && entra.jwksFile == nil)
        #expect(entra.clockSkewSeconds == 300)
        #expect(main.kerberos == KerberosListenerConfig(keytab: "/etc/tdsgate/mssqlsvc.keytab", realms: .only(["CORP.EXAMPLE"]),
                                                        nameRules: [KerberosNameRuleConfig(realm: "CORP.EXAMPLE", output: .user, lowercase: true)]))
        #expect(main.loginTimeoutSeconds == 30 && main.maxConnections == 10_000 && main.maxConnectionsPerSource == 200 && main.maxPendingLogins == 1_000)
        #expect(main.proxyProtocol == ProxyProtocolConfig(versions: [.v1, .v2], trustedSources: [try IPNetwork(parsing: "10.0.0.0/24"), try IPNetwork(parsing: "fd00:10::/64")]))
        #expect(!main.sessionContext)
        #expect(config.listener(named: "local-legacy")?.proxyProtocol == nil && config.listener(named: "local-legacy")?.loginTimeoutSeconds == 30)
        #expect(config.listener(named: "local-legacy")?.clientEncryption == [.plaintext])
        #expect(config.listener(named: "local-legacy")?.tls == nil)

        let orders = try #require(config.cluster(named: "orders"))
        #expect(orders.databases == ["appdb"] && orders.caFile == "/etc/tdsgate/azure-ca.pem" && !orders.strict)
        var geo = EndpointConfig(name: "geo", host: "myserver-west.database.windows.net", port: 1433, tlsName: "myserver-west.database.windows.net", role: .replica)
        geo.geo = true
        #expect(orders.endpoints == [
            EndpointConfig(name: "gw", host: "myserver.database.windows.net", port: 1433, tlsName: "myserver.database.windows.net", role: .primary),
            geo,
        ])
        #expect(orders.probe == ProbeConfig(identity: "proxy-mi", database: "appdb", intervalMs: 2000, timeoutMs: 2000, rise: 2, fall: 3))
        #expect(orders.balancing == .roundRobin && orders.readFallbackToPrimary && orders.maxWriteWaitMs == 15_000 && orders.demotion == .afterCurrentRequest)
        #expect(orders.connectionPolicy == .redirect)
        #expect(orders.pool == PoolConfig(mode: .session, maxBackendConnections: 100, minIdle: 0, idleTimeoutSeconds: 300, maxLifetimeSeconds: 3_600, acquireTimeoutMs: 5_000))
        #expect(orders.recoverSessions)
        #expect(orders.routing.map(\.name) == ["reports-off-primary", "read-your-writes"])
        let reports = orders.routing[0]
        #expect(reports.intent == .readOnly && reports.databases == ["appdb"])
        #expect(reports.roles == ["5b7c1d2e-0000-4000-8000-0000000000aa", "report-user"])
        #expect(reports.options == RouteOptions(allowReadOnlyFallbackToPrimary: false, balancing: .leastSessions, readTarget: .replica, replicas: ["geo"]))
        #expect(orders.routing[1].options == RouteOptions(allowReadOnlyFallbackToPrimary: true, balancing: .roundRobin, readTarget: .primary))
        #expect(orders.failoverGroup == FailoverGroupConfig(name: "fog-orders", subscriptionID: "00000000-0000-4000-8000-00000000a001",
                                                           resourceGroup: "rg-orders", servers: ["myserver", "myserver-west"], identity: "proxy-mi"))
        #expect(orders.failoverGroup?.resourcePath(server: "myserver-west")
            == "/subscriptions/00000000-0000-4000-8000-00000000a001/resourceGroups/rg-orders/providers/Microsoft.Sql/servers/myserver-west/failoverGroups/fog-orders")

        #expect(config.backendIdentities.map(\.spec.kind) == [.imds, .servicePrincipal])
        let sp = try #require(config.backendIdentity(named: "reporting-sp")?.spec)
        #expect(sp.clientSecretFile == "/etc/tdsgate/reporting-sp.secret" && sp.clientSecret == nil)
        #expect(sp.resource == "https://database.windows.net/")

        #expect(config.logins.map(\.name) == ["app"])
        #expect(config.loginsFile == "/etc/tdsgate/logins.yaml")
        #expect(config.policy.map(\.name) == ["app-read-write", "domain-users", "analysts"])
        let rules = config.policy.map(\.rule)
        #expect(rules[0].match == [.login("app")] && rules[0].write && rules[0].tagAppName)
        #expect(rules[1].match == [.realm("CORP.EXAMPLE")] && !rules[1].write)
        #expect(rules[2].match == [.group("5b7c1d2e-0000-4000-8000-0000000000aa")] && !rules[2].write)
        #expect(rules[0].sessionContext == true && rules[1].sessionContext == nil && !rules[0].backendIdentityReadOnly && rules[2].backendIdentityReadOnly)
        #expect(config.audit == AuditConfig(destination: .file(path: "/var/log/tdsgate/audit.jsonl", maxBytes: 1 << 30),
                                            statements: false, maskLiterals: true, queueCapacity: 10_000))
        #expect(config.dump == DumpConfig(directory: "/var/lib/tdsgate/dump", enabled: false,
                                          settings: DumpSettings(filter: DumpFilter(principal: "app-user"), formats: [.text, .pcapng]),
                                          maxFileBytes: 64 << 20, maxTotalBytes: 1 << 30, keepRotated: 3, queueBytes: 16 << 20, followLines: 10_000))
        #expect(config.throttle == ThrottleConfig(maxFailures: 5, windowSeconds: 60, blockSeconds: 60))
        #expect(config.loginCacheSeconds == 300)
        #expect(config.admin == AdminConfig(address: "127.0.0.1", port: 9090, bearerTokenFile: "/etc/tdsgate/admin.token"))
        #expect(config.shutdownGraceSeconds == 30 && config.logLevel == .info)
    }

    @Test("the example loads from disk when its files exist; logins_file is merged")
    func exampleLoadsWithFiles() throws {
        let dir = try ConfigTestSupport.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let yaml = try ConfigTestSupport.exampleText().replacingOccurrences(of: "/etc/tdsgate/", with: "\(dir)/files/")
        try ConfigTestSupport.write(yaml, to: "\(dir)/tdsgate.yaml")
        for name in ["cert.pem", "azure-ca.pem"] { try ConfigTestSupport.write(ConfigTestSupport.certificatePEM, to: "\(dir)/files/\(name)") }
        try ConfigTestSupport.write(ConfigTestSupport.keyPEM, to: "\(dir)/files/key.pem")
        try ConfigTestSupport.write("s3cret-from-file\n", to: "\(dir)/files/reporting-sp.secret")
        try ConfigTestSupport.write("token\n", to: "\(dir)/files/admin.token")
        try ConfigTestSupport.write("keytab bytes\n", to: "\(dir)/files/mssqlsvc.keytab")
        try ConfigTestSupport.write("- {name: reporting, password_hash: \"\(ConfigTestSupport.hash)\"}\n", to: "\(dir)/files/logins.yaml")

        let config = try GatewayConfig.load(path: "\(dir)/tdsgate.yaml")
        #expect(config.sourcePath == "\(dir)/tdsgate.yaml")
        #expect(config.logins.map(\.name) == ["app", "reporting"])
        #expect(config.login(named: "REPORTING")?.passwordHash == ConfigTestSupport.hash)
        #expect(config.listener(named: "main")?.tls?.key == "\(dir)/files/key.pem")
    }
}
