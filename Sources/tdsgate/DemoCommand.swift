import ArgumentParser
import AzureEmulator
import Foundation
import Gateway
import Identity
import Logging
import NIOCore

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start the embedded emulated Azure SQL deployment with tdsgate in front of it, and print connection strings."
    )

    @Option(help: "Write endpoints, logins and the CA file as JSON here (documented in the README).")
    var portsFile: String?

    @Option(help: "Use consecutive ports from here (default: free ports).")
    var basePort: Int?

    @Option(help: "Record every client packet (decrypted) per session as hex into this folder, in the Fixtures format.")
    var captureDir: String?

    @Option(help: "Folder for the generated CA, certificates and the proxy's demo config (default: a temporary folder).")
    var stateDir: String?

    @Option(help: ArgumentHelp("Dump every proxy session, decrypted and decoded with secrets redacted, into this directory (text + pcapng).", valueName: "DIR"))
    var dump: String?

    /// Demo-only SQL logins held by the proxy (their hashes go into the rendered config).
    static let proxyLogins: [(user: String, password: String, write: Bool)] = [
        ("app-user", "AppUser-Passw0rd!", true),
        ("report-user", "Report-Passw0rd!", false),
    ]

    func run() async throws {
        let cfg = try EmulatorConfig.load(yaml: DemoDeployment.yaml)
        let base = basePort
        let dump = self.dump
        try await EmulatorHost.run(config: cfg, basePort: base, portsFile: portsFile, stateDirectory: stateDir, captureDirectory: captureDir, banner: { _ in
            // The demo prints the proxy first and the emulator after it (Banner.demo, from startProxy).
            ""
        }, extra: { rt, group, dir in
            try await Self.startProxy(runtime: rt, group: group, stateDirectory: dir, basePort: base, dump: dump)
        })
    }

    static func startProxy(runtime rt: AzureEmulatorRuntime, group: any EventLoopGroup, stateDirectory dir: URL, basePort: Int?,
                           dump: String? = nil)
        async throws -> (ports: [String: Any], banner: String, proxy: GatewayServer)
    {
        let leaf = try rt.pki.issueServerCertificate(hosts: ["localhost", "127.0.0.1", "::1"], validityDays: 30)
        try leaf.certificatePEM.write(to: dir.appendingPathComponent("proxy.pem"), atomically: true, encoding: .utf8)
        try leaf.privateKeyPEM.write(to: dir.appendingPathComponent("proxy-key.pem"), atomically: true, encoding: .utf8)
        let free = try FreePorts.take(2)
        let proxyPort = basePort.map { $0 + 100 } ?? free[0]
        let adminPort = basePort.map { $0 + 101 } ?? free[1]
        let d = rt.portsDescription()
        var values = try DemoProxyConfig.emulatorValues(d)
        values["PROXY_PORT"] = String(proxyPort)
        values["ADMIN_PORT"] = String(adminPort)
        values["STATE_DIR"] = dir.path
        // 100k iterations keeps demo start-up quick; `tdsgate hash-password` defaults higher.
        values["APP_USER_HASH"] = PasswordHash.make(password: proxyLogins[0].password, iterations: 100_000)
        values["REPORT_USER_HASH"] = PasswordHash.make(password: proxyLogins[1].password, iterations: 100_000)
        let configPath = dir.appendingPathComponent("tdsgate-demo.yaml").path
        try DemoProxyConfig.render(values).write(toFile: configPath, atomically: true, encoding: .utf8)
        var config: GatewayConfig
        do {
            config = try GatewayConfig.load(path: configPath)
        } catch {
            throw DemoError(description: "the demo's proxy config \(configPath) (rendered from Configs/demo.yaml) has problems; "
                + "Configs/demo.yaml and DemoProxyConfig.swift must change together:\n\(error)")
        }
        // The dump is always on in the demo, so that `tdsgate dump --follow` shows something;
        // files only with --dump DIR (both forms then: the text to read, the pcapng for Wireshark).
        var dumpConfig = config.dump ?? DumpConfig()
        dumpConfig.enabled = true
        if let dump {
            dumpConfig.directory = URL(fileURLWithPath: dump).standardizedFileURL.path
            dumpConfig.settings.formats = [.text, .pcapng]
        }
        config.dump = dumpConfig
        let server = try GatewayServer(config: config, group: group, logger: Logger(label: "tdsgate.proxy"))
        do {
            try await server.start()
        } catch {
            throw DemoError(description: "the demo's proxy could not start on 127.0.0.1:\(proxyPort) (admin API 127.0.0.1:\(adminPort)): \(error). "
                + (basePort != nil ? "Another process may hold these ports: pick another --base-port, or leave it out to use free ports."
                    : "Another process took the free ports it picked; run tdsgate demo again."))
        }

        let freetdsConf = dir.appendingPathComponent("freetds.conf").path
        try Banner.freetdsConf(port: proxyPort, caFile: dir.appendingPathComponent("ca.pem").path)
            .write(toFile: freetdsConf, atomically: true, encoding: .utf8)

        let proxyIdentity = rt.config.tenant.identities.first { $0.kind == .systemAssigned }
        let backendName = proxyIdentity?.sqlPrincipalName(tenantID: rt.config.tenant.id) ?? "?"
        let ci = rt.config.tenant.identities.first { $0.name == "ci-deployer" }
        let auditFile = dir.appendingPathComponent("audit.jsonl").path
        let ports: [String: Any] = [
            "proxy": ["host": "127.0.0.1", "port": proxyPort, "tls_host": "localhost", "admin_url": "http://127.0.0.1:\(adminPort)", "config_file": configPath,
                      "audit_file": auditFile, "freetds_conf": freetdsConf,
                      "dump_dir": dump.map { URL(fileURLWithPath: $0).standardizedFileURL.path as Any } ?? NSNull()],
            "proxy_logins": proxyLogins.map { l -> [String: Any] in
                ["user": l.user, "password": l.password, "database": "appdb", "backend_identity": backendName, "write": l.write]
            },
            "client_token_url": d["token_url"] as? String ?? "",
            "client_token_request": [
                "grant_type": "client_credentials", "client_id": ci?.clientID ?? "", "client_secret": ci?.secret ?? "",
                "scope": "https://database.windows.net/.default",
            ],
        ]
        let proxy = Banner.DemoProxy(
            port: proxyPort, adminURL: "http://127.0.0.1:\(adminPort)", configFile: configPath, auditFile: auditFile,
            freetdsConf: freetdsConf, caFile: dir.appendingPathComponent("ca.pem").path, backendIdentity: backendName,
            writer: (proxyLogins[0].user, proxyLogins[0].password), reader: (proxyLogins[1].user, proxyLogins[1].password),
            tokenURL: d["token_url"] as? String ?? "", tokenClientID: ci?.clientID ?? "?")
        return (ports, Banner.demo(proxy: proxy, emulator: rt), server)
    }
}

/// Why the demo could not start, with what to do about it.
struct DemoError: Error, CustomStringConvertible {
    var description: String
}
