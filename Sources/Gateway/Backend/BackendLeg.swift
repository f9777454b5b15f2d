import NIOCore
import NIOPosix
import NIOSSL
import TDS
import TDSNIO

/// Where a backend login goes.
struct BackendTarget: Sendable, CustomStringConvertible {
    var host: String
    var port: Int
    var tlsName: String
    var caFile: String?
    var strict: Bool
    var connectTimeout: TimeAmount

    var description: String { "\(host):\(port)" }
}

/// Why a backend step failed, in words for the client's error message and the log.
struct BackendError: Error, CustomStringConvertible {
    var description: String
}

/// Hands inbound TDS messages to whoever awaits the next one during the login exchange.
final class BackendMessageHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = TDSMessage
    private var queue: [TDSMessage] = []
    private var waiter: EventLoopPromise<TDSMessage>?
    private var failure: (any Error)?

    func next(on loop: any EventLoop) -> EventLoopFuture<TDSMessage> {
        loop.assertInEventLoop()
        if !queue.isEmpty { return loop.makeSucceededFuture(queue.removeFirst()) }
        if let failure { return loop.makeFailedFuture(failure) }
        let p = loop.makePromise(of: TDSMessage.self)
        waiter = p
        return p.futureResult
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let m = unwrapInboundIn(data)
        if let w = waiter {
            waiter = nil
            w.succeed(m)
        } else {
            queue.append(m)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error)
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(BackendError(description: "the server closed the connection"))
        context.fireChannelInactive()
    }

    private func fail(_ error: any Error) {
        if failure == nil { failure = error }
        if let w = waiter {
            waiter = nil
            w.fail(error)
        }
    }
}

/// One connection from tdsgate to an Azure SQL endpoint, up to the end of its login.
/// It lives on the client channel's event loop so the relay never crosses threads.
final class BackendLeg: @unchecked Sendable {
    let channel: any Channel
    let target: BackendTarget
    /// The pipeline's handlers: touched only on the channel's event loop.
    private let transport: NIOLoopBound<TDSClientTransportHandler>
    private let messages: NIOLoopBound<BackendMessageHandler>
    private let framing: NIOLoopBound<TDSMessageFramingHandler>
    private(set) var serverPrelogin: PreloginMessage?

    private init(channel: any Channel, target: BackendTarget, transport: NIOLoopBound<TDSClientTransportHandler>,
                 messages: NIOLoopBound<BackendMessageHandler>, framing: NIOLoopBound<TDSMessageFramingHandler>) {
        self.channel = channel
        self.target = target
        self.transport = transport
        self.messages = messages
        self.framing = framing
    }

