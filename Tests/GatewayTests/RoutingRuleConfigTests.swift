import Audit
import Gateway
import Identity
import Kerberos
import Routing
import Testing

@Suite("Config: routing rules and the failover group")
struct RoutingRuleConfigTests {
    static func config(cluster extra: String) -> String {
        """
        listeners: [{name: main, port: 1433, client_encryption: plaintext, cluster: orders}]
        clusters:
          - name: orders
            balancing: lowest_latency
            read_fallback_to_primary: false
            endpoints:
              - {name: east, host: east.example}
              - {name: west, host: west.example, role: replica}
        \(extra)
        backend_identities: [{name: mi, kind: imds}]
        logins: [{name: app, password_hash: "\(ConfigTestSupport.hash)"}]
        policy: [{name: app, match: {login: app}, clusters: [orders], backend_identity: mi}]
        """
    }

    @Test func rulesTakeTheClusterSettingsAsDefaults() throws {
        let yaml = Self.config(cluster: """
            routing:
              - {name: reports, match: {intent: read_only, roles: [Reports.Reader]}, replicas: [west]}
              - {name: etl, match: {databases: [staging]}, read_target: primary, balancing: round_robin, read_fallback_to_primary: true}
        """)
        let rules = try #require(ConfigTestSupport.parse(yaml)).clusters[0].routing
        #expect(rules.count == 2)
        #expect(rules[0].options == RouteOptions(allowReadOnlyFallbackToPrimary: false, balancing: .lowestLatency, replicas: ["west"]))
        #expect(rules[1].options == RouteOptions(allowReadOnlyFallbackToPrimary: true, balancing: .roundRobin, readTarget: .primary))
        let matched = RoutingRules(rules).match(intent: .readOnly, database: "appdb", principalRoles: ["reports.reader"])
        #expect(matched.rule == "reports")
    }

    @Test func mistakesAreReportedAtTheirPath() {
        let problems = ConfigTestSupport.problems(Self.config(cluster: """
            routing:
              - {name: bad, match: {intent: sometimes, colour: blue}, replicas: [north], read_target: anywhere}
            failover_group: {name: fog, servers: [one], identity: nobody, arm_url: "ftp://x"}
        """), checkFiles: false)
        #expect(problems.message(at: "clusters.orders.routing.bad.match.intent") == "unknown intent 'sometimes' (expected one of: read_only, read_write)")
        #expect(problems.message(at: "clusters.orders.routing.bad.match.colour")?.hasPrefix("unknown key") == true)
        #expect(problems.message(at: "clusters.orders.routing.bad.replicas[0]") == "no endpoint named 'north' in this cluster (endpoints: east, west)")
        #expect(problems.message(at: "clusters.orders.routing.bad.read_target") != nil)
        #expect(problems.message(at: "clusters.orders.failover_group.servers") == "must name the failover group's two partner servers")
        #expect(problems.message(at: "clusters.orders.failover_group.subscription_id") != nil)
        #expect(problems.message(at: "clusters.orders.failover_group.arm_url") == "must be an http(s) URL")
        #expect(problems.message(at: "clusters.orders.failover_group.identity") != nil)
    }
}

@Suite("Config: kerberos listeners and the audit trail")
struct KerberosAuditConfigTests {
    @Test func kerberosAndSyslogAuditParse() throws {
        let yaml = """
        listeners:
          - name: main
            port: 1433
            client_encryption: plaintext
            cluster: orders
            kerberos:
              keytab: svc.keytab
              realms: [CORP.EXAMPLE, "*"]
              name_rules: [{pattern: "svc-(.*)@CORP.EXAMPLE", name: "service-$1"}, {name: principal}]
        clusters: [{name: orders, endpoints: [{name: east, host: east.example}]}]
        backend_identities: [{name: mi, kind: imds}]
        policy: [{name: k, match: {kerberos: alice@CORP.EXAMPLE}, clusters: [orders], backend_identity: mi}]
        audit: {syslog: {host: 127.0.0.1, port: 5514, transport: tcp, facility: local3}, statements: true, mask_literals: false}
        """
        let config = try #require(ConfigTestSupport.parse(yaml, baseDirectory: "/etc/tdsgate"))
        let kerberos = try #require(config.listeners[0].kerberos)
        #expect(kerberos.keytab == "/etc/tdsgate/svc.keytab" && kerberos.realms == .anyRealm)
        #expect(kerberos.nameRules == [KerberosNameRuleConfig(pattern: "svc-(.*)@CORP.EXAMPLE", output: .template("service-$1")),
                                      KerberosNameRuleConfig(output: .principal)])
        #expect(try kerberos.acceptorConfig().mapName(user: "svc-etl", realm: "CORP.EXAMPLE") == "service-etl")
        #expect(config.policy[0].rule.match == [.kerberos("alice@CORP.EXAMPLE")])
        #expect(config.audit == AuditConfig(destination: .syslog(SyslogConfiguration(host: "127.0.0.1", port: 5514, transport: .tcp, facility: .local3, appName: "tdsgate")),
                                            statements: true, maskLiterals: false, queueCapacity: 10_000))
    }

    @Test func mistakesAreReportedAtTheirPath() {
        let problems = ConfigTestSupport.problems("""
        listeners:
          - name: main
            port: 1433
            client_encryption: plaintext
            kerberos: {keytab: /nonexistent/svc.keytab, name_rules: [{pattern: "(", name: user}]}
        clusters: [{name: orders, endpoints: [{name: east, host: east.example}]}]
        backend_identities: [{name: mi, kind: imds}]
        policy: [{name: k, match: any, clusters: [orders], backend_identity: mi}]
        audit: {destination: kafka, syslog: {host: h, transport: sctp, facility: mail}}
        """)
        #expect(problems.message(at: "listeners.main.kerberos.keytab")?.hasPrefix("file does not exist") == true)
        #expect(problems.message(at: "listeners.main.kerberos.realms")?.hasPrefix("is required") == true)
        #expect(problems.message(at: "listeners.main.kerberos.name_rules[0].pattern") == "is not a valid regular expression")
        #expect(problems.message(at: "audit.destination") != nil)
    }
}
