import AzureEmulator
import Foundation
import Gateway
import NIOCore
import NIOSSL

/// What the bench needs from the emulator's ports file.
struct EmulatorPorts: Sendable {
    struct Node: Sendable {
        var name: String
        var host: String
        var port: Int
        var encryption: String
        var tlsHost: String
    }

    var caFile: String
    var nodes: [Node]
    var sqlUser: String
    var sqlPassword: String
    var database: String
    var tenantID: String
    var imdsURL: String
    var jwksURL: String
    /// The demo proxy config's placeholders this deployment fills (node ports, tenant, URLs).
    var demoProxyValues: [String: String]

    init(json: Data) throws {
        guard let d = try JSONSerialization.jsonObject(with: json) as? [String: Any] else {
            throw BenchSetupError("the emulator's ports file is not a JSON object")
        }
        func string(_ key: String) throws -> String {
            guard let s = d[key] as? String else { throw BenchSetupError("the emulator's ports file has no '\(key)'") }
            return s
        }
        caFile = try string("ca_file")
        tenantID = try string("tenant_id")
        imdsURL = try string("imds_url")
        jwksURL = try string("jwks_url")
        nodes = (d["nodes"] as? [[String: Any]] ?? []).compactMap { n in
            guard let name = n["name"] as? String, let port = n["port"] as? Int else { return nil }
            return Node(name: name, host: n["host"] as? String ?? "127.0.0.1", port: port,
                        encryption: n["encryption"] as? String ?? "?", tlsHost: n["tls_host"] as? String ?? "localhost")
        }
        let login = (d["sql_logins"] as? [[String: Any]])?.first { ($0["user"] as? String) == "app" }
            ?? (d["sql_logins"] as? [[String: Any]])?.first
        guard let login, let user = login["user"] as? String, let password = login["password"] as? String else {
            throw BenchSetupError("the emulator's ports file has no SQL login")
        }
        sqlUser = user
        sqlPassword = password
        database = login["database"] as? String ?? "appdb"
        demoProxyValues = try DemoProxyConfig.emulatorValues(d)
    }

    func node(_ name: String) throws -> Node {
        guard let n = nodes.first(where: { $0.name == name }) else {
            throw BenchSetupError("the emulated deployment has no node '\(name)' (nodes: \(nodes.map(\.name).joined(separator: ", ")))")
        }
        return n
    }
}

/// The three targets the bench measures, each a separate process: the emulator (direct),
/// HAProxy in TCP mode in front of it, and tdsgate in front of it.
struct BenchDeployment: Sendable {
    var emulator: BenchChild
    var haproxy: BenchChild?
    var tdsgate: BenchChild?
    /// tdsgate with the packet dump on (target `tdsgate-dump`).
    var tdsgateDump: BenchChild?
    var backendNode: EmulatorPorts.Node
    var targets: [BenchTarget]
    var haproxyVersion: String?
    /// Wall time of one PBKDF2 derivation at the configured iterations, measured here.
    var passwordHashMillis: Double?
    var notes: [String]
}

/// One measured target: where the client connects, and which process to watch.
struct BenchTarget: Sendable {
    var kind: BenchTargetKind
    var endpoint: BenchEndpoint
    /// The process whose memory and CPU belong to this target (the proxy, or the emulator for direct).
    var process: BenchChild
    var summary: String
}

/// The proxy logins tdsgate holds in the bench config (the demo's values).
enum BenchLogins {
    static let proxyUser = "app-user"
    static let proxyPassword = "AppUser-Passw0rd!"
    static let reportUser = "report-user"
    static let reportPassword = "Report-Passw0rd!"
}

