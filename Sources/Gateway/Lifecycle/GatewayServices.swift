import ServiceLifecycle

/// The proxy's long-running parts as services, in the order a `ServiceGroup` starts them;
/// graceful shutdown stops them the other way, each once the one after it has returned:
/// the listeners first (stop accepting, let sessions finish, close the rest), then the
/// admin API (it answers while sessions drain), the certificate watcher and the probers,
/// then the dump and the audit trail (after every session has written its end), and the
/// HTTP client the token providers use last.
struct GatewayServices {
    var httpClient: any Service
    var audit: any Service
    var dump: any Service
    var probers: any Service
    var certificateWatcher: any Service
    var admin: any Service
    var listeners: any Service

    var ordered: [any Service] {
        [httpClient, audit, dump, probers, certificateWatcher, admin, listeners]
    }
}

/// For something started before the group runs (a bound listener, an open log): waits for
/// graceful shutdown, or cancellation when the group fails, then runs `teardown`.
public struct TeardownService: Service, CustomStringConvertible {
    public let description: String
    private let teardown: @Sendable () async -> Void

    public init(_ name: String, teardown: @escaping @Sendable () async -> Void) {
        self.description = name
        self.teardown = teardown
    }

    public func run() async throws {
        // Cancelled (another service failed): tear down all the same, out of order.
        try? await gracefulShutdown()
        await teardown()
    }
}

/// One probe loop per endpoint of every cluster that configures `probe:`, and the sweep of
/// the clusters' backend connection pools (idle timeout, lifetime, unusable endpoints) once
/// a second, until shutdown.
struct ProberService: Service, CustomStringConvertible {
    let probers: [Prober]
    var pools: [ClusterRuntime] = []
    var description: String { "probers(\(probers.count)), pools(\(pools.count))" }

    func run() async throws {
        guard !probers.isEmpty || !pools.isEmpty else {
            // A service that returns early would end the group.
            try? await gracefulShutdown()
            return
        }
        let probers = self.probers
        let pools = self.pools
        await cancelWhenGracefulShutdown {
            await withDiscardingTaskGroup { group in
                for prober in probers { group.addTask { await prober.run() } }
                if !pools.isEmpty {
                    group.addTask {
                        while (try? await Task.sleep(for: .seconds(1))) != nil {
                            for runtime in pools { runtime.sweepPool() }
                        }
                    }
                }
            }
        }
        for runtime in pools { runtime.pool?.closeIdle() }
    }
}

/// Certificates rotated by a file drop (cert-manager, Key Vault sync) are picked up within
/// `interval` without a signal.
struct CertificateWatcherService: Service, CustomStringConvertible {
    let interval: Duration
    let check: @Sendable () -> Void
    var description: String { "certificate-watcher" }

    func run() async throws {
        let interval = self.interval
        let check = self.check
        await cancelWhenGracefulShutdown {
            while true {
                do { try await Task.sleep(for: interval) } catch { return }
                check()
            }
        }
    }
}
