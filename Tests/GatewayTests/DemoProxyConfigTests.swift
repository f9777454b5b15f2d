import AzureEmulator
import Foundation
import Gateway
import Testing

@Suite("The demo proxy's config: Configs/demo.yaml, the failover group, the placeholders")
struct DemoProxyConfigTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The demo deployment's nodes with made-up ports, as the emulator describes them.
    static func description() throws -> [String: Any] {
        let config = try EmulatorConfig.load(yaml: DemoDeployment.yaml)
        var port = 40_000
        let nodes: [[String: Any]] = config.servers.flatMap(\.nodes).map { node in
            port += 1
            return ["name": node.name, "port": port]
        }
        return ["nodes": nodes, "tenant_id": config.tenant.id, "jwks_url": "http://127.0.0.1:1/keys",
                "imds_url": "http://127.0.0.1:1/metadata/identity/oauth2/token", "control_url": "http://127.0.0.1:1"]
    }

    @Test func theFileIsTheCompiledText() throws {
        let text = try String(contentsOf: Self.root.appendingPathComponent("Configs/demo.yaml"), encoding: .utf8)
        #expect(text == DemoProxyConfig.yaml + "\n" || text == DemoProxyConfig.yaml)
    }

    @Test func renderedItIsAFailoverGroupWithProbes() throws {
        var values = try DemoProxyConfig.emulatorValues(Self.description())
        values["PROXY_PORT"] = "1433"
        values["ADMIN_PORT"] = "9090"
        values["STATE_DIR"] = "/nonexistent"
        values["APP_USER_HASH"] = PasswordHashForTests.hash
        values["REPORT_USER_HASH"] = PasswordHashForTests.hash
        let text = DemoProxyConfig.render(values)
        #expect(text.range(of: #"\$\{[A-Z_]+\}"#, options: .regularExpression) == nil, "a placeholder is left: \(text)")
        let config = try GatewayConfig.parse(yaml: text, baseDirectory: "/", checkFiles: false)
        let cluster = try #require(config.clusters.first)
        #expect(cluster.endpoints.map(\.name) == ["east", "east-replica", "west"])
        #expect(cluster.endpoints.map(\.port) == [40_002, 40_003, 40_005], "east-primary, east-replica, west-primary of the demo deployment")
        #expect(cluster.endpoints.map(\.geo) == [true, false, true])
        #expect(cluster.endpoints[1].role == .replica)
        #expect(cluster.probe?.identity == "proxy-mi")
        let group = try #require(cluster.failoverGroup)
        #expect(group.name == "fog-app" && group.servers == ["sqlemu-east", "sqlemu-west"] && group.armURL == "http://127.0.0.1:1")
        #expect(config.admin?.port == 9090)
        #expect(config.listeners.first?.port == 1433)
    }

    @Test func aMissingNodeIsNamed() throws {
        var description = try Self.description()
        description["nodes"] = (description["nodes"] as? [[String: Any]])?.filter { ($0["name"] as? String) != "west-primary" }
        #expect {
            _ = try DemoProxyConfig.emulatorValues(description)
        } throws: { error in
            "\(error)".contains("no node 'west-primary'")
        }
    }
}

/// A hash of the right form (of no password in particular), for configs that must parse.
enum PasswordHashForTests {
    static let hash = "pbkdf2-sha256$100000$c2FsdHNhbHRzYWx0c2FsdA==$" + Data(repeating: 7, count: 32).base64EncodedString()
}
