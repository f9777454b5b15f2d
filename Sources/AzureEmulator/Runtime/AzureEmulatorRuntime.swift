import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import TDSNIO
import HTTPServerKit

/// A running emulated Azure SQL deployment: one TDS listener per node, the Entra/IMDS/ARM
/// HTTP endpoint, and the control operations tests and drills use.
public final class AzureEmulatorRuntime: Sendable {
    public let deployment: DeploymentState
    public let pki: EmulatorPKI
    public let serverCertificatePEM: String
    public let entra: EntraEmulator
    let group: any EventLoopGroup
    let logger: Logger
    private let listeners: [String: NodeListener]
    private let http: Mutex<HTTPServer?> = Mutex(nil)
    private let stateDirectory: URL

    /// `stateDirectory` receives the CA and server certificate PEM files.
    /// `captureDirectory`: record every client packet, decrypted, per session (fixtures).
    public init(config: EmulatorConfig, group: any EventLoopGroup, stateDirectory: URL, pki: EmulatorPKI? = nil,
                captureDirectory: URL? = nil, logger: Logger) throws {
        self.deployment = DeploymentState(config: config)
        self.group = group
        self.logger = logger
        self.stateDirectory = stateDirectory
        let pki = try pki ?? EmulatorPKI.generate(commonName: "tdsgate emulator CA")
        self.pki = pki
        let leaf: (certificatePEM: String, privateKeyPEM: String)
        let caPEM: String
        if let given = config.tls {
            leaf = (try String(contentsOfFile: given.certificate, encoding: .utf8), try String(contentsOfFile: given.key, encoding: .utf8))
            caPEM = try String(contentsOfFile: given.ca, encoding: .utf8)
        } else {
            var hosts = [config.tlsHost, "127.0.0.1", "::1"]
            if config.host != "127.0.0.1" { hosts.append(config.host) }
            leaf = try pki.issueServerCertificate(hosts: Array(Set(hosts)).sorted(), validityDays: 30)
            caPEM = pki.caCertificatePEM
        }
        self.serverCertificatePEM = leaf.certificatePEM
        try FileManager.default.createDirectory(at: stateDirectory, withIntermediateDirectories: true)
        try caPEM.write(to: stateDirectory.appendingPathComponent("ca.pem"), atomically: true, encoding: .utf8)
        try leaf.certificatePEM.write(to: stateDirectory.appendingPathComponent("server.pem"), atomically: true, encoding: .utf8)
        let tls = try TDSServerTLS(certificatePEM: leaf.certificatePEM, privateKeyPEM: leaf.privateKeyPEM)

        let entra = try EntraEmulator(tenant: EmulatedTenant(tenantID: config.tenant.id, identities: config.tenant.identities,
                                                             tokenLifetime: TimeInterval(config.tenant.tokenLifetime),
                                                             subscriptionID: config.subscriptionID, resourceGroup: config.resourceGroup),
                                      baseURL: "http://\(config.host):\(config.httpPort)",
                                      stateDirectory: stateDirectory)
        self.entra = entra
        let verifier = EntraNodeVerifier(entra: entra)
        var listeners: [String: NodeListener] = [:]
        let deployment = self.deployment
        for server in config.servers {
            for node in server.nodes {
                let env = NodeEnvironment(deployment: deployment, server: server, node: node,
                                          tlsAvailable: node.encryption != .notSupported, tlsHost: config.tlsHost,
                                          verifier: verifier, log: { line in logger.info("\(line)") })
                listeners[node.name] = NodeListener(env: env, group: group, tls: node.encryption == .notSupported && !node.strict ? nil : tls,
                                                    captureDirectory: captureDirectory)
            }
        }
        self.listeners = listeners
    }

    public var config: EmulatorConfig { deployment.config }
    public var httpBaseURL: String { "http://\(config.host):\(config.httpPort)" }

    public func start() async throws {
        for l in listeners.values { try await l.start() }
        // Every test client, proxy and benchmark fetches tokens here: more connections than
        // the admin API's default.
        let server = HTTPServer(group: group, host: config.host, port: config.httpPort,
                                routes: entra.routes + ControlRoutes.routes(for: self),
                                limits: HTTPServerLimits(maxConnections: 1024))
        _ = try await server.start()
        http.withLock { $0 = server }
        logger.info("emulator up: \(listeners.count) nodes, control and identity endpoint \(httpBaseURL)")
    }

    public func stop() async {
        for l in listeners.values { await l.stop() }
        if let server = http.withLock({ $0 }) { try? await server.stop() }
    }

    // MARK: Control

