import Foundation
import Logging
import NIOCore
import TDS
import TDSNIO

/// The client side of one proxied session up to the end of login: answers PRELOGIN,
/// carries out the TLS choice, takes LOGIN7, runs `SessionLogin`, then hands both
/// connections to the relay. Protocol decisions live in the pure functions it calls.
final class ClientSessionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = TDSMessage
    typealias OutboundOut = ByteBuffer

    private enum Phase { case prelogin, login, loggingIn, done }
    private var phase = Phase.prelogin
    private var strict = false
    private var tls = ClientTLSMode.none
    private let context: GatewayContext
    private let listener: ListenerConfig
    private let hasCertificate: Bool
    private let sessionID: Int
    private var clientAddress = "?"
    private let started = Date()

    init(context: GatewayContext, listener: ListenerConfig, hasCertificate: Bool, sessionID: Int) {
        self.context = context
        self.listener = listener
        self.hasCertificate = hasCertificate
        self.sessionID = sessionID
    }

    func channelActive(context ctx: ChannelHandlerContext) {
        clientAddress = ctx.channel.remoteAddress?.ipAddress ?? "?"
        ctx.fireChannelActive()
    }

    func handlerAdded(context ctx: ChannelHandlerContext) {
        if let a = ctx.channel.remoteAddress?.ipAddress { clientAddress = a }
    }

    func userInboundEventTriggered(context ctx: ChannelHandlerContext, event: Any) {
        if case .strictTLSStarted? = event as? TDSTransportEvent {
            strict = true
        }
        ctx.fireUserInboundEventTriggered(event)
    }

    func channelRead(context ctx: ChannelHandlerContext, data: NIOAny) {
        let message = unwrapInboundIn(data)
        switch (phase, message.type) {
        case (.prelogin, .prelogin):
            prelogin(ctx, message)
        case (.prelogin, .login7):
            // TDS 7.0/7.1-era clients send LOGIN7 without PRELOGIN: plaintext listeners only.
            guard listener.clientEncryption.contains(.plaintext) else {
                refuse(ctx, LoginRefusal(message: "Login failed: this client sent no PRELOGIN (a TDS 7.0/7.1-era driver); listener '\(listener.name)' requires TLS, which such clients cannot do."))
                return
            }
            phase = .login
            login(ctx, message)
        case (.login, .login7):
            login(ctx, message)
        case (.loggingIn, _):
            // Drivers wait for the login reply; anything else now is a protocol error.
            refuse(ctx, LoginRefusal(number: 4002, severity: 16, message: "The client sent a \(message.type.rawValue) message before its login completed."))
        default:
            refuse(ctx, LoginRefusal(number: 4002, severity: 16, message: "The incoming tabular data stream (TDS) protocol stream is incorrect: unexpected message type 0x\(String(message.type.rawValue, radix: 16)) before login."))
        }
    }

    func errorCaught(context ctx: ChannelHandlerContext, error: any Error) {
        if error is TDSDecodingError, phase != .done {
            refuse(ctx, LoginRefusal(number: 4002, severity: 16, message: "The incoming tabular data stream (TDS) protocol stream is incorrect: \(error)"))
            return
        }
        self.context.logger.info("session ended before login", metadata: ["session": "\(sessionID)", "client": "\(clientAddress)", "reason": "\(error)"])
        ctx.close(promise: nil)
    }

    private func prelogin(_ ctx: ChannelHandlerContext, _ message: TDSMessage) {
        let request: PreloginMessage
        do {
            request = try PreloginMessage(parsing: message.payload)
        } catch {
            refuse(ctx, LoginRefusal(number: 4002, severity: 16, message: "The PRELOGIN message is malformed: \(error)"))
            return
        }
        let decision = decideClientPrelogin(request, allowed: listener.clientEncryption, hasCertificate: hasCertificate, strict: strict)
        var payload = ctx.channel.allocator.buffer(capacity: 64)
        decision.response.write(into: &payload)
        var out = ctx.channel.allocator.buffer(capacity: 96)
        TDSMessage(type: .tabularResult, payload: payload).writePackets(into: &out, packetSize: 4096)
        ctx.writeAndFlush(wrapOutboundOut(out), promise: nil)
        if let refusal = decision.refusal {
            self.context.logger.info("session refused at PRELOGIN", metadata: ["session": "\(sessionID)", "client": "\(clientAddress)", "reason": "\(refusal)"])
            ctx.close(promise: nil)
            phase = .done
            return
        }
        tls = decision.tls
        if tls != .none {
            ctx.triggerUserOutboundEvent(TDSTransportCommand.startTLSInPrelogin(loginOnly: tls == .loginOnly), promise: nil)
        } else if !strict && !listener.clientEncryption.contains(.plaintext) {
            refuse(ctx, LoginRefusal(message: "Login failed: listener '\(listener.name)' does not allow unencrypted sessions."))
            return
        }
        phase = .login
    }

    private func login(_ ctx: ChannelHandlerContext, _ message: TDSMessage) {
        if tls == .loginOnly {
            ctx.triggerUserOutboundEvent(TDSTransportCommand.dropTLS, promise: nil)
        }
        let login: Login7
        do {
            login = try Login7(parsing: message.payload)
        } catch {
            refuse(ctx, LoginRefusal(number: 4002, severity: 16, message: "The LOGIN7 message is malformed: \(error)"))
            return
        }
        phase = .loggingIn
        let run = SessionLogin(context: context, listener: listener, clientAddress: clientAddress, eventLoop: ctx.eventLoop)
        let bound = NIOLoopBound((self, ctx), eventLoop: ctx.eventLoop)
        let loop = ctx.eventLoop
        Task {
            let result: Result<SessionLoginResult, LoginRefusal>
            do throws(LoginRefusal) {
                result = .success(try await run.run(login))
            } catch {
                result = .failure(error)
            }
            loop.execute {
                let (handler, ctx) = bound.value
                handler.finish(ctx, result, login: login)
            }
        }
    }

    private func finish(_ ctx: ChannelHandlerContext, _ result: Result<SessionLoginResult, LoginRefusal>, login: Login7) {
        switch result {
        case .failure(let refusal):
            self.context.metrics.login(listener: listener.name, outcome: "refused")
            self.context.logger.info("login refused", metadata: [
                "session": "\(sessionID)", "client": "\(clientAddress)", "user": "\(login.fedAuth == nil ? login.userName : "<token>")",
                "error": "\(refusal.number)", "reason": "\(refusal.message)",
            ])
            refuse(ctx, refusal)
        case .success(let r):
            guard ctx.channel.isActive else {
                r.backend.close()
                return
            }
            self.context.metrics.login(listener: listener.name, outcome: "ok")
            var out = ctx.channel.allocator.buffer(capacity: r.clientReply.readableBytes + 32)
            TDSMessage(type: .tabularResult, payload: r.clientReply).writePackets(into: &out, packetSize: 4096)
            ctx.writeAndFlush(wrapOutboundOut(out), promise: nil)
            phase = .done
            do {
                let info = SessionInfo(
                    id: sessionID, client: clientAddress, principal: r.principal.name, authMethod: r.principal.method.rawValue,
                    cluster: r.cluster.config.name, endpoint: r.endpoint, intent: r.intent.rawValue, database: r.database,
                    appName: login.appName, hostName: login.hostName, backendIdentity: r.backendIdentity, openedAt: Date())
                try Relay.start(client: ctx, clientSession: self, backend: r.backend, logger: self.context.logger,
                                info: info, cluster: r.cluster, intent: r.intent)
            } catch {
                r.backend.close()
                ctx.close(promise: nil)
                return
            }
            self.context.logger.info("session relaying", metadata: [
                "session": "\(sessionID)", "client": "\(clientAddress)", "principal": "\(r.principal.name)",
                "method": "\(r.principal.method.rawValue)", "cluster": "\(r.cluster.config.name)", "endpoint": "\(r.endpoint)", "database": "\(r.database)",
                "intent": "\(login.readOnlyIntent ? "ReadOnly" : "ReadWrite")", "backend": "\(r.backend.target)",
                "redirects": "\(r.hops)", "retries": "\(r.retries)",
                "client_tls": "\(strict ? "strict" : "\(tls)")",
                "login_ms": "\(Int(Date().timeIntervalSince(started) * 1000))",
            ])
        }
    }

    private func refuse(_ ctx: ChannelHandlerContext, _ refusal: LoginRefusal) {
        phase = .done
        var body = ctx.channel.allocator.buffer(capacity: 256)
        TDSToken.error(ServerMessage(number: refusal.number, state: refusal.state, severity: refusal.severity,
                                     message: refusal.message, serverName: "tdsgate", procedureName: "", lineNumber: 1)).write(into: &body)
        TDSToken.done(Done(status: .error)).write(into: &body)
        var out = ctx.channel.allocator.buffer(capacity: body.readableBytes + 16)
        TDSMessage(type: .tabularResult, payload: body).writePackets(into: &out, packetSize: 4096)
        let channel = ctx.channel
        ctx.writeAndFlush(wrapOutboundOut(out)).whenComplete { _ in channel.close(promise: nil) }
    }
}