    /// Connects and, in strict mode, completes TLS before any TDS byte. The channel is
    /// handed to `cutoff` as soon as it exists, so a deadline or a cancellation closes it
    /// even while the TCP connect is still under way.
    static func connect(_ target: BackendTarget, on loop: any EventLoop, tls: BackendTLSContexts,
                        tap: NIOLoopBound<SessionTap>? = nil, cutoff: AttemptCutoff? = nil,
                        connectTimeout: TimeAmount? = nil) async throws -> BackendLeg {
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: loop)
                .connectTimeout(connectTimeout ?? target.connectTimeout)
                .channelOption(.socketOption(.tcp_nodelay), value: 1)
                .channelInitializer { ch in
                    cutoff?.attach(ch)
                    return ch.eventLoop.makeCompletedFuture {
                        try ch.pipeline.syncOperations.addHandler(TDSClientTransportHandler())
                        // Right above the transport, so TLS (added after the transport) lands below it.
                        if let tap { try ch.pipeline.syncOperations.addHandler(PacketTapHandler(leg: .backend, tap: tap.value)) }
                        try ch.pipeline.syncOperations.addHandlers([
                            TDSMessageFramingHandler(maxMessageSize: 64 * 1024 * 1024), BackendMessageHandler(),
                        ])
                    }
                }
                .connect(host: target.host, port: target.port).get()
        } catch {
            throw BackendError(description: "cannot connect to \(target): \(error)")
        }
        let leg = try await channel.eventLoop.submit {
            let ops = channel.pipeline.syncOperations
            let loop = channel.eventLoop
            return BackendLeg(channel: channel, target: target,
                              transport: NIOLoopBound(try ops.handler(type: TDSClientTransportHandler.self), eventLoop: loop),
                              messages: NIOLoopBound(try ops.handler(type: BackendMessageHandler.self), eventLoop: loop),
                              framing: NIOLoopBound(try ops.handler(type: TDSMessageFramingHandler.self), eventLoop: loop))
        }.get()
        if target.strict {
            do {
                try await leg.startTLS(context: tls.context(caFile: target.caFile, strict: true), inPrelogin: false)
            } catch {
                channel.close(promise: nil)
                throw error
            }
        }
        return leg
    }

    func send(_ message: TDSMessage, packetSize: Int = 4096) async throws {
        var out = channel.allocator.buffer(capacity: message.payload.readableBytes + 64)
        message.writePackets(into: &out, packetSize: packetSize)
        try await channel.writeAndFlush(out)
    }

    func receive() async throws -> TDSMessage {
        let loop = channel.eventLoop
        let messages = self.messages
        return try await loop.flatSubmit { messages.value.next(on: loop) }.get()
    }

    /// PRELOGIN with FEDAUTHREQUIRED (tdsgate always logs in with a token), then TLS as
    /// the server asks. tdsgate always asks for encryption: the backend leg is never plain.
    func prelogin(clientTraceID: [UInt8]?, mars: Bool = false) async throws -> PreloginMessage {
        var request = PreloginMessage()
        request.version = PreloginVersion(major: 16, minor: 0, build: 1000, subBuild: 0)
        request.encryption = target.strict ? .notSupported : .on
        request.instance = ""
        request.threadID = 0
        request.mars = mars
        if let clientTraceID { request.traceID = clientTraceID }
        request.fedAuthRequired = 0x01
        var payload = channel.allocator.buffer(capacity: 64)
        request.write(into: &payload)
        try await send(TDSMessage(type: .prelogin, payload: payload))
        let reply = try await receive()
        let response: PreloginMessage
        do {
            response = try PreloginMessage(parsing: reply.payload)
        } catch {
            throw BackendError(description: "\(target) sent a malformed PRELOGIN reply: \(error)")
        }
        serverPrelogin = response
        return response
    }

    func startTLS(context: NIOSSLContext, inPrelogin: Bool) async throws {
        let promise = channel.eventLoop.makePromise(of: String?.self)
        let transport = self.transport
        let tlsName = target.tlsName
        try await channel.eventLoop.submit { [channel] in
            let ssl = try NIOSSLClientHandler(context: context, serverHostname: tlsName)
            if inPrelogin { transport.value.beginHandshakeInPrelogin() }
            try channel.pipeline.syncOperations.addHandler(ssl, position: .after(transport.value))
            try channel.pipeline.syncOperations.addHandler(TLSHandshakeObserver(completed: promise), position: .after(ssl))
        }.get()
        do {
            // Records flow raw from the handshake's end: switch on the event loop, before any
            // other write; a certificate refused below closes the channel anyway.
            let alpn = try await promise.futureResult.map { alpn in
                transport.value.handshakeCompleted()
                return alpn
            }.get()
            if target.strict && alpn != "tds/8.0" {
                throw BackendError(description: "\(target) did not negotiate ALPN tds/8.0 for strict mode")
            }
            let certificate = try await channel.nioSSL_peerCertificate().get()
            guard let der = try certificate?.toDERBytes(), CertificateName.matches(tlsName, certificateDER: der) else {
                throw BackendError(description: "TLS with \(target): the server certificate is not valid for the name '\(tlsName)'")
            }
        } catch let e as BackendError {
            throw e
        } catch {
            throw BackendError(description: "TLS with \(target) (certificate name '\(tlsName)') failed: \(error)")
        }
    }

    func close() {
        channel.close(promise: nil)
    }

    /// Login-time handlers, which the relay replaces (see Relay.swift). Call on the event loop.
    var loginHandlers: (framing: TDSMessageFramingHandler, messages: BackendMessageHandler) { (framing.value, messages.value) }
}
