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
        discussion: "SIGHUP reloads listener certificates; SIGTERM/SIGINT stop accepting and let sessions finish for shutdown_grace_seconds."
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
            h.logLevel = cfg.loggerLevel
            return h
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let server = try GatewayServer(config: cfg, group: group, logger: Logger(label: "tdsgate"))
        try await server.start()
        let hup = Signals.on(SIGHUP) { server.reloadCertificates() }
        await EmulatorHost.waitForTermination()
        hup.cancel()
        await server.shutdown(grace: .seconds(cfg.shutdownGraceSeconds))
        try await group.shutdownGracefully()
    }
}

/// A signal handler that runs a closure on each delivery until cancelled.
enum Signals {
    static func on(_ signal: Int32, _ action: @escaping @Sendable () -> Void) -> any DispatchSourceSignal {
        Foundation.signal(signal, SIG_IGN)
        let source = DispatchSource.makeSignalSource(signal: signal, queue: DispatchQueue(label: "tdsgate.signal.\(signal)"))
        source.setEventHandler(handler: action)
        source.resume()
        return source
    }
}
