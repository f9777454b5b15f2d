import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
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
public final class GatewayServer: Sendable {
    let context: GatewayContext
    let group: any EventLoopGroup
    private let listeners = Mutex<[any Channel]>([])
    private let sessions = Mutex<[ObjectIdentifier: any Channel]>([:])
    private let certificates = Mutex<[String: ListenerCertificate]>([:])
    private let sessionCounter = Mutex(0)
    private let watcher = Mutex<Task<Void, Never>?>(nil)
    private let probers = Mutex<[Task<Void, Never>]>([])
    private let admin = Mutex<HTTPServer?>(nil)
    public let httpClient: HTTPClient

    public init(config: GatewayConfig, group: any EventLoopGroup, logger: Logger) throws {
        self.group = group
        var httpConfig = HTTPClient.Configuration()
        // IMDS and token endpoints must never go through an HTTP proxy.
        httpConfig.proxy = nil
        httpConfig.timeout = .init(connect: .seconds(5), read: .seconds(30))
        self.httpClient = HTTPClient(eventLoopGroupProvider: .shared(group), configuration: httpConfig)
        self.context = try GatewayContext(config: config, httpClient: httpClient, logger: logger)
    }

    public var activeSessions: Int { sessions.withLock { $0.count } }

    /// Binds every listener. Returns the bound ports by listener name (for port 0).
    @discardableResult
    public func start() async throws -> [String: Int] {
        var ports: [String: Int] = [:]
        for listener in context.config.listeners {
            let certificate = try listener.tls.map { try ListenerCertificate(files: $0) }
            if let certificate { certificates.withLock { $0[listener.name] = certificate } }
            let acceptsTLS = !listener.clientEncryption.subtracting([.plaintext]).isEmpty
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
                        try ops.addHandler(TDSServerTransportHandler(tls: tls, acceptStrict: listener.clientEncryption.contains(.strict)))
                        // Right above the transport: TLS is inserted below it, so it sees plaintext.
                        try ops.addHandler(PacketTapHandler(leg: .client, tap: tap))
                        try ops.addHandler(TDSMessageFramingHandler.clientBeforeLogin())
                        try ops.addHandler(ClientSessionHandler(context: self.context, listener: listener, hasCertificate: tls != nil,
                                                                sessionID: id, tap: tap))
                    }
                }
                .bind(host: listener.address, port: listener.port).get()
            listeners.withLock { $0.append(channel) }
            ports[listener.name] = channel.localAddress?.port ?? listener.port
            context.logger.info("listening", metadata: ["listener": "\(listener.name)", "address": "\(listener.address):\(ports[listener.name]!)",
                                                        "client_encryption": "\(listener.clientEncryption.map(\.rawValue).sorted())"])
        }
        startCertificateWatcher()
        startProbers()
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

    /// One probe loop per endpoint of every cluster that configures `probe:`.
    private func startProbers() {
        var tasks: [Task<Void, Never>] = []
        for runtime in context.clusters.values {
            guard let probe = runtime.config.probe else { continue }
            for endpoint in runtime.config.endpoints {
                let prober = Prober(context: context, cluster: runtime, endpoint: endpoint, probe: probe, eventLoop: group.next())
                tasks.append(Task { await prober.run() })
            }
        }
        probers.withLock { $0 = tasks }
    }

    /// Cluster states as text (roles, health, sessions), for logs and `tdsgate status`.
    public func clusterSummaries() -> [String: String] {
        context.clusters.mapValues { $0.summary() }
    }

    /// SIGHUP: reload every listener's certificate and key now.
    public func reloadCertificates() {
        reload(force: true)
    }

    private func reload(force: Bool) {
        for (name, cert) in certificates.withLock({ $0 }) {
            do {
                if try cert.reload(force: force) {
                    context.logger.info("certificate reloaded", metadata: ["listener": "\(name)", "certificate": "\(cert.files.certificate)"])
                }
            } catch {
                context.logger.error("certificate reload failed; keeping the previous one", metadata: ["listener": "\(name)", "reason": "\(error)"])
            }
        }
    }

    /// Certificates rotated by a file drop (cert-manager, Key Vault sync) are picked up
    /// within a few seconds without a signal.
    private func startCertificateWatcher() {
        let task = Task { [weak self] in
            while !Task.isCancelled {
                try? await Task.sleep(for: .seconds(5))
                self?.reload(force: false)
            }
        }
        watcher.withLock { $0 = task }
    }

    /// Graceful shutdown: stop accepting, let sessions finish for up to `grace`, then close
    /// what is left.
    public func shutdown(grace: Duration) async {
        let all = listeners.withLock { c in defer { c = [] }; return c }
        for c in all { try? await c.close() }
        context.logger.info("stopped accepting; waiting for sessions", metadata: ["sessions": "\(activeSessions)", "grace_s": "\(grace.components.seconds)"])
        let deadline = ContinuousClock.now + grace
        while activeSessions > 0 && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(100))
        }
        let left = sessions.withLock { Array($0.values) }
        if !left.isEmpty {
            context.logger.info("closing sessions still open after the grace period", metadata: ["sessions": "\(left.count)"])
        }
        // Each session records why it ended (audited as `shutdown`) and closes both legs;
        // a session that does not within a second is closed hard.
        for c in left { c.requestSessionClose(.shutdown) }
        let hard = ContinuousClock.now + .seconds(1)
        while activeSessions > 0 && ContinuousClock.now < hard {
            try? await Task.sleep(for: .milliseconds(20))
        }
        for c in sessions.withLock({ Array($0.values) }) { try? await c.close() }
        await stop()
    }

    public func stop() async {
        if let server = admin.withLock({ s in defer { s = nil }; return s }) { try? await server.stop() }
        watcher.withLock { $0?.cancel() }
        probers.withLock { for t in $0 { t.cancel() } }
        let all = listeners.withLock { c in defer { c = [] }; return c }
        for c in all { try? await c.close() }
        for c in sessions.withLock({ Array($0.values) }) { try? await c.close() }
        await context.dump.close()
        // Session ends written by the closes above reach the trail before it closes.
        try? await Task.sleep(for: .milliseconds(50))
        await context.audit?.close()
        try? await httpClient.shutdown()
    }
}
