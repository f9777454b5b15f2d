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

    static let maxRedirects = 10
    static let maxTransientRetries = 4

    func run(_ login: Login7) async throws(LoginRefusal) -> SessionLoginResult {
        let started = ContinuousClock.now
        if context.throttle.isBlocked(clientAddress) {
            throw LoginRefusal(message: "Login failed: too many failed logins from \(clientAddress); try again later.")
        }
        let principal = try await authenticate(login)
        guard let runtime = context.cluster(for: listener) else {
            throw LoginRefusal(message: "Login failed: listener '\(listener.name)' has no cluster to send sessions to.")
        }
        let cluster = runtime.config
        let database = login.database.isEmpty ? (cluster.databases.first ?? "") : login.database
        if !cluster.databases.isEmpty, !cluster.databases.contains(where: { $0.lowercased() == database.lowercased() }) {
            throw LoginRefusal(message: "Login failed: database '\(database)' is not served by cluster '\(cluster.name)'.")
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

    private func authenticate(_ login: Login7) async throws(LoginRefusal) -> Principal {
        if login.integratedSecurity {
            return try await authenticateKerberos(login)
        }
        return try await authenticateCredentials(login)
    }

    /// Integrated security: tdsgate is the GSSAPI acceptor; more legs go through SSPI
    /// messages until the context is established or refused.
    private func authenticateKerberos(_ login: Login7) async throws(LoginRefusal) -> Principal {
        guard let acceptor = context.kerberosAcceptors[listener.name] else {
            throw LoginRefusal(message: "Login failed: integrated (Windows/Kerberos) authentication is not enabled on listener '\(listener.name)'; use a SQL login or an Entra access token.")
        }
        var exchange = acceptor.startExchange()
        var token = login.sspi
        while true {
            switch exchange.step(token) {
            case .continueNeeded(let reply):
                guard let sspi else {
                    throw LoginRefusal(message: "Login failed: the Kerberos exchange needs another step and this session cannot carry one.")
                }
                do {
                    token = try await sspi.exchange(reply)
                } catch {
                    context.throttle.recordFailure(clientAddress)
                    throw LoginRefusal(message: "Login failed: the Kerberos exchange did not complete: \(error).", countsAsFailure: true)
                }
            case .accepted(let identity, _):
                // The acceptor's last token (the mutual-authentication AP-REP) is not sent:
                // SQL Server sends SSPI tokens only while it needs another leg, and ODBC
                // Driver 18 answers an SSPI token next to LOGINACK with one more SSPI
                // message and waits, so the login never completes.
                context.throttle.recordSuccess(clientAddress)
                return Principal(method: .kerberos, name: identity.mappedName, kerberosPrincipal: identity.principal)
            case .refused(let refusal):
                context.throttle.recordFailure(clientAddress)
                context.logger.notice("kerberos login refused", metadata: [
                    "client": "\(clientAddress)", "listener": "\(listener.name)", "code": "\(refusal.code.rawValue)",
                    "detail": "\(refusal.detail ?? "")",
                ])
                throw LoginRefusal(message: "Login failed: Kerberos: \(refusal.message)", countsAsFailure: true)
            }
        }
    }

    private func authenticateCredentials(_ login: Login7) async throws(LoginRefusal) -> Principal {
        switch login.fedAuth {
        case .securityToken(let token, _, _)?:
            guard let validator = context.entraValidators[listener.name] else {
                throw LoginRefusal(message: "Login failed: listener '\(listener.name)' does not accept Entra access tokens; use a SQL login.", countsAsFailure: true)
            }
            do {
                let p = try await validator.validate(token)
                context.throttle.recordSuccess(clientAddress)
                return p
            } catch {
                context.throttle.recordFailure(clientAddress)
                throw LoginRefusal(message: "Login failed: the Entra access token was refused: \(error).", countsAsFailure: true)
            }
        case .msal?:
            throw LoginRefusal(message: "Login failed: tdsgate accepts Entra access tokens (ActiveDirectoryAccessToken); the interactive/MSAL authentication workflow is not supported.")
        case nil:
            guard let p = await context.verifyPassword(user: login.userName, password: login.password) else {
                context.throttle.recordFailure(clientAddress)
                throw LoginRefusal(message: "Login failed for user '\(ClientText.echo(login.userName))'.", countsAsFailure: true)
            }
            context.throttle.recordSuccess(clientAddress)
            return p
        }
    }

    private func connectBackend(login: Login7, principal: Principal, runtime: ClusterRuntime, database: String,
                                rule: PolicyRule, forceReadOnly: Bool, deadline: ContinuousClock.Instant) async throws(LoginRefusal) -> SessionLoginResult {
        let cluster = runtime.config
        let intent = SessionIntent(readOnlyIntent: login.readOnlyIntent, writeAllowed: !forceReadOnly)
        let matchedRule = runtime.rules.match(intent: intent, database: database, principalRoles: principal.routingNames)
        var avoiding: Set<String> = []
        var hops = 0
        var retries = 0
        var lastProblem = ""
        var routeReason = RouteReason.primary
        while true {
            if ContinuousClock.now >= deadline {
                // Not a transient number: tdsgate has already waited and retried, and drivers
                // would retry a 40613 until their own timeout and hide this message.
                throw LoginRefusal(state: 2,
                                   message: "Login failed: cluster '\(cluster.name)' did not complete the login in time (\(cluster.loginTimeoutMs) ms). Last problem: \(lastProblem)")
            }
            let endpointName: String
            switch await runtime.route(intent: intent, database: database, options: matchedRule.options, deadline: deadline, avoiding: avoiding) {
            case .refuse(let reason):
                throw LoginRefusal(state: 2, message: "Login failed: \(reason)")
            case .wait:
                continue
            case .endpoint(let name, let reason):
                endpointName = name
                routeReason = reason
            }
            guard let endpoint = runtime.endpoint(named: endpointName) else { continue }
            var target = BackendTarget(host: endpoint.host, port: endpoint.port, tlsName: endpoint.tlsName, caFile: cluster.caFile,
                                       strict: cluster.strict, connectTimeout: .milliseconds(Int64(cluster.connectTimeoutMs)))
            // Redirect hops for this endpoint.
            while true {
                let token: AccessToken
                do {
                    token = try await context.tokens.token(identity: rule.backendIdentity)
                } catch {
                    throw LoginRefusal(message: "Login failed: tdsgate could not get an access token for backend identity '\(rule.backendIdentity)': \(error)")
                }
                let tag = (rule.tagAppName || listener.tagSessions) ? sessionTag(principal: principal.name) : nil
                let accessToken = token.token
                let backendLogin: BackendLoginAttempt.Login7Builder = { echo, nonce in
                    backendLogin7(from: login, accessToken: accessToken, fedAuthEcho: echo, nonce: nonce,
                                  appNameTag: tag, forceReadOnly: forceReadOnly)
                }
                let attempt = await BackendLoginAttempt(context: context, eventLoop: eventLoop, tap: tap).run(target: target, login: backendLogin, mars: mars)
                switch attempt {
                case .failure(let e):
                    lastProblem = e.description
                    runtime.recordPassiveFailure(.connect(e.description), for: endpointName)
                case .success(let (leg, reply, payload)):
                    if reply.loggedIn, let routing = reply.routing {
                        leg.close()
                        if cluster.connectionPolicy == "proxy" {
                            throw LoginRefusal(state: 2, message: "Login failed: cluster '\(cluster.name)' is pinned to the Proxy connection policy, but endpoint '\(endpointName)' redirected tdsgate to \(routing.host):\(routing.port); set the server's connection policy to Proxy, or connection_policy: redirect.")
                        }
                        hops += 1
                        guard hops <= Self.maxRedirects else {
                            throw LoginRefusal(message: "Login failed: cluster '\(cluster.name)' redirected more than \(Self.maxRedirects) times.")
                        }
                        // The worker's certificate must carry the name Azure redirected to.
                        target = BackendTarget(host: routing.host, port: routing.port, tlsName: routing.host, caFile: cluster.caFile,
                                               strict: cluster.strict, connectTimeout: target.connectTimeout)
                        continue
                    }
                    if reply.loggedIn {
                        do {
                            let clientReply = try clientLoginReply(payload, clientFeatures: Set(login.features.map(\.id)),
                                                                   clientSentFeatureExt: login.hasFeatureExtension)
                            context.record(.backendChosen(
                                session: auditSession, cluster: cluster.name, endpoint: endpointName,
                                role: runtime.currentPrimary == endpointName ? .primary : (endpoint.geo ? .geoSecondary : .secondary),
                                backendIdentity: rule.backendIdentity, redirectHops: hops, retries: retries,
                                routeReason: matchedRule.rule.map { "rule \($0): \(routeReason)" } ?? "\(routeReason)"))
                            return SessionLoginResult(backend: leg, clientReply: clientReply, principal: principal, cluster: runtime,
                                                      endpoint: endpointName, intent: intent, database: reply.database ?? database,
                                                      hops: hops, retries: retries, backendIdentity: rule.backendIdentity)
                        } catch {
                            leg.close()
                            throw LoginRefusal(message: "Login failed: the login reply from cluster '\(cluster.name)' is malformed: \(error)")
                        }
                    }
                    leg.close()
                    let first = reply.errors.first
                    lastProblem = first.map { "error \($0.number): \($0.message)" } ?? "no LOGINACK"
                    guard reply.isTransientFailure else {
                        throw LoginRefusal(number: first?.number ?? 18456, severity: first?.severity ?? 14, state: first?.state ?? 1,
                                           message: "Azure SQL (cluster '\(cluster.name)', \(target)) refused tdsgate's login with backend identity '\(rule.backendIdentity)': \(first?.message ?? "no reason given")")
                    }
                    runtime.recordPassiveFailure(.login(number: first?.number ?? 0, message: first?.message ?? ""), for: endpointName)
                }
                break
            }
            // A failed or transient attempt: back off, then route again (another endpoint
            // when the cluster has one).
            guard retries < Self.maxTransientRetries, ContinuousClock.now + backoff(retries) < deadline else {
                throw LoginRefusal(message: "Login failed: cluster '\(cluster.name)' is unreachable: \(lastProblem)")
            }
            try? await Task.sleep(for: backoff(retries))
            retries += 1
            avoiding.insert(endpointName)
        }
    }

    /// Jittered exponential backoff: 100 ms, 200 ms, 400 ms ... plus up to 50% jitter.
    private func backoff(_ attempt: Int) -> Duration {
        let base = 100 * (1 << min(attempt, 6))
        return .milliseconds(base + Int.random(in: 0...(base / 2)))
    }

}
