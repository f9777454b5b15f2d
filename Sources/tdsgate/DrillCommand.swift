import ArgumentParser
import AsyncHTTPClient
import Bench
import Foundation
import Gateway
import Routing

struct DrillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drill",
        abstract: "Rehearse operations against a running tdsgate.",
        subcommands: [DrillFailoverCommand.self]
    )
}

enum DrillModeFlag: String, EnumerableFlag {
    case planned, forced, simulate

    static func help(for value: DrillModeFlag) -> ArgumentHelp? {
        switch value {
        case .planned: "ARM failover-group failover (no data loss) with the cluster's failover_group identity."
        case .forced: "ARM forceFailoverAllowDataLoss."
        case .simulate: "Disable the primary inside tdsgate for --outage seconds; nothing changes in Azure."
        }
    }
}

struct DrillFailoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover",
        abstract: "Fail a cluster over while synthetic sessions run through tdsgate, and report what they saw.",
        discussion: """
        Reads tdsgate's configuration for the listener, the admin API and the cluster's failover_group. \
        The synthetic sessions log in with a SQL login held by tdsgate (--user; its password from the \
        environment variable named by --password-env). Writers insert into a table tdsgate_drill_<id> that \
        the drill creates and drops. Exit status: 0 when writes resumed and none was acknowledged by a \
        non-primary (nor lost, unless --forced), 1 when the drill ran but that did not hold, 2 when it \
        could not run.
        """
    )

    @Option(help: "tdsgate's configuration file.")
    var config: String

    @Flag(help: "How to fail over.")
    var mode: DrillModeFlag = .planned

    @Option(help: "The cluster to drill (default: the only cluster of the configuration).")
    var cluster: String?

    @Flag(help: "Afterwards, fail back to the original primary and report that too.")
    var failback = false

    @Flag(help: "Print the report as JSON instead of a table.")
    var json = false

    @Option(help: "SQL login (held by tdsgate) for the synthetic sessions.")
    var user: String

    @Option(help: "Environment variable holding that login's password.")
    var passwordEnv = "TDSGATE_DRILL_PASSWORD"

    @Option(help: "Database for the synthetic sessions (default: the cluster's first).")
    var database: String?

    @Option(help: "tdsgate listener as host:port (default: the first listener for the cluster).")
    var proxy: String?

    @Option(help: "Name the listener's certificate is checked against (default: the listener's host, or when that is an address, the first DNS name in the listener's certificate).")
    var tlsName: String?

    @Option(help: "PEM file of the only roots the listener's certificate may chain to (default: the system's roots plus the cluster's ca_file).")
    var caFile: String?

    @Option(help: ArgumentHelp("Also write the report as a self-contained HTML page (summary, timeline, errors) to this file.", valueName: "FILE.html"))
    var report: String?

    @Option(help: "Admin API URL (default: from the configuration's admin section).")
    var adminURL: String?

    @Option(help: "Synthetic writer sessions.")
    var writers = 2

    @Option(help: "Synthetic read-intent sessions.")
    var readers = 2

    @Option(help: "Seconds of traffic before the failover.")
    var baseline = 2.0

    @Option(help: "Seconds of traffic kept after writes resume.")
    var settle = 3.0

    @Option(help: "Seconds the primary stays disabled with --simulate.")
    var outage = 5.0

    @Option(help: "Upper bound, in seconds, on each phase.")
    var timeout = 120.0

    func validate() throws {
        guard (1...64).contains(writers), (0...64).contains(readers) else { throw ValidationError("--writers must be 1...64 and --readers 0...64") }
        guard timeout > 0, timeout <= 3600 else { throw ValidationError("--timeout must be in (0, 3600] seconds") }
        guard baseline >= 0, settle >= 0, outage >= 0 else { throw ValidationError("--baseline, --settle and --outage must not be negative") }
        if failback && mode == .simulate {
            throw ValidationError("--failback goes with --planned or --forced; --simulate ends by enabling the primary again")
        }
    }

    func run() async throws {
        let httpClient = HTTPClient(eventLoopGroupProvider: .singleton)
        let options: DrillOptions
        let phases: [DrillPhase]
        do {
            if let report { try Self.checkWritable(report) }
            options = try makeOptions(httpClient: httpClient)
            phases = try await DrillRunner.run(options)
        } catch {
            try? await httpClient.shutdown()
            FileHandle.standardError.write(Data("tdsgate drill: \(error)\n".utf8))
            throw ExitCode(2)
        }
        try? await httpClient.shutdown()
        if let report {
            let html = DrillReport.renderHTML(phases: phases.map { DrillReport.HTMLPhase(name: $0.name, report: $0.report) })
            do {
                try html.write(toFile: report, atomically: true, encoding: .utf8)
                options.progress?("HTML report written to \(report)")
            } catch {
                FileHandle.standardError.write(Data("tdsgate drill: the drill ran, but its HTML report could not be written to \(report): \(error.localizedDescription)\n".utf8))
                throw ExitCode(2)
            }
        }
        if json {
            let parts = try phases.map { "\"\($0.name)\": " + (try $0.report.jsonText()) }
            print("{\n" + parts.joined(separator: ",\n") + "\n}")
        } else {
            for phase in phases {
                print("== \(phase.name) ==")
                print(phase.report.renderTable())
            }
        }
        let ok = phases.allSatisfy {
            $0.report.safe && $0.report.aborted == nil && $0.report.timeToFirstWriteMs != nil
                && (options.mode == .forced || $0.report.lostWriteCount == 0)
        }
        if !ok { throw ExitCode(1) }
    }

    /// The name to check the listener's certificate against: the host dialled, unless it is
    /// an address (as listeners usually are); then the first DNS name the certificate carries.
    static func defaultTLSName(host: String, listener: ListenerConfig?) -> String {
        guard CertificateNames.isIPAddress(host), let certificate = listener?.tls?.certificate,
              let name = (try? CertificateNames.dnsNames(pemFile: certificate))?.first else { return host }
        return name
    }

    /// Fails before the drill changes anything when the report could not be written.
    static func checkWritable(_ path: String) throws {
        let directory = URL(fileURLWithPath: path).deletingLastPathComponent().path
        guard FileManager.default.isWritableFile(atPath: directory) else {
            throw ValidationError("--report \(path): the folder \(directory) does not exist or is not writable")
        }
    }

    private func makeOptions(httpClient: HTTPClient) throws -> DrillOptions {
        let gateway: GatewayConfig
        do {
            gateway = try GatewayConfig.load(path: config)
        } catch {
            throw ValidationError("cannot use \(config): \(error) (tdsgate check-config \(config) lists every problem)")
        }
        let clusterConfig: ClusterConfig
        if let cluster {
            guard let c = gateway.clusters.first(where: { $0.name == cluster }) else {
                throw ValidationError("no cluster named '\(cluster)' in \(config) (clusters: \(gateway.clusters.map(\.name).joined(separator: ", ")))")
            }
            clusterConfig = c
        } else {
            guard gateway.clusters.count == 1 else { throw ValidationError("\(config) has several clusters: choose one with --cluster") }
            clusterConfig = gateway.clusters[0]
        }
        guard let password = ProcessInfo.processInfo.environment[passwordEnv], !password.isEmpty else {
            throw ValidationError("set the password of '\(user)' in the environment variable \(passwordEnv)")
        }
        let listener = gateway.listeners.first { ($0.cluster ?? gateway.clusters.first?.name) == clusterConfig.name }
        let host: String
        let port: Int
        if let proxy {
            guard let colon = proxy.lastIndex(of: ":"), let p = Int(proxy[proxy.index(after: colon)...]) else {
                throw ValidationError("--proxy must be host:port")
            }
            host = String(proxy[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            port = p
        } else {
            guard let listener else {
                throw ValidationError("no listener of \(config) serves cluster '\(clusterConfig.name)'; give --proxy host:port")
            }
            host = ["0.0.0.0", "::", ""].contains(listener.address) ? "127.0.0.1" : listener.address
            port = listener.port
        }
        guard let admin = gateway.admin else {
            throw ValidationError("\(config) has no admin section; the drill watches tdsgate through its admin API (add admin: to the config, or give --admin-url)")
        }
        let adminHost = ["0.0.0.0", "::"].contains(admin.address) ? "127.0.0.1" : admin.address
        let adminToken: String?
        do {
            adminToken = try admin.bearerTokenFile.map {
                try String(contentsOfFile: $0, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            }
        } catch {
            throw ValidationError("cannot read the admin API's bearer token file \(admin.bearerTokenFile ?? ""): \(error.localizedDescription); "
                + "the drill needs read access to it (run it as the user tdsgate runs as)")
        }
        var options = DrillOptions(
            cluster: clusterConfig.name, mode: DrillOptions.Mode(rawValue: mode.rawValue) ?? .planned,
            proxyHost: host, proxyPort: port, tlsName: tlsName ?? Self.defaultTLSName(host: host, listener: proxy == nil ? listener : nil),
            user: user, password: password,
            database: database ?? clusterConfig.databases.first ?? "master",
            adminURL: adminURL ?? "http://\(adminHost.contains(":") ? "[\(adminHost)]" : adminHost):\(admin.port)")
        options.adminToken = adminToken
        if let caFile {
            options.trust = .only(caFile: caFile)
        } else if let clusterCA = clusterConfig.caFile {
            options.trust = .systemRootsAnd(caFile: clusterCA)
        }
        options.failback = failback
        options.writers = writers
        options.readers = readers
        options.baseline = .milliseconds(Int64(baseline * 1000))
        options.settle = .milliseconds(Int64(settle * 1000))
        options.outage = .milliseconds(Int64(outage * 1000))
        options.timeout = .milliseconds(Int64(timeout * 1000))
        options.progress = { line in FileHandle.standardError.write(Data("drill: \(line)\n".utf8)) }
        if mode != .simulate {
            guard let group = clusterConfig.failoverGroup else {
                throw ValidationError("cluster '\(clusterConfig.name)' has no failover_group in \(config); --\(mode.rawValue) needs it (or use --simulate)")
            }
            options.failoverGroup = group
            let provider = try gateway.tokenProvider(identity: group.identity, httpClient: httpClient)
            let resource = "https://management.azure.com/"
            options.armToken = { try await provider.fetchToken(resource: resource).token }
        }
        return options
    }
}
