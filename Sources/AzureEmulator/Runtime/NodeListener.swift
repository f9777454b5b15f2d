import Foundation
import NIOCore
import NIOPosix
import Synchronization
import TDS
import TDSNIO

/// One emulated node's TCP endpoint. Killing a node closes its listener and every session
/// on it, as a crashed replica would; restoring binds the same port again.
final class NodeListener: Sendable {
    let env: NodeEnvironment
    let group: any EventLoopGroup
    let tls: TDSServerTLS?
    let captureDirectory: URL?
    /// Open connections by SPID.
    private let state = Mutex<(listeners: [any Channel], sessions: [Int: any Channel])>(([], [:]))
    private let acceptedTotal = Atomic<Int>(0)

    init(env: NodeEnvironment, group: any EventLoopGroup, tls: TDSServerTLS?, captureDirectory: URL? = nil) {
        self.env = env
        self.group = group
        self.tls = tls
        self.captureDirectory = captureDirectory
    }

    /// Binds the configured address (and ::1 too when the TLS name is localhost, because
    /// drivers may resolve localhost to either).
    func start() async throws {
        let host = env.deployment.config.host
        var hosts = [host]
        if env.tlsHost == "localhost" && host == "127.0.0.1" { hosts.append("::1") }
        var bound: [any Channel] = []
        for (i, h) in hosts.enumerated() {
            do {
                bound.append(try await bootstrap().bind(host: h, port: env.node.port).get())
            } catch where i > 0 {
                continue   // no IPv6 loopback on this machine: IPv4 is enough
            }
        }
        state.withLock { $0.listeners = bound }
    }

    func stop() async {
        let (listeners, sessions) = state.withLock { s in
            defer { s = ([], [:]) }
            return (s.listeners, Array(s.sessions.values))
        }
        for c in listeners { try? await c.close() }
        for c in sessions { try? await c.close() }
    }

    /// Connections open now, and accepted since start (for tests: did a client's session
    /// reach this node, is it gone).
    var sessionCounts: (open: Int, accepted: Int) {
        (state.withLock { $0.sessions.count }, acceptedTotal.load(ordering: .relaxed))
    }

    /// Closes every session (Azure drops connections on failover) but keeps listening.
    func dropSessions() {
        let sessions = state.withLock { Array($0.sessions.values) }
        for c in sessions { c.close(promise: nil) }
    }

    /// Drops one session's TCP connection, as a killed session or a broken network does;
    /// false when no session has that SPID here.
    func kill(spid: Int) -> Bool {
        guard let c = state.withLock({ $0.sessions[spid] }) else { return false }
        c.pipeline.fireUserInboundEventTriggered(AbortConnectionHandler.Abort())
        return true
    }

    /// Lets every session finish the request it is running, then closes it (idle ones at
    /// once); returns when all are closed or `timeout` has passed, closing what is left.
    func drainSessions(timeout: TimeAmount) async {
        let sessions = state.withLock { Array($0.sessions.values) }
        guard !sessions.isEmpty else { return }
        for c in sessions { c.pipeline.fireUserInboundEventTriggered(NodeDrainRequest()) }
        let loop = group.next()
        let done = loop.makePromise(of: Void.self)
        let timer = loop.scheduleTask(in: timeout) { done.succeed() }
        EventLoopFuture.andAllComplete(sessions.map(\.closeFuture), on: loop).whenComplete { _ in done.succeed() }
        try? await done.futureResult.get()
        timer.cancel()
        for c in sessions where c.isActive { c.close(promise: nil) }
    }

    private func bootstrap() -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { [self] channel in
                channel.eventLoop.makeCompletedFuture { try self.initialize(channel) }
            }
    }

    private func initialize(_ channel: any Channel) throws {
        if env.deployment.takeRefusal(node: env.node.name) || !env.deployment.isAlive(node: env.node.name) {
            channel.close(promise: nil)
            return
        }
        acceptedTotal.add(1, ordering: .relaxed)
        let peer = channel.remoteAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
        let spid = env.deployment.nextSPID()
        state.withLock { $0.sessions[spid] = channel }
        let session = NodeSession(env: env, spid: spid, clientAddress: peer)
        let capture = captureDirectory.flatMap { PacketCapture(directory: $0, node: env.node.name, session: spid, client: peer) }
        let deployment = env.deployment
        let node = env.node.name
        let handler = NodeChannelHandler(session: session) { [weak self] in
            deployment.endSession(node: node, spid: spid)
            self?.state.withLock { _ = $0.sessions.removeValue(forKey: spid) }
        }
        let ops = channel.pipeline.syncOperations
        try ops.addHandler(AbortConnectionHandler())
        try ops.addHandler(TDSServerTransportHandler(tls: env.node.encryption == .notSupported && !env.node.strict ? nil : tls))
        var tap: (@Sendable (TDSPacket) -> Void)?
        if let capture { tap = { packet in capture.record(packet) } }
        try ops.addHandler(TDSMessageFramingHandler(maxMessageSize: 4 * 1024 * 1024, packetTap: tap))
        try ops.addHandler(handler)
    }
}

/// First in a node connection's pipeline: closes the socket from below TLS, so the client
/// sees the TCP connection end without a TLS close_notify, as when SQL Server kills a
/// session or the network drops it (ODBC's idle connection resiliency reacts to exactly that).
final class AbortConnectionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = NIOAny

    struct Abort: Sendable {}

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is Abort {
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
