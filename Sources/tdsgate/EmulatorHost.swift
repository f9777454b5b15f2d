import AzureEmulator
import Gateway
import Foundation
import Logging
import NIOCore
import NIOPosix

/// Starts an emulated deployment and keeps it running until SIGINT/SIGTERM.
enum EmulatorHost {
    /// `extra` runs once the emulator is up (the demo starts the proxy there); what it
    /// returns is merged into the ports file and printed after the emulator's banner.
    static func run(config: EmulatorConfig, basePort: Int?, portsFile: String?, stateDirectory: String?, captureDirectory: String? = nil,
                    banner: (AzureEmulatorRuntime) -> String,
                    extra: ((AzureEmulatorRuntime, any EventLoopGroup, URL) async throws -> (ports: [String: Any], banner: String, stop: @Sendable () async -> Void))? = nil) async throws {
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
        var stopExtra: (@Sendable () async -> Void)?
        if let extra {
            let added = try await extra(runtime, group, dir)
            description.merge(added.ports) { _, new in new }
            text += "\n" + added.banner
            stopExtra = added.stop
        }
        if let portsFile {
            let data = try JSONSerialization.data(withJSONObject: description, options: [.prettyPrinted, .sortedKeys])
            // Written to a temporary name and renamed, so readers never see half a file.
            let tmp = portsFile + ".tmp"
            try data.write(to: URL(fileURLWithPath: tmp))
            _ = rename(tmp, portsFile)
        }
        print(text)
        fflush(nil)
        await waitForTermination()
        logger.info("shutting down")
        if let stopExtra { await stopExtra() }
        await runtime.stop()
        try await group.shutdownGracefully()
    }

    /// Suspends until SIGINT or SIGTERM.
    static func waitForTermination() async {
        signal(SIGINT, SIG_IGN)
        signal(SIGTERM, SIG_IGN)
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let queue = DispatchQueue(label: "tdsgate.signals")
            let once = OnceFlag()
            var sources: [any DispatchSourceSignal] = []
            for sig in [SIGINT, SIGTERM] {
                let s = DispatchSource.makeSignalSource(signal: sig, queue: queue)
                s.setEventHandler {
                    if once.set() { continuation.resume() }
                }
                s.resume()
                sources.append(s)
            }
            SignalSources.keep(sources)
        }
    }
}

/// Runs a continuation once even if both signals arrive.
final class OnceFlag: @unchecked Sendable {
    private var done = false
    private let lock = NSLock()
    func set() -> Bool {
        lock.lock()
        defer { lock.unlock() }
        if done { return false }
        done = true
        return true
    }
}

/// Keeps signal sources alive for the life of the process.
enum SignalSources {
    nonisolated(unsafe) static var held: [any DispatchSourceSignal] = []
    static func keep(_ s: [any DispatchSourceSignal]) { held += s }
}
