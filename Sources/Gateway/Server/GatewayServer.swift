import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import ServiceLifecycle
import Synchronization
import HTTPServerKit
import TDSNIO

/// A listener's certificate, swapped in place on reload: sessions already running keep
/// the context they started with, new ones get the new one.
final class ListenerCertificate: Sendable {
    let files: TLSFilesConfig
    private let current: Mutex<(tls: TDSServerTLS, stamp: String)>

    init(files: TLSFilesConfig) throws {
        self.files = files
        current = Mutex((try Self.load(files), Self.stamp(files)))
    }

    var tls: TDSServerTLS { current.withLock { $0.tls } }

    /// Reloads when forced or when either file changed; keeps the old certificate when the
    /// new files do not load (a half-written file must not take the listener down).
    func reload(force: Bool) throws -> Bool {
        let stamp = Self.stamp(files)
        if !force && stamp == current.withLock({ $0.stamp }) { return false }
        let tls = try Self.load(files)
        current.withLock { $0 = (tls, stamp) }
        return true
    }

    private static func load(_ files: TLSFilesConfig) throws -> TDSServerTLS {
        try TDSServerTLS(certificatePEM: String(contentsOfFile: files.certificate, encoding: .utf8),
                         privateKeyPEM: String(contentsOfFile: files.key, encoding: .utf8))
    }

    private static func stamp(_ files: TLSFilesConfig) -> String {
        [files.certificate, files.key].map { path in
            let a = try? FileManager.default.attributesOfItem(atPath: path)
            let m = (a?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0
            let s = (a?[.size] as? Int) ?? 0
            return "\(m):\(s)"
        }.joined(separator: "|")
    }
}

/// tdsgate's listeners: accepts client connections and runs a session on each.
///
/// `start()` binds the listeners and the admin API (so a bad port fails before anything
/// runs); `run()`, as a service, runs everything else and, on graceful shutdown, takes it
/// all down in order (`GatewayServices`).
public final class GatewayServer: Service, Sendable {
    let context: GatewayContext
    let group: any EventLoopGroup
    private let listeners = Mutex<[any Channel]>([])
    private let sessions = Mutex<[ObjectIdentifier: any Channel]>([:])
    private let certificates = Mutex<[String: ListenerCertificate]>([:])
    private let sessionCounter = Mutex(0)
    private let admin = Mutex<HTTPServer?>(nil)
    private let drain = Mutex(DrainState())
    private let notifier: SystemdNotifier?
    public let httpClient: HTTPClient

    /// `notifier`: where the shutdown's progress goes as systemd STATUS lines.
    public init(config: GatewayConfig, group: any EventLoopGroup, logger: Logger, notifier: SystemdNotifier? = nil) throws {
        self.group = group
        self.notifier = notifier
        var httpConfig = HTTPClient.Configuration()
        // IMDS and token endpoints must never go through an HTTP proxy.
        httpConfig.proxy = nil
        httpConfig.timeout = .init(connect: .seconds(5), read: .seconds(30))
        self.httpClient = HTTPClient(eventLoopGroupProvider: .shared(group), configuration: httpConfig)
        self.context = try GatewayContext(config: config, httpClient: httpClient, logger: logger)
    }

    public var activeSessions: Int { sessions.withLock { $0.count } }

    /// `login_timeout_s`: from accept to the login reply.
    static func loginTimeout(_ listener: ListenerConfig) -> TimeAmount {
        .seconds(Int64(listener.loginTimeoutSeconds))
    }

    /// `max_connections`, `max_connections_per_source`, `max_pending_logins`.
    static func limits(_ listener: ListenerConfig) -> ConnectionLimits {
        ConnectionLimits(total: listener.maxConnections, perSource: listener.maxConnectionsPerSource, pending: listener.maxPendingLogins)
    }

