import Audit
import Foundation
import Identity
import Logging
import NIOCore
import Routing
import TDS

/// A completed login: the backend connection ready for the relay and the reply for the client.
struct SessionLoginResult {
    var backend: BackendLeg
    var clientReply: ByteBuffer
    var principal: Principal
    var cluster: ClusterRuntime
    var endpoint: String
    var intent: SessionIntent
    var database: String
    var hops: Int
    var retries: Int
    var backendIdentity: String
    /// The pool's connection when the cluster pools (`pool:`): the relay gives it back when
    /// the client leaves.
    var pooled: PooledConnection? = nil
    /// The connection was taken from the pool (no backend login happened for this session).
    var reused = false
}

/// The login of one client session, from its LOGIN7 to a logged-in backend connection:
/// who is this, what may they reach, which token, which endpoint, and Azure's redirects
/// and transient errors handled before the client sees any reply.
struct SessionLogin {
    let context: GatewayContext
    let listener: ListenerConfig
    let clientAddress: String
    let eventLoop: any EventLoop
    /// Present when the client can be asked for more SSPI legs (integrated logins).
    var sspi: SSPIConversation? = nil
    /// The session's id in the audit trail.
    var auditSession = ""
    var tap: NIOLoopBound<SessionTap>? = nil
    /// The client negotiated MARS: the backend leg asks for it too (SMP starts after login).
    var mars = false

    /// Runs the whole login. Cancelling the task that runs it (the client left, or its
    /// login deadline fired) stops every wait in it at once: the throttle, the primary wait,
    /// the token fetch, a backoff, a backend attempt (whose connection is closed); a
    /// logged-in backend leg not yet handed over is closed too. It then throws
    /// `LoginRefusal.cancelled`.
    func run(_ login: Login7) async throws(LoginRefusal) -> SessionLoginResult {
        let started = ContinuousClock.now
        defer { context.metrics.loginFinished(listener: listener.name, after: ContinuousClock.now - started) }
        // "May this address try" and "count this failure" are one step: the ticket holds a
        // place in the address's budget until the credentials' verdict settles it.
        guard let ticket = await context.throttle.admit(clientAddress) else {
            if Task.isCancelled { throw .cancelled }
            context.metrics.loginThrottled(listener: listener.name)
            let throttle = context.throttle
            // Unblocked between the refusal and this look: the block was about to end.
            let remaining = throttle.blockRemaining(clientAddress) ?? 1
            throw LoginRefusal.throttled(address: clientAddress, maxFailures: throttle.maxFailures, windowSeconds: Int(throttle.window),
                                         retryAfterSeconds: max(1, Int(remaining.rounded(.up))))
        }
        let principal: Principal
        switch await checkCredentials(login) {
        case .accepted(let p):
            ticket.settle(.succeeded)
            principal = p
        case .refused(let refusal):
            ticket.settle(.failed)
            throw refusal
        case .notChecked(let refusal):
            ticket.settle(.withdrawn)
            throw refusal
        }
        if Task.isCancelled { throw .cancelled }
        guard let runtime = context.cluster(for: listener) else {
            throw LoginRefusal.noCluster(listener: listener.name, named: listener.cluster, clusters: context.clusters.keys.sorted())
        }
        let cluster = runtime.config
        let database = login.database.isEmpty ? (cluster.databases.first ?? "") : login.database
        if !cluster.databases.isEmpty, !cluster.databases.contains(where: { $0.lowercased() == database.lowercased() }) {
            throw LoginRefusal.databaseNotServed(database: database, cluster: cluster.name, served: cluster.databases)
        }
        let decision = context.policy.decide(principal: principal, cluster: cluster.name, database: database, readOnlyIntent: login.readOnlyIntent)
        let rule: PolicyRule
        let forceReadOnly: Bool
        switch decision {
        case .denied(let reason):
            context.logger.notice("login denied", metadata: ["client": "\(clientAddress)", "principal": "\(principal.name)", "reason": "\(reason)"])
            context.record(.policyDecision(session: auditSession, decision: .denied, rule: "default deny", principal: principal.name,
                                           cluster: cluster.name, database: database, reason: reason))
            throw LoginRefusal(message: "Login failed for user '\(principal.name)': \(reason).")
        case .allowed(let r, let force):
            rule = r
            forceReadOnly = force
            context.record(.policyDecision(session: auditSession, decision: .allowed, rule: r.name, principal: principal.name,
                                           cluster: cluster.name, database: database, writeAllowed: r.write && !force,
                                           backendIdentity: r.backendIdentity))
        }
        let deadline = started + .milliseconds(cluster.loginTimeoutMs)
        return try await connectBackend(login: login, principal: principal, runtime: runtime, database: database,
                                        rule: rule, forceReadOnly: forceReadOnly, deadline: deadline)
    }