enum BenchSetup {
    /// The running binary (`tdsgate`), used to start `tdsgate emulate` and `tdsgate run`.
    static func selfExecutable() -> String {
        (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    }

    /// HAProxy's path, or nil.
    static func findHAProxy() -> String? {
        ["/usr/sbin/haproxy", "/usr/bin/haproxy", "/usr/local/sbin/haproxy", "/usr/local/bin/haproxy"]
            .first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    static func haproxyVersion(_ path: String) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: path)
        p.arguments = ["-v"]
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: data, as: UTF8.self).split(separator: "\n").first.map(String.init)
    }

    /// Starts everything. `stateDir` receives configs, certificates and the children's logs.
    static func start(stateDir: URL, options: BenchOptions, sessionCapacity: Int, group: any EventLoopGroup,
                      progress: @escaping @Sendable (String) -> Void) async throws -> BenchDeployment {
        let children = BenchChildren.shared
        let exe = selfExecutable()
        let fm = FileManager.default
        try fm.createDirectory(at: stateDir, withIntermediateDirectories: true)
        var notes: [String] = []

        // 1. The emulated deployment (`tdsgate emulate`), its own process.
        let emulatorDir = stateDir.appendingPathComponent("emulator")
        let emulatorConfig = stateDir.appendingPathComponent("emulator.yaml")
        try DemoDeployment.yaml.write(to: emulatorConfig, atomically: true, encoding: .utf8)
        let portsFile = stateDir.appendingPathComponent("emulator-ports.json").path
        try? fm.removeItem(atPath: portsFile)
        progress("starting the emulated deployment (tdsgate emulate)")
        let emulator = try await children.launch(
            name: "emulator", executable: exe,
            arguments: ["emulate", "--config", emulatorConfig.path, "--ports-file", portsFile, "--state-dir", emulatorDir.path],
            logFile: stateDir.appendingPathComponent("emulator.log").path)
        try await BenchWait.forFile(portsFile, timeout: .seconds(60), child: emulator)
        let ports = try EmulatorPorts(json: Data(contentsOf: URL(fileURLWithPath: portsFile)))
        let node = try ports.node("east-primary")
        guard node.encryption == "required" else {
            throw BenchSetupError("east-primary has encryption '\(node.encryption)'; the bench needs a node that requires TLS")
        }
        try await BenchWait.forPort(host: node.host, port: node.port, timeout: .seconds(30), child: emulator, group: group)

        let emulatorTLS = try clientTLS(caFile: ports.caFile)
        var targets: [BenchTarget] = [
            BenchTarget(kind: .direct,
                        endpoint: BenchEndpoint(name: "direct", host: node.host, port: node.port, tlsName: node.tlsHost, tls: emulatorTLS,
                                                user: ports.sqlUser, password: ports.sqlPassword, database: ports.database),
                        process: emulator,
                        summary: "emulator node east-primary (\(node.host):\(node.port)), TLS 1.2 inside PRELOGIN"),
        ]

        // 2. HAProxy, TCP mode, forwarding to east-primary: TLS stays end to end.
        var haproxyChild: BenchChild?
        var version: String?
        if options.targets.contains(.haproxy) {
            if let haproxy = findHAProxy() {
                version = haproxyVersion(haproxy)
                let port = try FreePorts.take(1)[0]
                let cfg = stateDir.appendingPathComponent("haproxy.cfg")
                let maxconn = sessionCapacity + 64
                try haproxyConfig(port: port, backendHost: node.host, backendPort: node.port, maxconn: maxconn, threads: options.proxyThreads)
                    .write(to: cfg, atomically: true, encoding: .utf8)
                progress("starting HAProxy (\(version ?? haproxy)) in TCP mode on 127.0.0.1:\(port)")
                let child = try await children.launch(name: "haproxy", executable: haproxy, arguments: ["-db", "-f", cfg.path],
                                                      logFile: stateDir.appendingPathComponent("haproxy.log").path)
                try await BenchWait.forPort(host: "127.0.0.1", port: port, timeout: .seconds(20), child: child, group: group)
                haproxyChild = child
                targets.append(BenchTarget(
                    kind: .haproxy,
                    endpoint: BenchEndpoint(name: "haproxy", host: "127.0.0.1", port: port, tlsName: node.tlsHost, tls: emulatorTLS,
                                            user: ports.sqlUser, password: ports.sqlPassword, database: ports.database),
                    process: child,
                    summary: "HAProxy TCP mode -> east-primary, TLS end to end client<->emulator, \(options.proxyThreads) threads"))
            } else {
                notes.append("HAProxy is not installed (apt-get install -y haproxy): its column is empty.")
                progress("HAProxy not found; skipping it (apt-get install -y haproxy)")
            }
        }

        // 3. tdsgate (`tdsgate run`) with the demo's proxy config: writes go to east-primary
        // directly (no gateway redirect), as the bench's queries do.
        var tdsgateChild: BenchChild?
        var tdsgateDumpChild: BenchChild?
        var passwordHashMillis: Double?
        for kind in [BenchTargetKind.tdsgate, .tdsgateDump] where options.targets.contains(kind) {
            let dumping = kind == .tdsgateDump
            let dir = stateDir.appendingPathComponent(dumping ? "proxy-dump" : "proxy")
            try fm.createDirectory(at: dir, withIntermediateDirectories: true)
            // The proxy's certificate comes from a CA of the bench's own (the emulator keeps
            // its CA key in memory); the backend leg trusts the emulator's CA.
            let pki = try EmulatorPKI.generate(commonName: "tdsgate bench proxy CA")
            let leaf = try pki.issueServerCertificate(hosts: ["localhost", "127.0.0.1", "::1"], validityDays: 7)
            try leaf.certificatePEM.write(to: dir.appendingPathComponent("proxy.pem"), atomically: true, encoding: .utf8)
            try leaf.privateKeyPEM.write(to: dir.appendingPathComponent("proxy-key.pem"), atomically: true, encoding: .utf8)
            try pki.caCertificatePEM.write(to: dir.appendingPathComponent("proxy-ca.pem"), atomically: true, encoding: .utf8)
            try? fm.removeItem(at: dir.appendingPathComponent("ca.pem"))
            try fm.copyItem(atPath: ports.caFile, toPath: dir.appendingPathComponent("ca.pem").path)
            let port = try FreePorts.take(1)[0]
            progress("hashing the proxy logins' passwords (PBKDF2-SHA256, \(options.hashIterations) iterations)")
            let hashStart = ContinuousClock.now
            let appHash = options.hashPassword(BenchLogins.proxyPassword, options.hashIterations)
            let reportHash = options.hashPassword(BenchLogins.reportPassword, options.hashIterations)
            passwordHashMillis = secondsSince(hashStart) * 1000 / 2
            let values = ports.demoProxyValues.merging([
                "PROXY_PORT": String(port), "STATE_DIR": dir.path, "APP_USER_HASH": appHash, "REPORT_USER_HASH": reportHash,
            ]) { _, new in new }
            var text = try proxyConfig(values: values)
            text += "\nlogin_cache_seconds: \(options.loginCacheSeconds)\n"
            if !options.auditStatements {
                guard text.contains("statements: true") else {
                    throw BenchSetupError("the demo proxy config no longer audits statements with 'statements: true'; update BenchSetup for --no-audit-statements")
                }
                text = text.replacingOccurrences(of: "statements: true", with: "statements: false")
            }
            if dumping {
                // Every session, text and pcapng, capped so a long run cannot fill the disk.
                text += "\ndump: {directory: \"\(dir.appendingPathComponent("dump").path)\", format: [text, pcapng], "
                    + "max_file_bytes: 67108864, max_total_bytes: 2147483648}\n"
            }
            let cfg = dir.appendingPathComponent("tdsgate-bench.yaml")
            try text.write(to: cfg, atomically: true, encoding: .utf8)
            do {
                _ = try GatewayConfig.load(path: cfg.path)
            } catch {
                throw BenchSetupError("the rendered proxy config \(cfg.path) has problems:\n\(error)")
            }
            progress("starting \(kind.rawValue) (tdsgate run) on 127.0.0.1:\(port) in front of east-primary")
            let child = try await children.launch(name: kind.rawValue, executable: exe, arguments: ["run", "--config", cfg.path],
                                                  logFile: stateDir.appendingPathComponent("\(kind.rawValue).log").path)
            try await BenchWait.forPort(host: "127.0.0.1", port: port, timeout: .seconds(30), child: child, group: group)
            if dumping { tdsgateDumpChild = child } else { tdsgateChild = child }
            targets.append(BenchTarget(
                kind: kind,
                endpoint: BenchEndpoint(name: kind.rawValue, host: "127.0.0.1", port: port, tlsName: "localhost",
                                        tls: try clientTLS(caFile: dir.appendingPathComponent("proxy-ca.pem").path),
                                        user: BenchLogins.proxyUser, password: BenchLogins.proxyPassword, database: ports.database),
                process: child,
                summary: "tdsgate run -> east-primary (no gateway redirect), two TLS legs, managed-identity backend login"
                    + (dumping ? "; packet dump on for every session (text + pcapng files, secrets redacted)" : "")))
        }
        targets.removeAll { !options.targets.contains($0.kind) }
        return BenchDeployment(emulator: emulator, haproxy: haproxyChild, tdsgate: tdsgateChild, tdsgateDump: tdsgateDumpChild, backendNode: node,
                               targets: targets, haproxyVersion: version, passwordHashMillis: passwordHashMillis, notes: notes)
    }

    /// The client's TLS: the CA in `caFile`, full verification, TLS 1.2 at most (TLS inside
    /// PRELOGIN, as SQL Server's TDS 7.x stacks expect).
    static func clientTLS(caFile: String) throws -> NIOSSLContext {
        var config = TLSConfiguration.makeClientConfiguration()
        config.certificateVerification = .fullVerification
        config.trustRoots = .file(caFile)
        config.maximumTLSVersion = .tlsv12
        return try NIOSSLContext(configuration: config)
    }

    /// The demo's proxy config (`DemoProxyConfig`), logging at warning (HAProxy logs nothing
    /// here either).
    static func proxyConfig(values: [String: String]) throws -> String {
        var text = DemoProxyConfig.render(values)
        // Placeholders added to the demo config later: ports get free ports, anything else
        // must be taught to the bench.
        for name in placeholders(in: text) {
            guard name.hasSuffix("_PORT") else {
                throw BenchSetupError("the demo proxy config has a placeholder ${\(name)} the bench does not know; update BenchSetup.proxyConfig")
            }
            text = text.replacingOccurrences(of: "${\(name)}", with: String(try FreePorts.take(1)[0]))
        }
        if !text.contains("\nlog_level:") {
            text += "\nlog_level: warning\n"
        }
        return text
    }

    /// `NAME` of every `${NAME}` left in `text` (upper-case names only: comments say `${...}`).
    static func placeholders(in text: String) -> [String] {
        var names: [String] = []
        var rest = text[...]
        while let open = rest.range(of: "${") {
            guard let close = rest[open.upperBound...].firstIndex(of: "}") else { break }
            let name = String(rest[open.upperBound..<close])
            let isName = !name.isEmpty && name.allSatisfy { ($0.isUppercase && $0.isASCII) || $0.isNumber || $0 == "_" }
            if isName && !names.contains(name) { names.append(name) }
            rest = rest[rest.index(after: close)...]
        }
        return names
    }

    static func haproxyConfig(port: Int, backendHost: String, backendPort: Int, maxconn: Int, threads: Int) -> String {
        """
        # HAProxy in TCP mode in front of the emulated east-primary (written by tdsgate bench).
        global
            maxconn \(maxconn)
            nbthread \(threads)

        defaults
            mode tcp
            timeout connect 5s
            timeout client 1h
            timeout server 1h

        frontend tds
            bind 127.0.0.1:\(port)
            maxconn \(maxconn)
            default_backend primary

        backend primary
            server east-primary \(backendHost):\(backendPort) maxconn \(maxconn)

        """
    }
}
