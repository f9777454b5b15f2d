import AzureEmulator
import Gateway
import Foundation
import Gateway
import Logging
import NIOCore
import NIOPosix

/// Starts an emulated deployment (and, for the demo, the proxy in front of it) and runs it
/// under the same lifecycle as `tdsgate run` until SIGINT/SIGTERM.
enum EmulatorHost {
    /// `extra` runs once the emulator is up (the demo starts the proxy there); what it
    /// returns is merged into the ports file and printed after the emulator's banner, and
    /// its proxy is stopped before the emulator.
    static func run(config: EmulatorConfig, basePort: Int?, portsFile: String?, stateDirectory: String?, captureDirectory: String? = nil,
                    banner: (AzureEmulatorRuntime) -> String,
                    extra: ((AzureEmulatorRuntime, any EventLoopGroup, URL) async throws -> (ports: [String: Any], banner: String, proxy: GatewayServer))? = nil) async throws {
        var config = config
        try config.resolvePorts(base: basePort)
        LoggingSystem.bootstrap { label in
            var h = EscapingLogHandler.standardError(label: label)
            h.logLevel = .info
            return h
        }
        let logger = Logger(label: "tdsgate.emulator")
        let dir = URL(fileURLWithPath: stateDirectory ?? NSTemporaryDirectory() + "tdsgate-emulator-\(getpid())")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: System.coreCount)
        let runtime = try AzureEmulatorRuntime(config: config, group: group, stateDirectory: dir,
                                               captureDirectory: captureDirectory.map { URL(fileURLWithPath: $0) }, logger: logger)
        try await runtime.start()
        var description = runtime.portsDescription()
        var text = banner(runtime)
        var proxy: GatewayServer?
        if let extra {
            let added = try await extra(runtime, group, dir)
            description.merge(added.ports) { _, new in new }
            text += "\n" + added.banner
            proxy = added.proxy
        }
        let server = proxy
        let ports = try JSONSerialization.data(withJSONObject: description, options: [.prettyPrinted, .sortedKeys])
        let shownText = text
        // The proxy stops first (its sessions use the emulator), then the emulator.
        let emulator = TeardownService("emulator") {
            logger.info("shutting down")
            await runtime.stop()
        }
        let lifecycle = ProcessLifecycle(
            services: [emulator] + (server.map { [$0] } ?? []),
            notifier: SystemdNotifier.fromEnvironment(ProcessInfo.processInfo.environment, logger: logger), logger: logger,
            ready: {
                // Written once the signal handlers are in place: whoever waits for this file
                // may stop the process at once.
                if let portsFile {
                    // Written to a temporary name and renamed, so readers never see half a file.
                    let tmp = portsFile + ".tmp"
                    do {
                        try ports.write(to: URL(fileURLWithPath: tmp))
                        _ = rename(tmp, portsFile)
                    } catch {
                        logger.error("cannot write the ports file", metadata: ["file": "\(portsFile)", "reason": "\(error)"])
                    }
                }
                print(shownText)
                fflush(nil)
                return server == nil ? "emulator running" : "emulator and proxy running"
            },
            reload: server.map { server -> @Sendable () async -> String in
                { _ = server.reloadCertificates(); return "emulator and proxy running; proxy certificates reloaded" }
            },
            force: { server?.forceShutdown() })
        try await lifecycle.run()
        try await group.shutdownGracefully()
    }
}