    /// A node's TCP sessions: open now, and accepted since start.
    public func sessionCounts(node: String) -> (open: Int, accepted: Int)? {
        listeners[node]?.sessionCounts
    }

    public func kill(node: String) async throws {
        guard let l = listeners[node] else { throw EmulatorConfigError("no node named '\(node)'") }
        deployment.setAlive(node: node, false)
        await l.stop()
        logger.info("node \(node) killed")
    }

    public func restore(node: String) async throws {
        guard let l = listeners[node] else { throw EmulatorConfigError("no node named '\(node)'") }
        deployment.setAlive(node: node, true)
        try await l.start()
        logger.info("node \(node) restored")
    }

    /// Fails the group over; like Azure, every session on the group's replicas is dropped.
    /// A planned failover first lets the old primary's sessions finish the request they are
    /// running (bounded by `drainTimeout`); a forced one drops them at once.
    public func failover(group: String, allowDataLoss: Bool, drainTimeout: TimeAmount = .seconds(30)) async throws {
        guard let g = config.failoverGroups.first(where: { $0.name == group }) else {
            throw EmulatorConfigError("failover group '\(group)' does not exist")
        }
        if !allowDataLoss {
            let oldPrimary = deployment.isPrimaryServer(g.primaryServer) ? g.primaryServer : g.secondaryServer
            for n in deployment.server(named: oldPrimary)?.nodes ?? [] where n.kind == .primaryReplica {
                await listeners[n.name]?.drainSessions(timeout: drainTimeout)
            }
        }
        try deployment.failover(group: group, allowDataLoss: allowDataLoss)
        for s in [g.primaryServer, g.secondaryServer] {
            for n in deployment.server(named: s)?.nodes ?? [] { listeners[n.name]?.dropSessions() }
        }
        logger.info("failover group \(group) failed over (\(allowDataLoss ? "forced" : "planned")); primary is now \(deployment.isPrimaryServer(g.primaryServer) ? g.primaryServer : g.secondaryServer)")
    }

    /// Closes the session with this SPID on whichever node holds it; false when none does.
    public func killSession(spid: Int) -> Bool {
        listeners.values.contains { $0.kill(spid: spid) }
    }

    // MARK: Ports file

    /// What scripts need to reach the deployment (README: "The ports file").
    public func portsDescription() -> [String: Any] {
        var nodes: [[String: Any]] = []
        for server in config.servers {
            for node in server.nodes {
                let role: String
                switch node.kind {
                case .gateway: role = "gateway"
                default: role = deployment.isWritable(node: node.name) ? "primary" : "secondary"
                }
                nodes.append([
                    "name": node.name, "host": config.host, "port": node.port, "role": role,
                    "kind": node.kind.rawValue, "database": server.databases.first ?? "master",
                    "server": server.name, "encryption": node.encryption.rawValue, "strict": node.strict,
                    "tls_host": config.tlsHost,
                ])
            }
        }
        var logins: [[String: Any]] = []
        var seen = Set<String>()
        for server in config.servers {
            for l in server.logins where seen.insert(l.user).inserted {
                logins.append(["user": l.user, "password": l.password, "database": server.databases.first ?? "master"])
            }
        }
        let identities: [[String: Any]] = config.tenant.identities.map { i in
            var d: [String: Any] = ["name": i.name, "kind": i.kind.rawValue, "client_id": i.clientID, "object_id": i.objectID,
                                    "suser_sname": i.sqlPrincipalName(tenantID: config.tenant.id)]
            if let r = i.resourceID { d["resource_id"] = r }
            if let u = i.upn { d["upn"] = u }
            return d
        }
        return [
            "ca_file": stateDirectory.appendingPathComponent("ca.pem").path,
            "server_certificate_file": stateDirectory.appendingPathComponent("server.pem").path,
            "nodes": nodes,
            "sql_logins": logins,
            "identities": identities,
            "tenant_id": config.tenant.id,
            "imds_url": "\(httpBaseURL)/metadata/identity/oauth2/token",
            "token_url": "\(httpBaseURL)/\(config.tenant.id)/oauth2/v2.0/token",
            "jwks_url": "\(httpBaseURL)/\(config.tenant.id)/discovery/v2.0/keys",
            "control_url": httpBaseURL,
            "arm_url": "\(httpBaseURL)/subscriptions/\(config.subscriptionID)/resourceGroups/\(config.resourceGroup)/providers/Microsoft.Sql",
            "failover_groups": config.failoverGroups.map { ["name": $0.name, "primary_server": $0.primaryServer, "secondary_server": $0.secondaryServer] },
        ]
    }
}
