import Foundation
import NIOCore
import Testing
import TDS
@testable import AzureEmulator

struct FakeVerifier: NodeTokenVerifying {
    func verifyAccessToken(_ token: String) throws -> (principal: String, aliases: [String]) {
        guard token == "good-token" else { throw EmulatorConfigError("signature does not verify") }
        return ("app-id@tenant", ["app-id"])
    }
    var stsURL: String { "http://127.0.0.1/tenant/" }
}

func demoDeployment() throws -> DeploymentState {
    var cfg = try EmulatorConfig.load(yaml: DemoDeployment.yaml)
    try cfg.resolvePorts(base: 30_000)
    return DeploymentState(config: cfg)
}

func session(_ d: DeploymentState, node: String) -> NodeSession {
    let (server, n) = d.node(named: node)!
    let env = NodeEnvironment(deployment: d, server: server, node: n, tlsAvailable: n.encryption != .notSupported,
                              tlsHost: "localhost", verifier: FakeVerifier(), log: { _ in })
    return NodeSession(env: env, spid: 60, clientAddress: "127.0.0.1:1")
}

func preloginMessage(_ enc: PreloginEncryption, fedAuth: Bool = false) -> TDSMessage {
    var p = PreloginMessage()
    p.version = PreloginVersion(major: 18, minor: 0, build: 0)
    p.encryption = enc
    p.threadID = 1
    p.mars = false
    if fedAuth { p.fedAuthRequired = 1 }
    var b = ByteBuffer()
    p.write(into: &b)
    return TDSMessage(type: .prelogin, payload: b)
}

func loginMessage(user: String = "app", password: String = "App-Passw0rd!", readOnly: Bool = false, fedAuth: Login7FedAuth? = nil) -> TDSMessage {
    var l = Login7(tdsVersion: 0x7400_0004, packetSize: 4096, clientProgramVersion: 0, clientPID: 1, connectionID: 0,
                   optionFlags1: 0xE0, optionFlags2: 0x03, typeFlags: 0, optionFlags3: 0, clientTimeZone: 0, clientLCID: 0x409,
                   hostName: "h", userName: fedAuth == nil ? user : "", password: fedAuth == nil ? password : "", appName: "tests",
                   serverName: "localhost", clientInterfaceName: "t", language: "", database: "appdb", attachDBFile: "",
                   changePassword: "", clientID: [0, 0, 0, 0, 0, 0], sspi: [], features: [])
    l.readOnlyIntent = readOnly
    if let fedAuth {
        l.optionFlags3 |= 0x10
        l.features = [Login7Feature(id: Login7Feature.fedAuth, data: fedAuth.featureData)]
    }
    var b = ByteBuffer()
    l.write(into: &b)
    return TDSMessage(type: .login7, payload: b)
}

/// Token bytes of every write in the actions, parsed.
func tokens(_ actions: [NodeAction]) throws -> [TDSToken] {
    var all: [TDSToken] = []
    var stream = ByteBuffer()
    for a in actions {
        switch a {
        case .write(var b):
            while let p = try TDSPacket.read(from: &b, maxPacketSize: 65_536) {
                var payload = p.payload
                stream.writeBuffer(&payload)
            }
        case .replyTokens(var b):
            stream.writeBuffer(&b)
        default: break
        }
    }
    var parser = TDSTokenParser()
    all = try parser.parse(&stream)
    return all
}

func preloginAnswer(_ actions: [NodeAction]) throws -> PreloginMessage {
    guard case .write(var b) = actions.first, let p = try TDSPacket.read(from: &b, maxPacketSize: 4096) else {
        throw EmulatorConfigError("no PRELOGIN reply")
    }
    return try PreloginMessage(parsing: p.payload)
}