    /// What the client's credentials came to. Only a verdict on them (accepted or refused)
    /// feeds the throttle; a login that cannot be checked here (a method the listener does
    /// not offer) says nothing about the address.
    private enum CredentialCheck {
        case accepted(Principal)
        case refused(LoginRefusal)
        case notChecked(LoginRefusal)
    }

    private func checkCredentials(_ login: Login7) async -> CredentialCheck {
        if login.integratedSecurity {
            return await checkKerberos(login)
        }
        switch login.fedAuth {
        case .securityToken(let token, _, _)?:
            guard let validator = context.entraValidators[listener.name] else {
                return .notChecked(LoginRefusal(message: "Login failed: listener '\(listener.name)' does not accept Entra access tokens; use a SQL login."))
            }
            do {
                return .accepted(try await validator.validate(token))
            } catch {
                if Task.isCancelled { return .notChecked(.cancelled) }
                return .refused(LoginRefusal(message: "Login failed: the Entra access token was refused: \(error)."))
            }
        case .msal?:
            return .notChecked(LoginRefusal(message: "Login failed: tdsgate accepts Entra access tokens (ActiveDirectoryAccessToken); the interactive/MSAL authentication workflow is not supported."))
        case nil:
            guard let p = await context.verifyPassword(user: login.userName, password: login.password) else {
                return .refused(LoginRefusal(message: "Login failed for user '\(ClientText.echo(login.userName))'."))
            }
            return .accepted(p)
        }
    }

    /// Integrated security: tdsgate is the GSSAPI acceptor; more legs go through SSPI
    /// messages until the context is established or refused.
    private func checkKerberos(_ login: Login7) async -> CredentialCheck {
        guard let acceptor = context.kerberosAcceptors[listener.name] else {
            return .notChecked(LoginRefusal(message: "Login failed: integrated (Windows/Kerberos) authentication is not enabled on listener '\(listener.name)'; use a SQL login or an Entra access token."))
        }
        var exchange = acceptor.startExchange()
        var token = login.sspi
        while true {
            switch exchange.step(token) {
            case .continueNeeded(let reply):
                guard let sspi else {
                    return .notChecked(.kerberosNeedsAnotherStep)
                }
                do {
                    token = try await sspi.exchange(reply)
                } catch {
                    if Task.isCancelled { return .notChecked(.cancelled) }
                    return .refused(LoginRefusal(message: "Login failed: the Kerberos exchange did not complete: \(error)."))
                }
            case .accepted(let identity, _):
                // The acceptor's last token (the mutual-authentication AP-REP) is not sent:
                // SQL Server sends SSPI tokens only while it needs another leg, and ODBC
                // Driver 18 answers an SSPI token next to LOGINACK with one more SSPI
                // message and waits, so the login never completes.
                return .accepted(Principal(method: .kerberos, name: identity.mappedName, kerberosPrincipal: identity.principal))
            case .refused(let refusal):
                context.logger.notice("kerberos login refused", metadata: [
                    "client": "\(clientAddress)", "listener": "\(listener.name)", "code": "\(refusal.code.rawValue)",
                    "detail": "\(refusal.detail ?? "")",
                ])
                return .refused(LoginRefusal(message: "Login failed: Kerberos: \(refusal.message)"))
            }
        }
    }

