import Gateway
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
        #expect(problems.message(at: "clusters.orders.routing.bad.match.intent") == "must be read_only or read_write")
        #expect(problems.message(at: "clusters.orders.routing.bad.match.colour")?.hasPrefix("unknown key") == true)
        #expect(problems.message(at: "clusters.orders.routing.bad.replicas[0]") == "no endpoint named 'north' in this cluster (endpoints: east, west)")
        #expect(problems.message(at: "clusters.orders.routing.bad.read_target") != nil)
        #expect(problems.message(at: "clusters.orders.failover_group.servers") == "must name the failover group's two partner servers")
        #expect(problems.message(at: "clusters.orders.failover_group.subscription_id") != nil)
        #expect(problems.message(at: "clusters.orders.failover_group.arm_url") == "must be an http(s) URL")
        #expect(problems.message(at: "clusters.orders.failover_group.identity") != nil)
    }
}
