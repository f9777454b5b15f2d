import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOPosix
import NIOSSL
import Synchronization
import TDSNIO

/// tdsgate's listeners: accepts client connections and runs a session on each.
public final class GatewayServer: Sendable {
    let context: GatewayContext
    let group: any EventLoopGroup
    private let channels = Mutex<[any Channel]>([])
    private let sessionCounter = Mutex(0)
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

    /// Binds every listener. Returns the bound ports by listener name (for port 0).
    @discardableResult
    public func start() async throws -> [String: Int] {
        var ports: [String: Int] = [:]
        for listener in context.config.listeners {
            let tls: TDSServerTLS?
            if let files = listener.tls {
                tls = try TDSServerTLS(certificatePEM: String(contentsOfFile: files.certificate, encoding: .utf8),
                                       privateKeyPEM: String(contentsOfFile: files.key, encoding: .utf8))
            } else {
                tls = nil
            }
            let ctx = context
            let channel = try await ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 1024)
                .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
                .childChannelInitializer { [self] ch in
                    ch.eventLoop.makeCompletedFuture {
                        let id = self.sessionCounter.withLock { n in n += 1; return n }
                        let ops = ch.pipeline.syncOperations
                        try ops.addHandler(TDSServerTransportHandler(tls: listener.clientEncryption.contains(.strict) || listener.clientEncryption.contains(.required) || listener.clientEncryption.contains(.loginOnly) ? tls : nil))
                        try ops.addHandler(TDSMessageFramingHandler(maxMessageSize: 1 << 20))
                        try ops.addHandler(ClientSessionHandler(context: ctx, listener: listener, hasCertificate: tls != nil, sessionID: id))
                    }
                }
                .bind(host: listener.address, port: listener.port).get()
            channels.withLock { $0.append(channel) }
            ports[listener.name] = channel.localAddress?.port ?? listener.port
            context.logger.info("listening", metadata: ["listener": "\(listener.name)", "address": "\(listener.address):\(ports[listener.name]!)",
                                                        "client_encryption": "\(listener.clientEncryption.map(\.rawValue).sorted())"])
        }
        return ports
    }

    public func stop() async {
        let all = channels.withLock { c in defer { c = [] }; return c }
        for c in all { try? await c.close() }
        try? await httpClient.shutdown()
    }
}
