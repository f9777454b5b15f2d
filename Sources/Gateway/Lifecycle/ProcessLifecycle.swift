#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Synchronization
import ServiceLifecycle
import UnixSignals

/// A process of tdsgate (`run`, `emulate`, `demo`): its services in a `ServiceGroup`, and
/// the signals that drive it (`SignalPolicy`), reported to systemd when it asks.
///
/// The group gets no signals of its own: one owner decides what the first, second and third
/// SIGTERM mean, which `ServiceGroup`'s graceful-shutdown signals cannot (it ignores repeats).
/// Services stop in the reverse of their order here, each once the one after it returned.
public struct ProcessLifecycle: Sendable {
    /// Start order; graceful shutdown goes the other way.
    public var services: [any Service]
    /// Runs once the signal handlers are in place, before READY=1: what it returns is the
    /// STATUS systemd shows (the ports file of `emulate`/`demo` is written here, so whoever
    /// waits for it may signal the process at once).
    public var ready: @Sendable () async -> String
    /// SIGHUP; nil leaves SIGHUP alone. Returns the STATUS after the reload.
    public var reload: (@Sendable () async -> String)?
    /// The second SIGTERM/SIGINT: end the grace period now.
    public var force: @Sendable () async -> Void
    public var notifier: SystemdNotifier?
    public var logger: Logger

    public init(services: [any Service], notifier: SystemdNotifier?, logger: Logger,
                ready: @escaping @Sendable () async -> String,
                reload: (@Sendable () async -> String)? = nil,
                force: @escaping @Sendable () async -> Void = {}) {
        self.services = services
        self.notifier = notifier
        self.logger = logger
        self.ready = ready
        self.reload = reload
        self.force = force
    }

    private enum Finished: Sendable {
        case group
        case signals
    }

    /// Returns when every service has stopped.
    public func run() async throws {
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: services, logger: logger))
        var trapped: [UnixSignal] = [.sigterm, .sigint]
        if reload != nil { trapped.append(.sighup) }
        let signals = await UnixSignalsSequence(trapping: trapped)
        let stopping = StoppingFlag()
        try await withThrowingTaskGroup(of: Finished.self) { tasks in
            tasks.addTask {
                try await group.run()
                return .group
            }
            tasks.addTask {
                let status = await ready()
                notifier?.send(.ready, .status(status))
                var policy = SignalPolicy()
                for await signal in signals {
                    let action = policy.received(signal == .sighup ? .hangUp : .terminate)
                    await perform(action, signal: signal, group: group, stopping: stopping)
                }
                return .signals
            }
            defer { tasks.cancelAll() }
            // The signal loop ends only when cancelled: the group's end is the process's.
            while let finished = try await tasks.next() {
                if finished == .group { break }
            }
        }
        // A service failed and took the group down without a signal.
        if stopping.set() { notifier?.send(.stopping) }
    }

    private func perform(_ action: SignalPolicy.Action, signal: UnixSignal, group: ServiceGroup, stopping: StoppingFlag) async {
        switch action {
        case .reload:
            guard let reload else { return }
            notifier?.send(.reloading(monotonicMicroseconds: SystemdNotifier.monotonicMicroseconds()), .status("reloading"))
            logger.info("reloading", metadata: ["signal": "\(signal)"])
            let status = await reload()
            notifier?.send(.ready, .status(status))
        case .beginGracefulShutdown:
            _ = stopping.set()
            notifier?.send(.stopping, .status("shutting down (\(signal)); a second signal ends the grace period"))
            logger.info("shutting down gracefully; a second signal closes the remaining sessions at once", metadata: ["signal": "\(signal)"])
            await group.triggerGracefulShutdown()
        case .forceShutdown:
            notifier?.send(.status("shutting down now (second \(signal))"))
            logger.notice("second signal: closing the remaining sessions now", metadata: ["signal": "\(signal)"])
            await force()
        case .exitNow:
            logger.critical("third signal: exiting without waiting", metadata: ["signal": "\(signal)"])
            exit(EXIT_FAILURE)
        case .ignore:
            logger.info("signal ignored while shutting down", metadata: ["signal": "\(signal)"])
        }
    }
}

/// Whether STOPPING=1 went out (it is sent once).
private final class StoppingFlag: Sendable {
    private let done = Mutex(false)
    func set() -> Bool { done.withLock { d in defer { d = true }; return !d } }
}