    /// Binds every listener. Returns the bound ports by listener name (for port 0).
    @discardableResult
    public func start() async throws -> [String: Int] {
        var ports: [String: Int] = [:]
        for listener in context.config.listeners {
            let certificate = try listener.tls.map { try ListenerCertificate(files: $0) }
            if let certificate { certificates.withLock { $0[listener.name] = certificate } }
            let acceptsTLS = !listener.clientEncryption.subtracting([.plaintext]).isEmpty
            let limiter = ConnectionLimiter(limits: Self.limits(listener))
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { [self] ch in
                    ch.eventLoop.makeCompletedFuture {
                        let id = self.sessionCounter.withLock { n in n += 1; return n }
                        let key = ObjectIdentifier(ch)
                        self.sessions.withLock { $0[key] = ch }
                        ch.closeFuture.whenComplete { _ in _ = self.sessions.withLock { $0.removeValue(forKey: key) } }
                        let tls = acceptsTLS ? certificate?.tls : nil
                        let ops = ch.pipeline.syncOperations
                        let tap = SessionTap(sessionID: id)
                        self.context.dump.sessionOpened(tap, channel: ch)
                        // Behind a balancer the PROXY header comes first: the client's own
                        // address reaches the session before any TDS byte does.
                        if let proxy = listener.proxyProtocol {
                            try ops.addHandler(ProxyProtocolHandler(versions: proxy.versions) { peer in
                                proxy.trustedSources.contains { $0.contains(peer.ipAddress ?? "") }
                            })
                        }
                        try ops.addHandler(TDSServerTransportHandler(tls: tls, acceptStrict: listener.clientEncryption.contains(.strict)))
                        // Right above the transport: TLS is inserted below it, so it sees plaintext.
                        try ops.addHandler(PacketTapHandler(leg: .client, tap: tap))
                        try ops.addHandler(TDSMessageFramingHandler.clientBeforeLogin())
                        let record = SessionRecord(id: id, listener: listener.name, clientAddress: ch.remoteAddress?.ipAddress ?? "?",
                                                   clientPort: ch.remoteAddress?.port, audit: self.context.audit,
                                                   metrics: self.context.metrics, logger: self.context.logger)
                        let admission = limiter.admit(source: record.clientAddress)
                        if case .success(let ticket) = admission { ch.closeFuture.whenComplete { _ in ticket.release() } }
                        try ops.addHandler(ClientSessionHandler(context: self.context, listener: listener, hasCertificate: tls != nil,
                                                                record: record, tap: tap, loginTimeout: Self.loginTimeout(listener),
                                                                admission: admission))
                    }
                }
                .bind(host: listener.address, port: listener.port).get()
            listeners.withLock { $0.append(channel) }
            ports[listener.name] = channel.localAddress?.port ?? listener.port
            context.logger.info("listening", metadata: ["listener": "\(listener.name)", "address": "\(listener.address):\(ports[listener.name]!)",
                                                        "client_encryption": "\(listener.clientEncryption.map(\.rawValue).sorted())"])
        }
        if let adminConfig = context.config.admin {
            let token = try adminConfig.bearerTokenFile.map {
                try String(contentsOfFile: $0, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            }
            let server = HTTPServer(group: group, host: adminConfig.address, port: adminConfig.port,
                                    routes: AdminAPI.routes(context: context, bearerToken: token))
            ports["admin"] = try await server.start()
            admin.withLock { $0 = server }
            context.logger.info("admin API listening", metadata: ["address": "\(adminConfig.address):\(ports["admin"]!)"])
        }
        return ports
    }

    /// Cluster states as text (roles, health, sessions), for logs and `tdsgate status`.
    public func clusterSummaries() -> [String: String] {
        context.clusters.mapValues { $0.summary() }
    }

    /// SIGHUP: reload every listener's certificate and key now. Returns the listeners
    /// whose certificate was reloaded and those that kept the old one.
    @discardableResult
    public func reloadCertificates() -> (reloaded: [String], failed: [String]) {
        reload(force: true)
    }

    @discardableResult
    private func reload(force: Bool) -> (reloaded: [String], failed: [String]) {
        var outcome: (reloaded: [String], failed: [String]) = ([], [])
        for (name, cert) in certificates.withLock({ $0 }).sorted(by: { $0.key < $1.key }) {
            do {
                if try cert.reload(force: force) {
                    outcome.reloaded.append(name)
                    context.logger.info("certificate reloaded", metadata: ["listener": "\(name)", "certificate": "\(cert.files.certificate)"])
                }
            } catch {
                outcome.failed.append(name)
                context.logger.error("certificate reload failed; keeping the previous one", metadata: ["listener": "\(name)", "reason": "\(error)"])
            }
        }
        return outcome
    }

    /// Runs the probers, the certificate watcher and the teardown of everything `start()`
    /// opened; returns once graceful shutdown (from the enclosing `ServiceGroup`) is done.
    public func run() async throws {
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: services().ordered, logger: context.logger))
        try await group.run()
    }

    func services() -> GatewayServices {
        var probers: [Prober] = []
        for runtime in context.clusters.values {
            guard let probe = runtime.config.probe else { continue }
            for endpoint in runtime.config.endpoints {
                probers.append(Prober(context: context, cluster: runtime, endpoint: endpoint, probe: probe, eventLoop: group.next()))
            }
        }
        let grace = Duration.seconds(context.config.shutdownGraceSeconds)
        let context = self.context
        let httpClient = self.httpClient
        let admin = self.admin.withLock { $0 }
        return GatewayServices(
            httpClient: TeardownService("http-client") { try? await httpClient.shutdown() },
            audit: TeardownService("audit") { await context.audit?.close() },
            dump: TeardownService("dump") { await context.dump.close() },
            probers: ProberService(probers: probers, pools: context.clusters.values.filter { $0.pool != nil }),
            certificateWatcher: CertificateWatcherService(interval: .seconds(5)) { [weak self] in self?.reload(force: false) },
            admin: TeardownService("admin") { try? await admin?.stop() },
            listeners: TeardownService("listeners") { [self] in await self.closeListenersAndSessions(grace: grace) })
    }

