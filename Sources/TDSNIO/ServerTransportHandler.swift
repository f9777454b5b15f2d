import NIOCore
import NIOSSL
import TDS

/// Commands the session sends down the pipeline to change the transport under it.
public enum TDSTransportCommand: Sendable {
    /// PRELOGIN has been answered with encryption: the TLS handshake starts inside PRELOGIN
    /// packets. `loginOnly` when both sides said OFF.
    case startTLSInPrelogin(loginOnly: Bool)
    /// Login-only TLS is over (LOGIN7 received): remove TLS, continue in plaintext.
    case dropTLS
}

/// Events the transport sends up to the session.
public enum TDSTransportEvent: Sendable {
    /// The client opened with a TLS handshake (TDS 8.0 strict).
    case strictTLSStarted
    /// Plain TDS bytes that arrived after login-only TLS ended, while the TLS handler was
    /// still in place; the framing handler above treats them as ordinary reads.
    case bypass(ByteBuffer)
}

/// TLS contexts a TDS server uses: TDS 7.x TLS-in-PRELOGIN is capped at TLS 1.2 (ODBC 18,
/// FreeTDS and pymssql hang on 1.3 there); strict mode allows 1.2 and 1.3 with ALPN tds/8.0.
public struct TDSServerTLS: Sendable {
    public let prelogin: NIOSSLContext
    public let strict: NIOSSLContext

    public init(certificateChain: [NIOSSLCertificate], privateKey: NIOSSLPrivateKey) throws {
        var pre = TLSConfiguration.makeServerConfiguration(
            certificateChain: certificateChain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        pre.minimumTLSVersion = .tlsv1
        pre.maximumTLSVersion = .tlsv12
        self.prelogin = try NIOSSLContext(configuration: pre)
        var strict = TLSConfiguration.makeServerConfiguration(
            certificateChain: certificateChain.map { .certificate($0) }, privateKey: .privateKey(privateKey))
        strict.minimumTLSVersion = .tlsv12
        strict.maximumTLSVersion = .tlsv13
        strict.applicationProtocols = ["tds/8.0"]
        self.strict = try NIOSSLContext(configuration: strict)
    }

    public init(certificatePEM: String, privateKeyPEM: String) throws {
        let chain = try NIOSSLCertificate.fromPEMBytes(Array(certificatePEM.utf8))
        let key = try NIOSSLPrivateKey(bytes: Array(privateKeyPEM.utf8), format: .pem)
        try self.init(certificateChain: chain, privateKey: key)
    }
}

/// The socket-side handler of a TDS server connection. It carries out `TransportFraming`'s
/// decisions: inserts and removes the TLS handler, wraps handshake records in PRELOGIN
/// packets, and routes plaintext around TLS when login-only encryption ends.
public final class TDSServerTransportHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private var framing = TransportFraming()
    private let tls: TDSServerTLS?
    private var sslHandler: NIOSSLServerHandler?
    private var bypassed: ByteBuffer?
    private var handshakePacketID: UInt8 = 1
    private let acceptStrict: Bool

    /// `acceptStrict`: whether a connection may open with a TLS handshake (TDS 8.0).
    public init(tls: TDSServerTLS?, acceptStrict: Bool = true) {
        self.tls = tls
        self.acceptStrict = acceptStrict
    }

    /// Nothing left to do but pass bytes through: the handler can leave the pipeline.
    public var isPassThrough: Bool { framing.isPassThrough && bypassed == nil }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        let actions: [TransportFraming.Inbound]
        do {
            actions = try framing.receive(bytes)
        } catch {
            context.fireErrorCaught(error)
            context.close(promise: nil)
            return
        }
        for action in actions {
            switch action {
            case .strictDetected:
                guard let tls, acceptStrict else {
                    context.fireErrorCaught(TDSServerTransportError.strictWithoutCertificate)
                    context.close(promise: nil)
                    return
                }
                let handler = NIOSSLServerHandler(context: tls.strict)
                do {
                    try context.pipeline.syncOperations.addHandler(handler, position: .after(self))
                } catch {
                    context.fireErrorCaught(error)
                    return
                }
                sslHandler = handler
                context.fireUserInboundEventTriggered(TDSTransportEvent.strictTLSStarted)
            case .plainBytes(let b), .tlsBytes(let b):
                context.fireChannelRead(wrapInboundOut(b))
            case .bypassBytes(let b):
                if sslHandler == nil {
                    context.fireChannelRead(wrapInboundOut(b))
                } else if bypassed == nil {
                    bypassed = b
                } else {
                    var b = b
                    bypassed!.writeBuffer(&b)
                }
            }
        }
    }

    public func channelReadComplete(context: ChannelHandlerContext) {
        // TLS decrypts on read-complete, so plaintext that followed the last record goes
        // up only after the decrypted bytes it follows.
        context.fireChannelReadComplete()
        if let b = bypassed {
            bypassed = nil
            context.fireUserInboundEventTriggered(TDSTransportEvent.bypass(b))
        }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard framing.wrapsOutbound else {
            context.write(data, promise: promise)
            return
        }
        let out = HandshakeFraming.wrap(unwrapOutboundIn(data), packetID: &handshakePacketID, allocator: context.channel.allocator)
        context.write(wrapOutboundOut(out), promise: promise)
    }

    public func triggerUserOutboundEvent(context: ChannelHandlerContext, event: Any, promise: EventLoopPromise<Void>?) {
        guard let command = event as? TDSTransportCommand else {
            context.triggerUserOutboundEvent(event, promise: promise)
            return
        }
        switch command {
        case .startTLSInPrelogin(let loginOnly):
            guard let tls else {
                promise?.fail(TDSServerTransportError.encryptionWithoutCertificate)
                return
            }
            framing.startHandshakeInPrelogin()
            framing.loginOnly = loginOnly
            let handler = NIOSSLServerHandler(context: tls.prelogin)
            do {
                try context.pipeline.syncOperations.addHandler(handler, position: .after(self))
                sslHandler = handler
                promise?.succeed(())
            } catch {
                promise?.fail(error)
            }
        case .dropTLS:
            framing.dropTLS()
            if let handler = sslHandler {
                sslHandler = nil
                context.pipeline.syncOperations.removeHandler(handler, promise: promise)
            } else {
                promise?.succeed(())
            }
        }
    }
}

public enum TDSServerTransportError: Error, CustomStringConvertible {
    case strictWithoutCertificate
    case encryptionWithoutCertificate

    public var description: String {
        switch self {
        case .strictWithoutCertificate: return "client started TDS 8.0 strict TLS but this endpoint does not accept strict connections"
        case .encryptionWithoutCertificate: return "encryption negotiated but this endpoint has no certificate"
        }
    }
}