@Suite struct NodeSessionTests {
    @Test(arguments: [
        ("east-primary", PreloginEncryption.off, PreloginEncryption.required, true, false),
        ("east-primary", .on, .required, true, false),
        ("compat-loginonly", .off, .off, true, true),
        ("compat-loginonly", .on, .on, true, false),
        ("compat-loginonly", .notSupported, .notSupported, false, false),
        ("plain-primary", .off, .notSupported, false, false),
    ])
    func encryptionNegotiatesLikeSQLServer(node: String, client: PreloginEncryption, expected: PreloginEncryption, tls: Bool, loginOnly: Bool) throws {
        let d = try demoDeployment()
        var s = session(d, node: node)
        let actions = s.receive(preloginMessage(client))
        #expect(try preloginAnswer(actions).encryption == expected)
        let started = actions.contains { if case .startTLS(let lo) = $0 { return lo == loginOnly } else { return false } }
        #expect(started == tls)
    }

    @Test func forcedEncryptionRefusesClientsWithoutTLS() throws {
        var s = session(try demoDeployment(), node: "east-primary")
        let actions = s.receive(preloginMessage(.notSupported))
        #expect(actions.contains { if case .close = $0 { return true } else { return false } })
    }

    @Test func sqlLoginAndWrongPassword() throws {
        let d = try demoDeployment()
        var s = session(d, node: "plain-primary")
        _ = s.receive(preloginMessage(.off))
        let ok = try tokens(s.receive(loginMessage()))
        #expect(ok.contains { if case .loginAck = $0 { return true } else { return false } })
        #expect(s.phase == .loggedIn)

        var bad = session(d, node: "plain-primary")
        _ = bad.receive(preloginMessage(.off))
        let refused = try tokens(bad.receive(loginMessage(password: "nope")))
        #expect(refused.contains { if case .error(let m) = $0 { return m.number == 18456 && m.severity == 14 } else { return false } })
    }

    @Test func gatewayRedirectsReadOnlyToTheReplica() throws {
        let d = try demoDeployment()
        var s = session(d, node: "east-gateway")
        _ = s.receive(preloginMessage(.on))
        let reply = try tokens(s.receive(loginMessage(readOnly: true)))
        let replicaPort = d.node(named: "east-replica")!.1.port
        #expect(reply.contains { if case .envChange(.routing(_, let port, let host)) = $0 { return Int(port) == replicaPort && host == "localhost" } else { return false } })
        // Routing comes before FEATUREEXTACK/DONE, after LOGINACK.
        let names = reply.map(\.name)
        #expect(names.firstIndex(of: "LOGINACK")! < names.firstIndex(of: "ENVCHANGE", after: names.firstIndex(of: "LOGINACK")!)!)
    }

    @Test func tokensAndTheMSALWorkflow() throws {
        let d = try demoDeployment()
        var s = session(d, node: "east-primary")
        _ = s.receive(preloginMessage(.on, fedAuth: true))
        let ok = try tokens(s.receive(loginMessage(fedAuth: .securityToken(token: "good-token", echo: true, nonce: nil))))
        #expect(ok.contains { if case .featureExtAck(let acks) = $0 { return acks.contains { $0.id == Login7Feature.fedAuth } } else { return false } })

        var forged = session(d, node: "east-primary")
        _ = forged.receive(preloginMessage(.on, fedAuth: true))
        let no = try tokens(forged.receive(loginMessage(fedAuth: .securityToken(token: "forged", echo: true, nonce: nil))))
        #expect(no.contains { if case .error(let m) = $0 { return m.number == 18456 } else { return false } })

        var msal = session(d, node: "east-primary")
        _ = msal.receive(preloginMessage(.on, fedAuth: true))
        let info = try tokens(msal.receive(loginMessage(fedAuth: .msal(workflow: 3, echo: true))))
        #expect(info.contains { if case .fedAuthInfo(let i) = $0 { return i.spn == "https://database.windows.net/" } else { return false } })
        var body = ByteBuffer()
        FedAuthTokenMessage(token: "good-token", nonce: nil).write(into: &body)
        let done = try tokens(msal.receive(TDSMessage(type: .federatedAuthToken, payload: body)))
        #expect(done.contains { if case .loginAck = $0 { return true } else { return false } })
    }

