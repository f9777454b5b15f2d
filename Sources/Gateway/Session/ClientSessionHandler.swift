import Audit
import Foundation
import Logging
import NIOCore
import NIOTLS
import TDS
import TDSNIO

/// The client side of one proxied session up to the end of login. It feeds every input to
/// `ClientSessionStateMachine` and carries out the actions it returns: writes, TLS
/// commands, the login task (started, cancelled), the deadline, the hand-over to the relay.
final class ClientSessionHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = TDSMessage
    typealias OutboundOut = ByteBuffer

    private var machine: ClientSessionStateMachine
    private let context: GatewayContext
    private let listener: ListenerConfig
    private let record: SessionRecord
    private let tap: SessionTap
    private let loginStarter: LoginStarter
    private let loginTimeout: TimeAmount

    private var channelContext: ChannelHandlerContext?
    private var deadline: Scheduled<Void>?
    /// The running login (authentication, policy, backend); cancelled when the client leaves
    /// or runs out of time.
    private var loginTask: Task<Void, Never>?
    private var login: Login7?
    /// A completed login waiting for `handOff`.
    private var loginResult: SessionLoginResult?
    /// The login waiting for the client's next SSPI message (integrated logins).
    private var sspiWaiter: EventLoopPromise<[UInt8]>?
    private var sspiTimeout: Scheduled<Void>?

    /// The connection's place in the listener's limits (nil when it was admitted over one,
    /// or the listener has none).
    private let ticket: ConnectionTicket?

    init(context: GatewayContext, listener: ListenerConfig, hasCertificate: Bool, record: SessionRecord,
         tap: SessionTap, loginTimeout: TimeAmount, admission: Result<ConnectionTicket, LimitExceeded>? = nil,
         loginStarter: LoginStarter? = nil) {
        self.context = context
        if case .success(let t)? = admission { ticket = t } else { ticket = nil }
        self.listener = listener
        self.record = record
        self.tap = tap
        self.loginTimeout = loginTimeout
        self.loginStarter = loginStarter ?? .sessionLogin(context: context, listener: listener)
        self.machine = ClientSessionStateMachine(settings: .init(
            listener: listener.name, allowed: listener.clientEncryption, hasCertificate: hasCertificate,
            loginTimeoutSeconds: Int(loginTimeout.nanoseconds / 1_000_000_000),
            overLimit: { if case .failure(let over)? = admission { return over } else { return nil } }()))
    }

    // MARK: Inputs

    func handlerAdded(context ctx: ChannelHandlerContext) {
        channelContext = ctx
        if let address = ctx.channel.remoteAddress {
            record.clientAddress = address.ipAddress ?? "?"
            record.clientPort = address.port
        }
        let me = NIOLoopBound(self, eventLoop: ctx.eventLoop)
        deadline = ctx.eventLoop.scheduleTask(in: loginTimeout) {
            let handler = me.value
            handler.run(handler.machine.deadlineFired())
        }
        let record = self.record
        let boundRecord = NIOLoopBound(record, eventLoop: ctx.eventLoop)
        ctx.channel.closeFuture.whenComplete { _ in boundRecord.value.write() }
    }

    func handlerRemoved(context ctx: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        channelContext = nil
    }

    func channelActive(context ctx: ChannelHandlerContext) {
        if let address = ctx.channel.remoteAddress {
            record.clientAddress = address.ipAddress ?? "?"
            record.clientPort = address.port
        }
        ctx.fireChannelActive()
    }

    func userInboundEventTriggered(context ctx: ChannelHandlerContext, event: Any) {
        if case .strictTLSStarted? = event as? TDSTransportEvent {
            run(machine.strictTLSStarted())
        } else if case .handshakeCompleted? = event as? TLSUserEvent {
            run(machine.tlsHandshakeCompleted())
        } else if let proxy = event as? ProxyProtocolEvent {
            switch proxy {
            case .received(let header):
                // The balancer's client: what throttling, policy, the audit trail and the
                // session list see from here on.
                if let source = header.source {
                    record.clientAddress = source.ipAddress ?? "?"
                    record.clientPort = source.port
                }
            case .rejected(let why):
                context.metrics.connectionRefused(listener: listener.name, limit: "proxy_protocol")
                context.logger.notice("connection refused: PROXY protocol", metadata: [
                    "session": "\(record.id)", "listener": "\(listener.name)", "reason": "\(why)",
                ])
                record.end(.error("PROXY protocol: \(why)"))
            }
        } else if let request = event as? SessionCloseRequest {
            run(machine.closeRequested(request.reason))
            return
        }
        ctx.fireUserInboundEventTriggered(event)
    }

    func channelRead(context ctx: ChannelHandlerContext, data: NIOAny) {
        let message = unwrapInboundIn(data)
        switch message.type {
        case .prelogin:
            run(machine.prelogin(Result { try PreloginMessage(parsing: message.payload) }.mapError(Self.decodingError)))
        case .login7:
            run(machine.login7(Result { try Login7(parsing: message.payload) }.mapError(Self.decodingError)))
        case .sspi:
            run(machine.sspi(Array(message.payload.readableBytesView)))
        default:
            run(machine.message(message.type))
        }
    }

    func channelInactive(context ctx: ChannelHandlerContext) {
        run(machine.channelInactive())
        ctx.fireChannelInactive()
    }

    func errorCaught(context ctx: ChannelHandlerContext, error: any Error) {
        if error is TDSDecodingError {
            run(machine.decodingFailed(error))
            return
        }
        // TLS and transport failures: no TDS message can be written.
        record.end(.error("\(error)"))
        context.logger.info("session ended before login", metadata: ["session": "\(record.id)", "client": "\(record.clientAddress)", "reason": "\(error)"])
        ctx.close(promise: nil)
    }

    private static func decodingError(_ error: any Error) -> TDSDecodingError {
        error as? TDSDecodingError ?? TDSDecodingError(field: "message", reason: "\(error)")
    }

    // MARK: Actions

    private func run(_ actions: [ClientSessionStateMachine.Action]) {
        guard let ctx = channelContext else { return }
        for action in actions {
            switch action {
            case .answerPrelogin(let response):
                var payload = ctx.channel.allocator.buffer(capacity: 64)
                response.write(into: &payload)
                write(ctx, TDSMessage(type: .tabularResult, payload: payload))
            case .startTLS(let loginOnly):
                ctx.triggerUserOutboundEvent(TDSTransportCommand.startTLSInPrelogin(loginOnly: loginOnly), promise: nil)
            case .dropTLS:
                ctx.triggerUserOutboundEvent(TDSTransportCommand.dropTLS, promise: nil)
            case .beginLogin(let login, let negotiated):
                beginLogin(ctx, login, negotiated)
            case .sendSSPI(let token):
                sendSSPI(ctx, token)
            case .deliverSSPI(let token):
                settleSSPI { $0.succeed(token) }
            case .failSSPI(let reason):
                settleSSPI { $0.fail(SSPIConversationError(description: reason)) }
            case .cancelLogin:
                if loginTask != nil {
                    // The client left, ran out of login_timeout_s, or tdsgate is closing it.
                    context.logger.info("login cancelled", metadata: ["session": "\(record.id)", "client": "\(record.clientAddress)"])
                }
                loginTask?.cancel()
                loginTask = nil
                settleSSPI { $0.fail(SSPIConversationError(description: "the login was cancelled")) }
            case .handOff:
                handOff(ctx)
            case .discardBackend:
                loginResult?.backend.close()
                loginResult = nil
            case .countOverLimit(let over, let login, let negotiated):
                auditStart(login, negotiated)
                context.metrics.connectionRefused(listener: listener.name, limit: over.setting)
                context.logger.notice("connection refused: listener at its limit", metadata: [
                    "session": "\(record.id)", "client": "\(record.clientAddress)", "listener": "\(listener.name)", "limit": "\(over.setting)",
                ])
                record.record(.loginOutcome(session: record.auditSession, outcome: .refused, errorNumber: 10928,
                                            errorMessage: over.refusal(listener: listener.name).message, durationMs: record.elapsedMs))
            case .refuse(let refusal, let reason):
                refuse(ctx, refusal, reason)
            case .close(let reason):
                record.end(reason)
                deadline?.cancel()
                ctx.close(promise: nil)
            case .ended(let reason):
                record.end(reason)
                deadline?.cancel()
            }
        }
    }

    private func write(_ ctx: ChannelHandlerContext, _ message: TDSMessage) {
        var out = ctx.channel.allocator.buffer(capacity: message.payload.readableBytes + 16)
        message.writePackets(into: &out, packetSize: 4096)
        ctx.writeAndFlush(wrapOutboundOut(out), promise: nil)
    }

    /// The session's `session_start` in the audit trail, once its LOGIN7 has been read.
    private func auditStart(_ login: Login7, _ negotiated: ClientSessionStateMachine.Negotiated) {
        let method: AuditEvent.AuthMethod = login.integratedSecurity ? .kerberos : (login.fedAuth == nil ? .sqlLogin : .entraToken)
        let tlsMode: AuditEvent.TLSMode = negotiated.strict ? .strict : (negotiated.tls == .full ? .full : negotiated.tls == .loginOnly ? .loginOnly : .none)
        record.opened(.sessionStart(
            session: record.auditSession, clientAddress: record.clientAddress, clientPort: record.clientPort, listener: listener.name,
            tls: tlsMode, principal: method == .sqlLogin ? login.userName : nil, authMethod: method, requestedDatabase: login.database,
            intent: login.readOnlyIntent ? .readOnly : .readWrite, appName: login.appName, hostName: login.hostName,
            clientInterface: login.clientInterfaceName))
    }

    private func beginLogin(_ ctx: ChannelHandlerContext, _ login: Login7, _ negotiated: ClientSessionStateMachine.Negotiated) {
        self.login = login
        auditStart(login, negotiated)
        if let audit = context.audit, audit.statementsEnabled {
            tap.add(StatementAuditor(audit: audit, session: record.auditSession, mask: context.config.audit?.maskLiterals ?? true))
        }
        let loop = ctx.eventLoop
        let me = NIOLoopBound(self, eventLoop: loop)
        var inputs = LoginInputs(clientAddress: record.clientAddress, auditSession: record.auditSession, mars: negotiated.mars,
                                 tap: NIOLoopBound(tap, eventLoop: loop), eventLoop: loop)
        if login.integratedSecurity {
            inputs.sspi = SSPIConversation { token in
                try await loop.flatSubmit { me.value.sspiLeg(token, on: loop) }.get()
            }
        }
        let starter = loginStarter
        loginTask = Task {
            let result: Result<SessionLoginResult, LoginRefusal>
            do throws(LoginRefusal) {
                result = .success(try await starter.run(login, inputs))
            } catch {
                result = .failure(error)
            }
            loop.execute { me.value.loginFinished(result) }
        }
    }

    /// The login's outcome, back on the event loop.
    private func loginFinished(_ result: Result<SessionLoginResult, LoginRefusal>) {
        loginTask = nil
        switch result {
        case .success(let r):
            loginResult = r
            run(machine.loginSucceeded())
        case .failure(let refusal):
            guard case .loggingIn = machine.state else { return }
            let user = login.map { $0.fedAuth == nil ? $0.userName : "<token>" } ?? "?"
            context.metrics.login(listener: listener.name, outcome: "refused")
            context.logger.info("login refused", metadata: [
                "session": "\(record.id)", "client": "\(record.clientAddress)", "user": "\(user)",
                "error": "\(refusal.number)", "reason": "\(refusal.message)",
            ])
            record.record(.loginOutcome(session: record.auditSession, outcome: .refused, errorNumber: Int(refusal.number),
                                        errorMessage: refusal.message, durationMs: record.elapsedMs))
            run(machine.loginFailed(refusal))
        }
    }

    /// One leg of an integrated login, asked for by the login task (on the event loop).
    private func sspiLeg(_ token: [UInt8], on loop: any EventLoop) -> EventLoopFuture<[UInt8]> {
        let promise = loop.makePromise(of: [UInt8].self)
        guard channelContext != nil else {
            promise.fail(SSPIConversationError(description: "the client connection is closed"))
            return promise.futureResult
        }
        guard sspiWaiter == nil else {
            promise.fail(SSPIConversationError(description: "an SSPI leg is already waiting"))
            return promise.futureResult
        }
        sspiWaiter = promise
        run(machine.sspiTokenReady(token))
        return promise.futureResult
    }

    private func sendSSPI(_ ctx: ChannelHandlerContext, _ token: [UInt8]) {
        var body = ctx.channel.allocator.buffer(capacity: token.count + 8)
        TDSToken.sspi(token).write(into: &body)
        write(ctx, TDSMessage(type: .tabularResult, payload: body))
        let me = NIOLoopBound(self, eventLoop: ctx.eventLoop)
        let seconds = Int(SSPIConversation.legTimeout.nanoseconds / 1_000_000_000)
        sspiTimeout = ctx.eventLoop.scheduleTask(in: SSPIConversation.legTimeout) {
            let handler = me.value
            handler.run(handler.machine.sspiTimedOut(after: seconds))
        }
    }

    private func settleSSPI(_ body: (EventLoopPromise<[UInt8]>) -> Void) {
        sspiTimeout?.cancel()
        sspiTimeout = nil
        if let waiter = sspiWaiter {
            sspiWaiter = nil
            body(waiter)
        }
    }

    private func handOff(_ ctx: ChannelHandlerContext) {
        deadline?.cancel()
        guard let r = loginResult, let login else { return }
        loginResult = nil
        guard ctx.channel.isActive else {
            r.backend.close()
            return
        }
        context.metrics.login(listener: listener.name, outcome: "ok")
        ticket?.loggedIn()
        record.record(.loginOutcome(session: record.auditSession, outcome: .success, durationMs: record.elapsedMs))
        write(ctx, TDSMessage(type: .tabularResult, payload: r.clientReply))
        let info = SessionInfo(
            id: record.id, client: record.clientPort.map { Self.hostPort(record.clientAddress, $0) } ?? record.clientAddress, principal: r.principal.name, authMethod: r.principal.method.rawValue,
            cluster: r.cluster.config.name, endpoint: r.endpoint, intent: r.intent.rawValue, database: r.database,
            appName: login.appName, hostName: login.hostName, backendIdentity: r.backendIdentity, openedAt: Date())
        record.principal = r.principal.name
        do {
            try Relay.start(client: ctx, backend: r.backend, info: info, cluster: r.cluster, intent: r.intent,
                            record: record, tap: tap, pooled: r.pooled)
            tap.identified(info)
        } catch {
            record.end(.error("the relay could not start: \(error)"))
            r.backend.close()
            ctx.close(promise: nil)
            return
        }
        context.logger.info("session relaying", metadata: [
            "session": "\(record.id)", "client": "\(record.clientAddress)", "principal": "\(r.principal.name)",
            "method": "\(r.principal.method.rawValue)", "cluster": "\(r.cluster.config.name)", "endpoint": "\(r.endpoint)", "database": "\(r.database)",
            "intent": "\(login.readOnlyIntent ? "ReadOnly" : "ReadWrite")", "backend": "\(r.backend.target)",
            "redirects": "\(r.hops)", "retries": "\(r.retries)", "pooled": "\(r.pooled == nil ? "no" : (r.reused ? "reused" : "new"))",
            "login_ms": "\(record.elapsedMs)",
        ])
    }

    /// `host:port`, with IPv6 addresses in brackets.
    static func hostPort(_ host: String, _ port: Int) -> String {
        host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)"
    }

    private func refuse(_ ctx: ChannelHandlerContext, _ refusal: LoginRefusal, _ reason: SessionEndReason) {
        record.end(reason)
        deadline?.cancel()
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

/// What a session's login gets from the client side.
struct LoginInputs: Sendable {
    var clientAddress: String
    var auditSession: String
    /// The client negotiated MARS: the backend leg asks for it too.
    var mars: Bool
    /// Present for integrated logins: more SSPI legs go through the client.
    var sspi: SSPIConversation? = nil
    var tap: NIOLoopBound<SessionTap>
    var eventLoop: any EventLoop
}

/// Starts a session's login: `SessionLogin` in production, a stand-in in tests.
struct LoginStarter: Sendable {
    var run: @Sendable (_ login: Login7, _ inputs: LoginInputs) async throws(LoginRefusal) -> SessionLoginResult

    static func sessionLogin(context: GatewayContext, listener: ListenerConfig) -> LoginStarter {
        LoginStarter { login, inputs throws(LoginRefusal) in
            var run = SessionLogin(context: context, listener: listener, clientAddress: inputs.clientAddress, eventLoop: inputs.eventLoop)
            run.auditSession = inputs.auditSession
            run.tap = inputs.tap
            run.mars = inputs.mars
            run.sspi = inputs.sspi
            return try await run.run(login)
        }
    }
}