    /// Carries out the backend login plan: each action is one step of I/O (route, one
    /// attempt, a backoff), each result goes back in as an input. Every decision (redirects,
    /// retries, backoff, rerouting, what counts against an endpoint, the refusal) is the
    /// plan's.
    private func connectBackend(login: Login7, principal: Principal, runtime: ClusterRuntime, database: String,
                                rule: PolicyRule, forceReadOnly: Bool, deadline: ContinuousClock.Instant) async throws(LoginRefusal) -> SessionLoginResult {
        let cluster = runtime.config
        let intent = SessionIntent(readOnlyIntent: login.readOnlyIntent, writeAllowed: !forceReadOnly)
        let matchedRule = runtime.rules.match(intent: intent, database: database, principalRoles: principal.routingNames)
        var plan = BackendLoginPlan(placement: .router, deadline: deadline, followsRedirects: cluster.connectionPolicy != .proxy)
        var random = SystemRandomNumberGenerator()
        var routeReason = RouteReason.primary
        var endpoint: EndpointConfig?
        var loggedIn: BackendLoginAttempt.Reply?
        // Session mode pooling; MARS sessions are not pooled (their SMP state is the client's).
        let pool = mars ? nil : runtime.pool
        var slot: BackendPool.PoolSlot?
        var tokenExpiresOn = Date.distantFuture
        defer { if let slot { pool?.abandon(slot) } }
        let tag = (rule.tagAppName || listener.tagSessions) ? sessionTag(principal: principal.name) : nil
        var action = plan.start(now: .now)
        while true {
            if Task.isCancelled {
                loggedIn?.leg.close()
                throw .cancelled
            }
            switch action {
            case .route(let avoiding):
                let decision: RouteDecision
                do {
                    decision = try await runtime.route(intent: intent, database: database, options: matchedRule.options,
                                                       deadline: deadline, avoiding: avoiding)
                } catch {
                    throw .cancelled
                }
                switch decision {
                case .refuse(let refusal):
                    action = plan.routeRefused(refusal)
                case .wait:
                    continue   // route() waits itself and never answers .wait
                case .endpoint(let name, let reason):
                    guard let chosen = runtime.endpoint(named: name) else {
                        preconditionFailure("the router chose '\(name)', which cluster '\(cluster.name)' does not configure")
                    }
                    endpoint = chosen
                    routeReason = reason
                    var onReplica = false
                    if case .replica = reason { onReplica = true }
                    action = plan.routed(to: name, onReplica: onReplica,
                                         anotherEligible: runtime.hasAlternative(intent: intent, options: matchedRule.options,
                                                                                 besides: plan.failedEndpoints.union([name])),
                                         now: .now)
                }
            case .attempt(let target, let attemptDeadline):
                guard let endpoint, endpoint.name == target.endpoint else {
                    preconditionFailure("an attempt for '\(target.endpoint)' that the router did not choose")
                }
                if let pool, target.redirect == nil, slot?.key.endpoint != endpoint.name {
                    if let old = slot {
                        pool.abandon(old)
                        slot = nil
                    }
                    let shape = backendLogin7(from: login, accessToken: "", fedAuthEcho: false, nonce: nil,
                                              appNameTag: tag, forceReadOnly: forceReadOnly)
                    let key = PoolKey(endpoint: endpoint.name, backendIdentity: rule.backendIdentity, database: database, backendLogin: shape)
                    switch await pool.acquire(key: key, loop: eventLoop) {
                    case .reused(let c):
                        guard c.leg.channel.isActive else {
                            // Closed by the server a moment ago: give it back, ask again.
                            pool.release(c, reusable: false)
                            continue
                        }
                        let clientReply: ByteBuffer
                        do {
                            clientReply = try clientLoginReply(c.loginReply, clientFeatures: Set(login.features.map(\.id)),
                                                               clientSentFeatureExt: login.hasFeatureExtension)
                        } catch {
                            pool.release(c, reusable: false)
                            throw LoginRefusal(message: "Login failed: the pooled login reply from cluster '\(cluster.name)' is malformed: \(error)")
                        }
                        context.record(.backendChosen(
                            session: auditSession, cluster: cluster.name, endpoint: endpoint.name,
                            role: runtime.currentPrimary == endpoint.name ? .primary : (endpoint.geo ? .geoSecondary : .secondary),
                            backendIdentity: rule.backendIdentity, redirectHops: 0, retries: plan.retries,
                            routeReason: (matchedRule.rule.map { "rule \($0): \(routeReason)" } ?? "\(routeReason)") + ", pooled connection"))
                        return SessionLoginResult(backend: c.leg, clientReply: clientReply, principal: principal, cluster: runtime,
                                                  endpoint: endpoint.name, intent: intent, database: c.database,
                                                  hops: 0, retries: plan.retries, backendIdentity: rule.backendIdentity,
                                                  pooled: c, reused: true)
                    case .connect(let s):
                        slot = s
                    case .refused:
                        if Task.isCancelled { throw .cancelled }
                        throw LoginRefusal.resourceLimit(
                            cluster: cluster.name,
                            "tdsgate's pool for endpoint '\(endpoint.name)' and backend identity '\(rule.backendIdentity)' holds its limit of \(pool.config.maxBackendConnections) connections (pool.max_backend_connections) and none came free within \(pool.config.acquireTimeoutMs) ms")
                    }
                }
                let token: AccessToken
                do {
                    token = try await context.tokens.token(identity: rule.backendIdentity)
                } catch {
                    if Task.isCancelled { throw .cancelled }
                    throw LoginRefusal(message: "Login failed: tdsgate could not get an access token for backend identity '\(rule.backendIdentity)': \(error)")
                }
                let accessToken = token.token
                tokenExpiresOn = token.expiresOn
                let backendLogin: BackendLoginAttempt.Login7Builder = { echo, nonce in
                    backendLogin7(from: login, accessToken: accessToken, fedAuthEcho: echo, nonce: nonce,
                                  appNameTag: tag, forceReadOnly: forceReadOnly)
                }
                let result = await BackendLoginAttempt(tls: context.backendTLS, eventLoop: eventLoop, tap: tap, metrics: context.metrics)
                    .run(target: backendTarget(target, endpoint: endpoint, cluster: cluster), deadline: attemptDeadline,
                         login: backendLogin, mars: mars)
                let outcome: LoginAttemptOutcome
                switch result {
                case .failure(.cancelled):
                    throw .cancelled
                case .failure(let failure):
                    outcome = .failed(failure.loginFailure ?? .timedOut)
                case .success(let reply):
                    outcome = Self.outcome(of: reply.parsed)
                    if outcome == .loggedIn { loggedIn = reply } else { reply.leg.close() }
                }
                let step = plan.attemptEnded(outcome, now: .now, random: &random)
                if let failure = step.endpointFailure {
                    runtime.recordPassiveFailure(failure.reason, for: failure.endpoint)
                }
                action = step.action
            case .backOff(let delay):
                do {
                    try await Task.sleep(for: delay)
                } catch {
                    throw .cancelled
                }
                action = plan.backOffEnded(now: .now)
            case .loggedIn:
                guard let reply = loggedIn, let endpoint else { preconditionFailure("logged in without a leg") }
                do {
                    let clientReply = try clientLoginReply(reply.payload, clientFeatures: Set(login.features.map(\.id)),
                                                           clientSentFeatureExt: login.hasFeatureExtension)
                    context.record(.backendChosen(
                        session: auditSession, cluster: cluster.name, endpoint: endpoint.name,
                        role: runtime.currentPrimary == endpoint.name ? .primary : (endpoint.geo ? .geoSecondary : .secondary),
                        backendIdentity: rule.backendIdentity, redirectHops: plan.hops, retries: plan.retries,
                        routeReason: matchedRule.rule.map { "rule \($0): \(routeReason)" } ?? "\(routeReason)"))
                    let finalDatabase = reply.parsed.database ?? database
                    var pooled: PooledConnection?
                    if let pool, let s = slot {
                        slot = nil
                        pooled = pool.connected(s, leg: reply.leg, loginReply: reply.payload, database: finalDatabase,
                                                tokenExpiresOn: tokenExpiresOn)
                    }
                    return SessionLoginResult(backend: reply.leg, clientReply: clientReply, principal: principal, cluster: runtime,
                                              endpoint: endpoint.name, intent: intent, database: finalDatabase,
                                              hops: plan.hops, retries: plan.retries, backendIdentity: rule.backendIdentity,
                                              pooled: pooled)
                } catch {
                    reply.leg.close()
                    throw LoginRefusal(message: "Login failed: the login reply from cluster '\(cluster.name)' is malformed: \(error)")
                }
            case .giveUp(let why):
                throw LoginRefusal(why, cluster: cluster, database: database, backendIdentity: rule.backendIdentity)
            }
        }
    }

