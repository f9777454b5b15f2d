import ArgumentParser
import Foundation
import Gateway
import Logging
import NIOCore
import NIOPosix

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the proxy with a YAML configuration (see Configs/tdsgate.yaml).",
        discussion: "SIGHUP reloads listener certificates; SIGTERM/SIGINT stop accepting and let sessions finish for shutdown_grace_seconds (a second signal closes them at once). With NOTIFY_SOCKET set (systemd Type=notify), reports READY=1, RELOADING=1 and STOPPING=1."
    )

    @Option(help: "The configuration file.")
    var config: String

    @Option(help: ArgumentHelp("Dump every session, decrypted and decoded with secrets redacted, into this directory (overrides dump.directory and switches the dump on).", valueName: "DIR"))
    var dump: String?

    func run() async throws {
        var loaded: GatewayConfig
        do {
            loaded = try GatewayConfig.load(path: config)
        } catch {
            FileHandle.standardError.write(Data("\(config): the configuration has problems:\n\(error)\n".utf8))
            throw ExitCode(2)
        }
        if let dump {
            var d = loaded.dump ?? DumpConfig()
            d.directory = URL(fileURLWithPath: dump).standardizedFileURL.path
            d.enabled = true
            loaded.dump = d
        }
        let cfg = loaded
        LoggingSystem.bootstrap { label in
            var h = EscapingLogHandler.standardError(label: label)
            h.logLevel = cfg.logLevel
            return h
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let logger = Logger(label: "tdsgate")
        let notifier = SystemdNotifier.fromEnvironment(ProcessInfo.processInfo.environment, logger: logger)
        let server = try GatewayServer(config: cfg, group: group, logger: logger, notifier: notifier)
        let ports: [String: Int]
        do {
            ports = try await server.start()
        } catch {
            // A port in use: nothing runs yet, but the HTTP client must not be left open.
            try? await server.httpClient.shutdown()
            throw error
        }
        let listening = ports.sorted { $0.key < $1.key }.map { "\($0.key) on :\($0.value)" }.joined(separator: ", ")
        let lifecycle = ProcessLifecycle(
            services: [server], notifier: notifier, logger: logger,
            ready: { "accepting connections (\(listening))" },
            reload: {
                let outcome = server.reloadCertificates()
                if outcome.failed.isEmpty { return "accepting connections; certificates reloaded" }
                return "accepting connections; certificate reload failed for \(outcome.failed.joined(separator: ", ")) (kept the previous one)"
            },
            force: { server.forceShutdown() })
        try await lifecycle.run()
        try await group.shutdownGracefully()
    }
}