    /// A second SIGTERM: the grace period ends now (sessions still open are closed the
    /// way they are at its end, audited as `shutdown`).
    public func forceShutdown() {
        let waiter = drain.withLock { d in
            d.forced = true
            defer { d.waiter = nil }
            return d.waiter
        }
        waiter?.finish(.forced)
    }

    /// Stop accepting, let sessions finish for up to `grace`, then ask the rest to end.
    func closeListenersAndSessions(grace: Duration) async {
        // Cancelled: the group is failing, nobody waits for a grace period.
        let grace = Task.isCancelled ? .zero : grace
        // Before the listeners close, so no balancer's check sees "ready" from an instance that no longer accepts.
        context.readiness.startDraining(.shutdown(graceSeconds: grace.components.seconds))
        let all = listeners.withLock { c in defer { c = [] }; return c }
        for c in all { try? await c.close() }
        let open = sessions.withLock { Array($0.values) }
        context.logger.info("stopped accepting; waiting for sessions", metadata: ["sessions": "\(open.count)", "grace_s": "\(grace.components.seconds)"])
        notifier?.send(.status("stopped accepting; waiting up to \(grace.components.seconds) s for \(open.count) session(s)"))
        let outcome = await waitForClose(of: open, within: grace, forceable: true)
        let left = sessions.withLock { Array($0.values) }
        if !left.isEmpty {
            let why = outcome == .forced ? "closing sessions at once (second signal)" : "closing sessions still open after the grace period"
            context.logger.info("\(why)", metadata: ["sessions": "\(left.count)"])
            notifier?.send(.status("\(why): \(left.count)"))
            // Each session records why it ended (audited as `shutdown`) and closes both
            // legs; one that does not within a second is closed hard.
            for c in left { c.requestSessionClose(.shutdown) }
            if await waitForClose(of: left, within: .seconds(1), forceable: false) != .allClosed {
                for c in sessions.withLock({ Array($0.values) }) { try? await c.close() }
            }
        }
        // A session's end reaches the audit trail from its channel's close callbacks, on
        // its event loop; one turn of every loop after the last close has them all queued
        // before the audit writer closes (it stops after this service, `GatewayServices`).
        for loop in group.makeIterator() { try? await loop.submit {}.get() }
    }

    /// The first of: every channel in `channels` closed, `limit` passed, or (`forceable`)
    /// `forceShutdown()`.
    private func waitForClose(of channels: [any Channel], within limit: Duration, forceable: Bool) async -> DrainWaiter.Outcome {
        if channels.isEmpty { return .allClosed }
        let waiter = DrainWaiter()
        if forceable, drain.withLock({ d in
            if !d.forced { d.waiter = waiter }
            return d.forced
        }) {
            return .forced
        }
        let remaining = Mutex(channels.count)
        for c in channels {
            c.closeFuture.whenComplete { _ in
                if remaining.withLock({ n in n -= 1; return n }) == 0 { waiter.finish(.allClosed) }
            }
        }
        let timer = group.next().scheduleTask(in: TimeAmount(limit)) { waiter.finish(.deadline) }
        let outcome = await waiter.wait()
        timer.cancel()
        if forceable { drain.withLock { $0.waiter = nil } }
        return outcome
    }
}

/// Whether a second signal cut the grace period short, and who waits on it.
private struct DrainState {
    var forced = false
    var waiter: DrainWaiter?
}

/// Resumes one waiter, once, with the first outcome it is given.
final class DrainWaiter: Sendable {
    enum Outcome: Sendable, Equatable {
        case allClosed
        case deadline
        case forced
    }

    private let state = Mutex<(outcome: Outcome?, continuation: CheckedContinuation<Outcome, Never>?)>((nil, nil))

    func finish(_ outcome: Outcome) {
        let continuation = state.withLock { s -> CheckedContinuation<Outcome, Never>? in
            guard s.outcome == nil else { return nil }
            s.outcome = outcome
            defer { s.continuation = nil }
            return s.continuation
        }
        continuation?.resume(returning: outcome)
    }

    func wait() async -> Outcome {
        await withCheckedContinuation { (continuation: CheckedContinuation<Outcome, Never>) in
            let done = state.withLock { s -> Outcome? in
                if let o = s.outcome { return o }
                s.continuation = continuation
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }
}
