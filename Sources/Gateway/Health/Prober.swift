import Foundation
import Identity
import Logging
import NIOCore
import Routing
import TDS

/// Probes one endpoint the way a client would see it: a real TDS login with the cluster's
/// probe identity (following Azure's redirect), then the role queries. Results feed the
/// cluster's topology; the loop runs until cancelled.
struct Prober {
    let context: GatewayContext
    let cluster: ClusterRuntime
    let endpoint: EndpointConfig
    let probe: ProbeConfig
    let eventLoop: any EventLoop

    func run() async {
        while !Task.isCancelled {
            let result = await context.metrics.timeProbe(cluster: cluster.config.name, endpoint: endpoint.name) { await probeOnce() }
            cluster.record(probe: result, for: endpoint.name)
            try? await Task.sleep(for: cluster.nextProbeDelay(endpoint.name))
        }
    }

    /// One probe, bounded by the probe timeout: the login plan's deadline bounds every
    /// attempt (connect, TLS, LOGIN7 reply), and the role queries get what is left.
    func probeOnce() async -> ProbeResult {
        let started = ContinuousClock.now
        let deadline = started + .milliseconds(probe.timeoutMs)
        let work = Task { await self.loginAndQuery(started: started, deadline: deadline) }
        let timeout = Task {
            try? await Task.sleep(until: deadline, clock: .continuous)
            work.cancel()
        }
        let result = await withTaskCancellationHandler { await work.value } onCancel: { work.cancel() }
        timeout.cancel()
        if ContinuousClock.now > deadline, case .success = result {
            return .failure(.timeout)
        }
        return result
    }

    /// Logs in as a client would, executing the same plan as session logins (one limit for
    /// redirects), placed on this endpoint and without retries: a failed probe is a
    /// verdict, and `rise`/`fall` smooth it.
    private func loginAndQuery(started: ContinuousClock.Instant, deadline: ContinuousClock.Instant) async -> ProbeResult {
        let token: AccessToken
        do {
            token = try await context.tokens.token(identity: probe.identity)
        } catch {
            if Task.isCancelled { return .failure(.timeout) }
            return .failure(.other("no token for probe identity '\(probe.identity)': \(error)"))
        }
        let database = probe.database ?? cluster.config.databases.first ?? ""
        let accessToken = token.token
        let serverName = endpoint.host
        let login: BackendLoginAttempt.Login7Builder = { echo, nonce in
            var l = Login7(packetSize: 4096, hostName: "tdsgate", appName: "tdsgate-probe", serverName: serverName,
                           clientInterfaceName: "tdsgate", language: "us_english", database: database)
            l.optionFlags3 |= 0x10
            return l.replacingCredentials(accessToken: accessToken, echo: echo, nonce: nonce)
        }
        var plan = BackendLoginPlan(placement: .fixed(endpoint.name), deadline: deadline,
                                    followsRedirects: cluster.config.connectionPolicy != .proxy,
                                    policy: LoginRetryPolicy(maxAttempts: 1))
        // No retries, so no jitter is ever drawn; the generator only satisfies the plan.
        var random = SystemRandomNumberGenerator()
        var leg: BackendLeg?
        var action = plan.start(now: .now)
        while true {
            switch action {
            case .route, .backOff:
                preconditionFailure("a probe plan is fixed to its endpoint and makes one attempt")
            case .attempt(let target, let attemptDeadline):
                let dial = target.redirect.map {
                    BackendTarget(host: $0.host, port: $0.port, tlsName: $0.host, caFile: cluster.config.caFile,
                                  strict: cluster.config.strict, connectTimeout: .milliseconds(Int64(probe.timeoutMs)))
                } ?? BackendTarget(host: endpoint.host, port: endpoint.port, tlsName: endpoint.tlsName, caFile: cluster.config.caFile,
                                   strict: cluster.config.strict, connectTimeout: .milliseconds(Int64(probe.timeoutMs)))
                let outcome: LoginAttemptOutcome
                switch await BackendLoginAttempt(tls: context.backendTLS, eventLoop: eventLoop, metrics: context.metrics).run(target: dial, deadline: attemptDeadline, login: login) {
                case .failure(let failure):
                    outcome = .failed(failure.loginFailure ?? .timedOut)
                case .success(let reply):
                    outcome = SessionLogin.outcome(of: reply.parsed)
                    if outcome == .loggedIn { leg = reply.leg } else { reply.leg.close() }
                }
                action = plan.attemptEnded(outcome, now: .now, random: &random).action
            case .giveUp(let why):
                return .failure(Self.failureReason(why))
            case .loggedIn:
                guard let leg else { preconditionFailure("logged in without a leg") }
                defer { leg.close() }
                do {
                    let updateability = try await scalarText(leg, RoleProbe.updateabilityQuery)
                    var geo: GeoObservation?
                    if endpoint.geo {
                        let rows = try await rows(leg, RoleProbe.geoLinkQuery)
                        geo = RoleProbe.geo(links: rows.compactMap { r in
                            guard case .int(let role)? = r.first else { return nil }
                            if case .int(let lag)? = r.dropFirst().first { return (Int(role), Int(lag)) }
                            return (Int(role), nil)
                        })
                    }
                    return .success(role: RoleProbe.role(updateability: updateability), geo: geo, latency: ContinuousClock.now - started)
                } catch {
                    return .failure(.roleQuery("\(error)"))
                }
            }
        }
    }

    /// A probe's failed login in the terms of endpoint health.
    static func failureReason(_ giveUp: LoginGiveUp) -> FailureReason {
        switch giveUp {
        case .failed(let stop): stop.last.failure.asFailureReason
        case .deadlinePassed: .timeout
        case .tooManyRedirects, .redirectNotAllowed, .unroutable: .other("\(giveUp)")
        }
    }

    private func rows(_ leg: BackendLeg, _ sql: String) async throws -> [[TDSValue]] {
        var payload = ByteBufferAllocator().buffer(capacity: 128)
        SQLBatch(allHeaders: AllHeaders(transactionDescriptor: 0), text: sql).write(into: &payload)
        try await leg.send(TDSMessage(type: .sqlBatch, payload: payload))
        let reply = try await leg.receive()
        var out: [[TDSValue]] = []
        for token in try TDSTokenParser.parseAll(reply.payload) {
            switch token {
            case .row(let values), .nbcRow(let values): out.append(values)
            case .error(let m): throw BackendError(description: "error \(m.number): \(m.message)")
            default: continue
            }
        }
        return out
    }

    private func scalarText(_ leg: BackendLeg, _ sql: String) async throws -> String? {
        if case .string(let s)? = try await rows(leg, sql).first?.first { return s }
        return nil
    }
}
