import Audit
import Foundation
import HTTPServerKit
import NIOHTTP1

/// The admin API (README "Admin API"): health, readiness, Prometheus metrics, cluster
/// state, and drain/enable/disable of endpoints, like HAProxy's runtime API. A bearer
/// token is required whenever `admin.bearer_token_file` is set (check-config demands it
/// for non-loopback addresses).
enum AdminAPI {
    static func routes(context: GatewayContext, bearerToken: String?) -> [HTTPRoute] {
        func guarded(_ handler: @escaping @Sendable (HTTPServerRequest) async -> HTTPServerResponse) -> @Sendable (HTTPServerRequest) async -> HTTPServerResponse {
            { req in
                if let bearerToken {
                    let given = req.header("Authorization").map { $0.hasPrefix("Bearer ") ? String($0.dropFirst(7)) : "" } ?? ""
                    guard constantTimeEquals(given, bearerToken) else {
                        return .error(.unauthorized, code: "unauthorized", message: "this admin API needs Authorization: Bearer <token>")
                    }
                }
                return await handler(req)
            }
        }
        @Sendable func snapshots() -> [ClusterSnapshot] {
            context.clusters.values.map { $0.snapshot() }.sorted { $0.name < $1.name }
        }
        return [
            // Health and readiness answer without the token: load balancers' and kubelets'
            // checks cannot read a secret, and the answer tells nothing else.
            HTTPRoute(.GET, "/healthz", handler: { _ in .text("ok\n") }),
            HTTPRoute(.GET, "/readyz", handler: { _ in
                let missing = snapshots().filter { $0.primary == nil }.map(\.name)
                if missing.isEmpty { return .text("ready\n") }
                return .text("not ready: no primary in cluster(s) \(missing.joined(separator: ", "))\n", status: .serviceUnavailable)
            }),
            HTTPRoute(.GET, "/metrics", handler: guarded { _ in
                let stats = await context.tokens.stats
                var headers = HTTPHeaders()
                headers.add(name: "Content-Type", value: "text/plain; version=0.0.4")
                return HTTPServerResponse(status: .ok, headers: headers,
                                          body: Array(context.metrics.render(clusters: snapshots(), tokenStats: stats, audit: context.audit?.stats).utf8))
            }),
            HTTPRoute(.GET, "/v1/clusters", handler: guarded { _ in
                (try? .json(encoding: snapshots())) ?? .error(.internalServerError, code: "encoding", message: "cannot encode")
            }),
            HTTPRoute(.GET, "/v1/clusters/{name}", handler: guarded { req in
                guard let c = context.clusters[req.pathParameters["name"] ?? ""] else {
                    return .error(.notFound, code: "unknown_cluster", message: "no cluster named '\(req.pathParameters["name"] ?? "")'")
                }
                return (try? .json(encoding: c.snapshot())) ?? .error(.internalServerError, code: "encoding", message: "cannot encode")
            }),
            HTTPRoute(.GET, "/v1/clusters/{name}/sessions", handler: guarded { req in
                guard let c = context.clusters[req.pathParameters["name"] ?? ""] else {
                    return .error(.notFound, code: "unknown_cluster", message: "no cluster named '\(req.pathParameters["name"] ?? "")'")
                }
                return (try? .json(encoding: c.sessions())) ?? .error(.internalServerError, code: "encoding", message: "cannot encode")
            }),
            // `tdsgate drill` reports its start and end here, so drills are in the audit trail.
            HTTPRoute(.POST, "/v1/clusters/{name}/drills", handler: guarded { req in
                guard let c = context.clusters[req.pathParameters["name"] ?? ""] else {
                    return .error(.notFound, code: "unknown_cluster", message: "no cluster named '\(req.pathParameters["name"] ?? "")'")
                }
                guard let body = try? req.decodeJSON([String: JSONValue].self), let phase = body["phase"]?.stringValue,
                      let mode = body["mode"]?.stringValue, ["start", "end"].contains(phase) else {
                    return .error(.badRequest, code: "invalid_request", message: "expected {phase: start|end, mode, drill_id, outcome, ...}")
                }
                let id = body["drill_id"]?.stringValue
                if phase == "start" {
                    context.record(.drillStart(cluster: c.config.name, mode: mode, drillID: id, target: body["target"]?.stringValue))
                } else {
                    let outcome = AuditEvent.DrillOutcome(rawValue: body["outcome"]?.stringValue ?? "") ?? .failed
                    context.record(.drillEnd(cluster: c.config.name, mode: mode, drillID: id, outcome: outcome,
                                             durationMs: body["duration_ms"]?.intValue, oldPrimary: body["old_primary"]?.stringValue,
                                             newPrimary: body["new_primary"]?.stringValue, sessionsAffected: body["sessions_closed"]?.intValue,
                                             summary: body["summary"]?.stringValue))
                }
                context.logger.notice("drill \(phase)", metadata: ["cluster": "\(c.config.name)", "mode": "\(mode)", "drill": "\(id ?? "")"])
                return .json(.object(["recorded": .bool(context.audit != nil)]))
            }),
            HTTPRoute(.POST, "/v1/clusters/{name}/endpoints/{endpoint}/{action}", handler: guarded { req in
                let action = req.pathParameters["action"] ?? ""
                guard ["drain", "enable", "disable"].contains(action) else {
                    return .error(.notFound, code: "unknown_action", message: "actions are drain, enable and disable")
                }
                guard let c = context.clusters[req.pathParameters["name"] ?? ""] else {
                    return .error(.notFound, code: "unknown_cluster", message: "no cluster named '\(req.pathParameters["name"] ?? "")'")
                }
                let endpoint = req.pathParameters["endpoint"] ?? ""
                do {
                    _ = try c.setAdmin(action, endpoint: endpoint)
                    context.logger.notice("admin action", metadata: ["cluster": "\(c.config.name)", "endpoint": "\(endpoint)", "action": "\(action)"])
                    return (try? .json(encoding: c.snapshot())) ?? .text("ok\n")
                } catch {
                    return .error(.notFound, code: "unknown_endpoint", message: "\(error)")
                }
            }),
        ] + dumpRoutes(context: context, guarded: guarded)
    }

    private static func constantTimeEquals(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var diff = UInt8(x.count == y.count ? 0 : 1)
        for i in 0..<max(x.count, y.count) { diff |= (i < x.count ? x[i] : 0) ^ (i < y.count ? y[i] : 0) }
        return diff == 0
    }
}
