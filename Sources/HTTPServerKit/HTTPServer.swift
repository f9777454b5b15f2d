import Foundation
import Synchronization
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A small HTTP/1.1 server on SwiftNIO: the proxy's admin API and the emulated Azure
/// endpoints (IMDS, Entra, ARM, the emulator's control API) both run on it.
///
/// Requests are read whole within ``HTTPServerLimits`` (body, header size, header and body
/// timeouts, idle keep-alive time, connection count), dispatched through an ``HTTPRouter``
/// and answered with `Content-Length`. Keep-alive and pipelining work (NIO's pipelining
/// handler orders the responses and reads no further request meanwhile). Pass `tls` to
/// serve HTTPS (MSAL insists on an https authority).
public final class HTTPServer: Sendable {
    public let host: String
    public let requestedPort: Int
    public let limits: HTTPServerLimits
    public let router: HTTPRouter
    private let group: any EventLoopGroup
    private let sslContext: NIOSSLContext?
    private let state = Mutex(ServerState())

    private enum Admission {
        case admitted, overCapacity, stopped
    }

    private struct ServerState: Sendable {
        var serverChannel: (any Channel)?
        var boundPort: Int?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var stopped = false
    }

    /// - Parameters:
    ///   - port: 0 picks a free port; ``start()`` returns the bound one.
    ///   - limits: what one client may hold (see ``HTTPServerLimits``).
    ///   - tls: a server TLS context (e.g. for a certificate from ``EmulatorPKI``) to serve HTTPS;
    ///     see ``HTTPServer/makeTLSContext(certificatePEM:privateKeyPEM:)``.
    public init(
        group: any EventLoopGroup,
        host: String = "127.0.0.1",
        port: Int = 0,
        routes: [HTTPRoute],
        limits: HTTPServerLimits = HTTPServerLimits(),
        tls: NIOSSLContext? = nil
    ) {
        self.group = group
        self.host = host
        self.requestedPort = port
        self.router = HTTPRouter(routes: routes)
        self.limits = limits
        self.sslContext = tls
    }

    /// A server TLS context for a PEM certificate (chain) and private key.
    public static func makeTLSContext(certificatePEM: String, privateKeyPEM: String) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8)).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)
        let configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        return try NIOSSLContext(configuration: configuration)
    }

    /// Connections open now (those refused over the cap not counted).
    public var connectionCount: Int {
        self.state.withLock { $0.connections.count }
    }

    /// The bound port once started.
    public var port: Int? {
        self.state.withLock { $0.boundPort }
    }

    /// `http://host:port` (or `https://`) once started. IPv6 hosts are bracketed.
    public var baseURL: String? {
        guard let port = self.port else { return nil }
        let scheme = self.sslContext == nil ? "http" : "https"
        let host = self.host.contains(":") ? "[\(self.host)]" : self.host
        return "\(scheme)://\(host):\(port)"
    }

    /// Binds and starts accepting. Returns the bound port.
    @discardableResult
    public func start() async throws -> Int {
        let router = self.router
        let limits = self.limits
        let sslContext = self.sslContext
        let bootstrap = ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [self] channel in
                let admission = self.state.withLock { state -> Admission in
                    guard !state.stopped else { return .stopped }
                    guard state.connections.count < limits.maxConnections else { return .overCapacity }
                    state.connections[ObjectIdentifier(channel)] = channel
                    return .admitted
                }
                switch admission {
                case .stopped:
                    return channel.close()
                case .overCapacity:
                    // Over TLS a plaintext 503 would be garbage to the client: just close.
                    guard sslContext == nil else { return channel.close() }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(HTTPOverCapacityHandler(limit: limits.maxConnections))
                    }
                case .admitted:
                    break
                }
                channel.closeFuture.whenComplete { _ in
                    self.state.withLock { _ = $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
                }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        try sync.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    try Self.addHTTPHandlers(to: sync, router: router, limits: limits, isSecure: sslContext != nil,
                                             acceptedAt: channel.eventLoop.now)
                }
            }
        let channel = try await bootstrap.bind(host: self.host, port: self.requestedPort).get()
        guard let port = channel.localAddress?.port else {
            try? await channel.close()
            throw HTTPServerError.noBoundPort
        }
        let alreadyStarted = self.state.withLock { state -> Bool in
            if state.serverChannel != nil { return true }
            state.serverChannel = channel
            state.boundPort = port
            state.stopped = false
            return false
        }
        if alreadyStarted {
            try? await channel.close()
            throw HTTPServerError.alreadyStarted
        }
        return port
    }

    /// The plaintext HTTP part of a connection's pipeline (after TLS, if any).
    static func addHTTPHandlers(
        to sync: ChannelPipeline.SynchronousOperations,
        router: HTTPRouter,
        limits: HTTPServerLimits,
        isSecure: Bool,
        acceptedAt now: NIODeadline
    ) throws {
        try sync.addHandler(HTTPByteArrivalHandler())
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderListSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldSize = limits.maxHeaderBytes
        decoderLimits.maxHeaderFieldCount = limits.maxHeaderCount
        // Parser errors are answered by HTTPRequestHandler (431 for headers over the cap).
        try sync.configureHTTPServerPipeline(
            withErrorHandling: false, withEncoderConfiguration: .init(),
            withDecoderLimitConfiguration: decoderLimits)
        try sync.addHandler(HTTPRequestHandler(router: router, limits: limits, isSecure: isSecure, acceptedAt: now))
    }

    /// Stops accepting and closes every open connection.
    public func stop() async throws {
        let (server, connections) = self.state.withLock { state -> ((any Channel)?, [any Channel]) in
            state.stopped = true
            let server = state.serverChannel
            state.serverChannel = nil
            let connections = Array(state.connections.values)
            state.connections.removeAll()
            return (server, connections)
        }
        if let server {
            try? await server.close()
        }
        for connection in connections {
            try? await connection.close()
        }
    }
}

public enum HTTPServerError: Error, Sendable, CustomStringConvertible {
    case noBoundPort
    case alreadyStarted

    public var description: String {
        switch self {
        case .noBoundPort: return "the HTTP server socket has no local port"
        case .alreadyStarted: return "the HTTP server is already started"
        }
    }
}