    @Test func injectedLoginFaultsFireThenStop() throws {
        let d = try demoDeployment()
        d.injectLoginFault(LoginFault(node: "plain-primary", number: 40613, remaining: 2))
        for expectFault in [true, true, false] {
            var s = session(d, node: "plain-primary")
            _ = s.receive(preloginMessage(.off))
            let t = try tokens(s.receive(loginMessage()))
            #expect(t.contains { if case .error(let m) = $0 { return m.number == 40613 } else { return false } } == expectFault)
        }
    }

    @Test func malformedMessagesGetATDSErrorAndClose() throws {
        var s = session(try demoDeployment(), node: "plain-primary")
        let actions = s.receive(TDSMessage(type: .prelogin, payload: ByteBuffer(bytes: [0x00, 0x00, 0x40, 0xFF, 0xFF])))
        #expect(try tokens(actions).contains { if case .error(let m) = $0 { return m.number == 4002 } else { return false } })
        #expect(actions.contains { if case .close = $0 { return true } else { return false } })
    }
}

@Suite struct DeploymentTests {
    @Test func writesReplicateAndPlannedFailoverKeepsThem() throws {
        let d = try demoDeployment()
        let primary = NodeDataAccess(deployment: d, node: "east-primary", server: "sqlemu-east")
        var ctx = makeContext()
        _ = SQLExecutor.run("CREATE TABLE kv (k int PRIMARY KEY, v int); INSERT INTO kv VALUES (1, 10)", context: &ctx, data: primary)
        #expect(d.snapshot(node: "west-primary", database: "appdb")?.table("kv")?.rows.count == 1)
        #expect(d.snapshot(node: "east-replica", database: "appdb")?.table("kv")?.rows.count == 1)

        d.setLag(node: "west-primary", milliseconds: 60_000)
        _ = SQLExecutor.run("INSERT INTO kv VALUES (2, 20)", context: &ctx, data: primary)
        #expect(d.snapshot(node: "west-primary", database: "appdb")?.table("kv")?.rows.count == 1, "lagging replica has not seen it yet")
        try d.failover(group: "fog-app", allowDataLoss: false)
        #expect(d.isWritable(node: "west-primary"))
        #expect(!d.isWritable(node: "east-primary"))
        #expect(d.snapshot(node: "west-primary", database: "appdb")?.table("kv")?.rows.count == 2, "planned failover waits for replication")
        #expect(throws: SQLError.self) { try primary.commit(database: "appdb", changes: [.delete(table: "kv", conditions: [])]) }
    }

    @Test func forcedFailoverLosesUnreplicatedWrites() throws {
        let d = try demoDeployment()
        let primary = NodeDataAccess(deployment: d, node: "east-primary", server: "sqlemu-east")
        var ctx = makeContext()
        _ = SQLExecutor.run("CREATE TABLE kv (k int PRIMARY KEY)", context: &ctx, data: primary)
        d.setLag(node: "west-primary", milliseconds: 60_000)
        _ = SQLExecutor.run("INSERT INTO kv VALUES (1)", context: &ctx, data: primary)
        try d.failover(group: "fog-app", allowDataLoss: true)
        #expect(d.snapshot(node: "west-primary", database: "appdb")?.table("kv")?.rows.isEmpty == true)
        #expect(d.snapshot(node: "east-primary", database: "appdb")?.table("kv")?.rows.isEmpty == true, "old primary is re-seeded from the new one")
    }

    @Test func exampleConfigIsTheDemoDeployment() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let text = try String(contentsOf: root.appendingPathComponent("Configs/emulator.yaml"), encoding: .utf8)
        #expect(text == DemoDeployment.yaml + "\n" || text == DemoDeployment.yaml)
        #expect(throws: EmulatorConfigError.self) {
            _ = try EmulatorConfig.load(yaml: "tenant: {id: t}\nservers:\n  - {name: a, nodes: [{name: n, kind: readable_replica}]}\n")
        }
    }
}

extension Array where Element == String {
    func firstIndex(of s: String, after i: Int) -> Int? {
        self.indices.first { $0 > i && self[$0] == s }
    }
}
