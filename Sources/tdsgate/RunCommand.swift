import ArgumentParser
import Foundation
import Gateway
import Logging
import NIOCore
import NIOPosix

struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the proxy with a YAML configuration (see Configs/tdsgate.yaml)."
    )

    @Option(help: "The configuration file.")
    var config: String

    func run() async throws {
        let cfg: GatewayConfig
        do {
            cfg = try GatewayConfig.load(path: config)
        } catch {
            print("\(config): the configuration has problems:\n\(error)")
            throw ExitCode(2)
        }
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = cfg.loggerLevel
            return h
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let server = try GatewayServer(config: cfg, group: group, logger: Logger(label: "tdsgate"))
        try await server.start()
        await EmulatorHost.waitForTermination()
        await server.stop()
        try await group.shutdownGracefully()
    }
}
