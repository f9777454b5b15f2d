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

    func probeOnce() async -> ProbeResult {
        let started = ContinuousClock.now
        let work = Task { await self.loginAndQuery(started: started) }
        let timeout = Task {
            try? await Task.sleep(for: .milliseconds(probe.timeoutMs))
            work.cancel()
        }
        let result = await work.value
        timeout.cancel()
        if ContinuousClock.now - started > .milliseconds(probe.timeoutMs), case .success = result {
            return .failure(.timeout)
        }
        return result
    }

    private func loginAndQuery(started: ContinuousClock.Instant) async -> ProbeResult {
        let token: AccessToken
        do {
            token = try await context.tokens.token(identity: probe.identity)
        } catch {
            return .failure(.other("no token for probe identity '\(probe.identity)': \(error)"))
        }
        var target = BackendTarget(host: endpoint.host, port: endpoint.port, tlsName: endpoint.tlsName, caFile: cluster.config.caFile,
                                   strict: cluster.config.strict, connectTimeout: .milliseconds(Int64(probe.timeoutMs)))
        let database = probe.database ?? cluster.config.databases.first ?? ""
        let accessToken = token.token
        let serverName = endpoint.host
        let login: BackendLoginAttempt.Login7Builder = { echo, nonce in
            var l = Login7(packetSize: 4096, hostName: "tdsgate", appName: "tdsgate-probe", serverName: serverName,
                           clientInterfaceName: "tdsgate", language: "us_english", database: database)
            l.optionFlags3 |= 0x10
            return l.replacingCredentials(accessToken: accessToken, echo: echo, nonce: nonce)
        }
        for _ in 0..<5 {
            if Task.isCancelled { return .failure(.timeout) }
            switch await BackendLoginAttempt(context: context, eventLoop: eventLoop).run(target: target, login: login) {
            case .failure(let e):
                return .failure(.connect(e.description))
            case .success(let (leg, reply, _)):
                if reply.loggedIn, let routing = reply.routing {
                    leg.close()
                    if cluster.config.connectionPolicy == "proxy" {
                        return .failure(.other("redirected to \(routing.host):\(routing.port) although the cluster is pinned to the Proxy connection policy"))
                    }
                    target = BackendTarget(host: routing.host, port: routing.port, tlsName: routing.host, caFile: target.caFile,
                                           strict: target.strict, connectTimeout: target.connectTimeout)
                    continue
                }
                guard reply.loggedIn else {
                    leg.close()
                    let e = reply.errors.first
                    return .failure(.login(number: e?.number ?? 18456, message: e?.message ?? "no LOGINACK"))
                }
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
        return .failure(.other("more than 5 redirects"))
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
