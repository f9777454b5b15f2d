import Audit
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
    /// PRELOGIN negotiated MARS: both legs speak SMP once the login reply is out.
    private var marsNegotiated = false
    private let context: GatewayContext
    private let listener: ListenerConfig
    private let hasCertificate: Bool
    private let sessionID: Int
    private var clientAddress = "?"
    private let started = Date()
    /// The login waiting for the client's next SSPI message (integrated logins).
    private var sspiWaiter: EventLoopPromise<[UInt8]>?
    /// The audit trail has this session's start and still needs its end (until the relay
    /// takes the session over and writes the end itself).
    private var auditOpen = false
    private var refusedWith: String?
    private var auditSession: String { String(sessionID) }

    private let tap: SessionTap
    /// The running `SessionLogin`: cancelled when the client leaves, so that nothing it
    /// waits for (a primary, a token, a backoff, a backend) goes on for nobody.
    private var loginTask: Task<Void, Never>?

    init(context: GatewayContext, listener: ListenerConfig, hasCertificate: Bool, sessionID: Int, tap: SessionTap = SessionTap(sessionID: 0)) {
        self.tap = tap
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
        if let request = event as? SessionCloseRequest {
            refusedWith = request.reason.errorText
            ctx.close(promise: nil)
            return
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
        case (.loggingIn, .sspi) where sspiWaiter != nil:
            let waiter = sspiWaiter
            sspiWaiter = nil
            waiter?.succeed(Array(message.payload.readableBytesView))
        case (.loggingIn, _):
            // Drivers wait for the login reply; anything else now is a protocol error.
            refuse(ctx, LoginRefusal(number: 4002, severity: 16, message: "The client sent a \(message.type.rawValue) message before its login completed."))
        default:
            refuse(ctx, LoginRefusal(number: 4002, severity: 16, message: "The incoming tabular data stream (TDS) protocol stream is incorrect: unexpected message type 0x\(String(message.type.rawValue, radix: 16)) before login."))
        }
    }

    func channelInactive(context ctx: ChannelHandlerContext) {
        loginTask?.cancel()
        loginTask = nil
        if auditOpen {
            auditOpen = false
            let ms = Int(Date().timeIntervalSince(started) * 1000)
            context.record(.sessionEnd(session: auditSession, durationMs: ms, bytesClientToServer: 0, bytesServerToClient: 0,
                                       endReason: refusedWith == nil ? .clientClosed : .error, error: refusedWith))
        }
        if let waiter = sspiWaiter {
            sspiWaiter = nil
            waiter.fail(SSPIConversationError(description: "the client closed the connection"))
        }
        ctx.fireChannelInactive()
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
        marsNegotiated = decision.response.mars == true
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
        let method: AuditEvent.AuthMethod = login.integratedSecurity ? .kerberos : (login.fedAuth == nil ? .sqlLogin : .entraToken)
        let tlsMode: AuditEvent.TLSMode = strict ? .strict : (tls == .full ? .full : tls == .loginOnly ? .loginOnly : .none)
        context.record(.sessionStart(
            session: auditSession, clientAddress: clientAddress, clientPort: ctx.channel.remoteAddress?.port, listener: listener.name,
            tls: tlsMode, principal: method == .sqlLogin ? login.userName : nil, authMethod: method, requestedDatabase: login.database,
            intent: login.readOnlyIntent ? .readOnly : .readWrite, appName: login.appName, hostName: login.hostName,
            clientInterface: login.clientInterfaceName))
        auditOpen = context.audit != nil
        if let audit = context.audit, audit.statementsEnabled {
            tap.add(StatementAuditor(audit: audit, session: auditSession, mask: context.config.audit?.maskLiterals ?? true))
        }
        var run = SessionLogin(context: context, listener: listener, clientAddress: clientAddress, eventLoop: ctx.eventLoop)
        run.auditSession = auditSession
        run.tap = NIOLoopBound(tap, eventLoop: ctx.eventLoop)
        run.mars = marsNegotiated
        let bound = NIOLoopBound((self, ctx), eventLoop: ctx.eventLoop)
        let loop = ctx.eventLoop
        if login.integratedSecurity {
            run.sspi = SSPIConversation { token in
                try await loop.flatSubmit {
                    let (handler, ctx) = bound.value
                    return handler.sendSSPI(ctx, token)
                }.get()
            }
        }
        loginTask = Task {
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

    /// One leg of an integrated login: the server's SSPI token out, the client's SSPI
    /// message back (or a failure when the client closes or stalls).
    private func sendSSPI(_ ctx: ChannelHandlerContext, _ token: [UInt8]) -> EventLoopFuture<[UInt8]> {
        guard ctx.channel.isActive, sspiWaiter == nil else {
            return ctx.eventLoop.makeFailedFuture(SSPIConversationError(description: "the client connection is closed"))
        }
        var body = ctx.channel.allocator.buffer(capacity: token.count + 8)
        TDSToken.sspi(token).write(into: &body)
        var out = ctx.channel.allocator.buffer(capacity: body.readableBytes + 16)
        TDSMessage(type: .tabularResult, payload: body).writePackets(into: &out, packetSize: 4096)
        let promise = ctx.eventLoop.makePromise(of: [UInt8].self)
        sspiWaiter = promise
        ctx.writeAndFlush(wrapOutboundOut(out), promise: nil)
        let me = NIOLoopBound(self, eventLoop: ctx.eventLoop)
        let timeout = ctx.eventLoop.scheduleTask(in: SSPIConversation.legTimeout) {
            guard me.value.sspiWaiter?.futureResult === promise.futureResult else { return }
            me.value.sspiWaiter = nil
            promise.fail(SSPIConversationError(description: "the client sent no SSPI reply within \(SSPIConversation.legTimeout.nanoseconds / 1_000_000_000) s"))
        }
        promise.futureResult.whenComplete { _ in timeout.cancel() }
        return promise.futureResult
    }

    private func finish(_ ctx: ChannelHandlerContext, _ result: Result<SessionLoginResult, LoginRefusal>, login: Login7) {
        switch result {
        case .failure(let refusal):
            self.context.metrics.login(listener: listener.name, outcome: "refused")
            self.context.logger.info("login refused", metadata: [
                "session": "\(sessionID)", "client": "\(clientAddress)", "user": "\(login.fedAuth == nil ? login.userName : "<token>")",
                "error": "\(refusal.number)", "reason": "\(refusal.message)",
            ])
            context.record(.loginOutcome(session: auditSession, outcome: .refused, errorNumber: Int(refusal.number),
                                         errorMessage: refusal.message, durationMs: Int(Date().timeIntervalSince(started) * 1000)))
            refuse(ctx, refusal)
        case .success(let r):
            guard ctx.channel.isActive else {
                r.backend.close()
                return
            }
            self.context.metrics.login(listener: listener.name, outcome: "ok")
            context.record(.loginOutcome(session: auditSession, outcome: .success, durationMs: Int(Date().timeIntervalSince(started) * 1000)))
            let reply = r.clientReply
            var out = ctx.channel.allocator.buffer(capacity: reply.readableBytes + 32)
            TDSMessage(type: .tabularResult, payload: reply).writePackets(into: &out, packetSize: 4096)
            ctx.writeAndFlush(wrapOutboundOut(out), promise: nil)
            phase = .done
            do {
                let info = SessionInfo(
                    id: sessionID, client: clientAddress, principal: r.principal.name, authMethod: r.principal.method.rawValue,
                    cluster: r.cluster.config.name, endpoint: r.endpoint, intent: r.intent.rawValue, database: r.database,
                    appName: login.appName, hostName: login.hostName, backendIdentity: r.backendIdentity, openedAt: Date())
                try Relay.start(client: ctx, clientSession: self, backend: r.backend, logger: self.context.logger,
                                info: info, cluster: r.cluster, intent: r.intent, audit: context.audit, started: started, tap: tap)
                auditOpen = false
                tap.identified(info)
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
        refusedWith = refusal.message
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
