import Foundation
import Synchronization
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A small HTTP/1.1 server on SwiftNIO for the emulated Azure endpoints (IMDS, Entra, ARM...).
///
/// Requests are read whole (body capped by `maxBodySize`, larger ones get 413 and the connection
/// is closed), dispatched through an ``HTTPRouter`` and answered with `Content-Length`.
/// Keep-alive and pipelining work (NIO's pipelining helper orders the responses).
/// Pass `tlsConfiguration` to serve HTTPS (MSAL insists on an https authority).
public final class HTTPServer: Sendable {
    public let host: String
    public let requestedPort: Int
    public let maxBodySize: Int
    public let router: HTTPRouter
    private let group: any EventLoopGroup
    private let sslContext: NIOSSLContext?
    private let state = Mutex(ServerState())

    private struct ServerState: Sendable {
        var serverChannel: (any Channel)?
        var boundPort: Int?
        var connections: [ObjectIdentifier: any Channel] = [:]
        var stopped = false
    }

    /// - Parameters:
    ///   - port: 0 picks a free port; ``start()`` returns the bound one.
    ///   - tls: a server TLS context (e.g. for a certificate from ``EmulatorPKI``) to serve HTTPS;
    ///     see ``HTTPServer/makeTLSContext(certificatePEM:privateKeyPEM:)``.
    public init(
        group: any EventLoopGroup,
        host: String = "127.0.0.1",
        port: Int = 0,
        routes: [HTTPRoute],
        maxBodySize: Int = 1 << 20,
        tls: NIOSSLContext? = nil
    ) {
        self.group = group
        self.host = host
        self.requestedPort = port
        self.router = HTTPRouter(routes: routes)
        self.maxBodySize = maxBodySize
        self.sslContext = tls
    }

    /// A server TLS context for a PEM certificate (chain) and private key.
    public static func makeTLSContext(certificatePEM: String, privateKeyPEM: String) throws -> NIOSSLContext {
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8)).map { NIOSSLCertificateSource.certificate($0) }
        let key = try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)
        let configuration = TLSConfiguration.makeServerConfiguration(certificateChain: chain, privateKey: .privateKey(key))
        return try NIOSSLContext(configuration: configuration)
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
        let maxBodySize = self.maxBodySize
        let sslContext = self.sslContext
        let bootstrap = ServerBootstrap(group: self.group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.maxMessagesPerRead, value: 16)
            .childChannelInitializer { [self] channel in
                let accepted = self.state.withLock { state -> Bool in
                    guard !state.stopped else { return false }
                    state.connections[ObjectIdentifier(channel)] = channel
                    return true
                }
                guard accepted else { return channel.close() }
                channel.closeFuture.whenComplete { _ in
                    self.state.withLock { _ = $0.connections.removeValue(forKey: ObjectIdentifier(channel)) }
                }
                return channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    if let sslContext {
                        try sync.addHandler(NIOSSLServerHandler(context: sslContext))
                    }
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(
                        EmulatorHTTPHandler(router: router, maxBodySize: maxBodySize, isSecure: sslContext != nil)
                    )
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

/// Collects one request at a time and hands it to the router; writes the reply.
final class EmulatorHTTPHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private enum State {
        case idle
        case reading(HTTPRequestHead, ByteBuffer)
        /// Body over the cap: answered with 413; the rest of the request is read and dropped
        /// (so the client sees the reply instead of a reset), then the connection closes.
        case discarding(remaining: Int)
        case responding
    }

    private let router: HTTPRouter
    private let maxBodySize: Int
    private let isSecure: Bool
    private var state: State = .idle

    init(router: HTTPRouter, maxBodySize: Int, isSecure: Bool) {
        self.router = router
        self.maxBodySize = maxBodySize
        self.isSecure = isSecure
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > self.maxBodySize {
                self.rejectTooLarge(context: context, version: head.version)
                return
            }
            self.state = .reading(head, context.channel.allocator.buffer(capacity: 0))
            // curl sends `Expect: 100-continue` for larger bodies (client assertions can be).
            if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
                let interim = HTTPResponseHead(version: head.version, status: .continue)
                context.writeAndFlush(self.wrapOutboundOut(.head(interim)), promise: nil)
            }
        case .body(var chunk):
            if case .discarding(let remaining) = self.state {
                let left = remaining - chunk.readableBytes
                if left < 0 {
                    context.close(promise: nil)
                } else {
                    self.state = .discarding(remaining: left)
                }
                return
            }
            guard case .reading(let head, var body) = self.state else { return }
            if body.readableBytes + chunk.readableBytes > self.maxBodySize {
                self.rejectTooLarge(context: context, version: head.version)
                return
            }
            self.state = .idle  // drop the reference before mutating (keeps the buffer unique)
            body.writeBuffer(&chunk)
            self.state = .reading(head, body)
        case .end:
            if case .discarding = self.state {
                context.close(promise: nil)
                return
            }
            guard case .reading(let head, let body) = self.state else {
                return
            }
            self.state = .responding
            self.dispatch(context: context, head: head, body: body)
        }
    }

    private func dispatch(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        let request = HTTPServerRequest(
            method: head.method,
            uri: head.uri,
            headers: head.headers,
            body: Array(body.readableBytesView),
            remoteAddress: context.channel.remoteAddress?.description,
            isSecure: self.isSecure
        )
        let keepAlive = head.isKeepAlive
        let version = head.version
        let isHead = head.method == .HEAD
        let router = self.router
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask {
            await router.respond(to: request)
        }.whenSuccess { response in
            let (handler, context) = bound.value
            handler.state = .idle
            handler.write(response, context: context, version: version, keepAlive: keepAlive, omitBody: isHead)
        }
    }

    private func rejectTooLarge(context: ChannelHandlerContext, version: HTTPVersion) {
        // Drain up to 16 MiB more of the refused body before giving up on a polite close.
        self.state = .discarding(remaining: 16 << 20)
        let response = HTTPServerResponse.json(
            [
                "error": "request_entity_too_large",
                "error_description": .string("request body larger than \(self.maxBodySize) bytes"),
            ],
            status: .payloadTooLarge
        )
        self.write(response, context: context, version: version, keepAlive: false, closeAfterwards: false)
    }

    private func write(
        _ response: HTTPServerResponse,
        context: ChannelHandlerContext,
        version: HTTPVersion,
        keepAlive: Bool,
        closeAfterwards: Bool = true,
        omitBody: Bool = false
    ) {
        var headers = response.headers
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
        if !headers.contains(name: "date") {
            headers.add(name: "Date", value: EmulatorHTTPHandler.httpDate(Date()))
        }
        if keepAlive {
            if version.major == 1 && version.minor == 0 {
                headers.replaceOrAdd(name: "Connection", value: "keep-alive")
            }
        } else {
            headers.replaceOrAdd(name: "Connection", value: "close")
        }
        let head = HTTPResponseHead(version: version, status: response.status, headers: headers)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        if !response.body.isEmpty && !omitBody {
            var buffer = context.channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        if keepAlive || !closeAfterwards {
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// RFC 7231 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    static func httpDate(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "GMT") ?? TimeZone(secondsFromGMT: 0)!
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int?) -> String {
            let value = value ?? 0
            return value < 10 ? "0\(value)" : "\(value)"
        }
        let weekday = days[((parts.weekday ?? 1) - 1) % 7]
        let month = months[((parts.month ?? 1) - 1) % 12]
        return "\(weekday), \(two(parts.day)) \(month) \(parts.year ?? 1970) \(two(parts.hour)):\(two(parts.minute)):\(two(parts.second)) GMT"
    }
}