    /// Where an attempt dials: the endpoint, or the worker it redirected to (whose
    /// certificate must carry the name Azure redirected to).
    private func backendTarget(_ target: LoginAttemptTarget, endpoint: EndpointConfig, cluster: ClusterConfig) -> BackendTarget {
        let timeout = TimeAmount.milliseconds(Int64(cluster.connectTimeoutMs))
        if let to = target.redirect {
            return BackendTarget(host: to.host, port: to.port, tlsName: to.host, caFile: cluster.caFile, strict: cluster.strict, connectTimeout: timeout)
        }
        return BackendTarget(host: endpoint.host, port: endpoint.port, tlsName: endpoint.tlsName, caFile: cluster.caFile,
                             strict: cluster.strict, connectTimeout: timeout)
    }

    /// Azure's answer to one LOGIN7, for the plan.
    static func outcome(of reply: BackendLoginReply) -> LoginAttemptOutcome {
        if reply.loggedIn {
            if let routing = reply.routing { return .redirected(LoginRedirect(host: routing.host, port: routing.port)) }
            return .loggedIn
        }
        guard let first = reply.errors.first else {
            return .failed(.connect("the server answered the login with neither LOGINACK nor an error"))
        }
        return .failed(.server(number: first.number, message: first.message))
    }
}
