import Audit
import Foundation
import HTTPServerKit
import NIOHTTP1

/// The admin API (README "Admin API"): health, readiness, Prometheus metrics, cluster
/// state, and drain/enable/disable of endpoints, like HAProxy's runtime API. A bearer
/// token is required whenever `admin.bearer_token_file` is set (check-config demands it
/// for non-loopback addresses).
///
/// Every value a request carries is checked before use: numbers against a range, names
/// against what exists; anything else is a 400 naming the parameter (`HTTPRequestProblem`),
/// never a trap. No error body quotes the token or the `Authorization` header.
enum AdminAPI {
    typealias Handler = @Sendable (HTTPServerRequest) async -> HTTPServerResponse

    static func routes(context: GatewayContext, bearerToken: String?) -> [HTTPRoute] {
        func guarded(_ handler: @escaping Handler) -> Handler {
            { req in
                if let bearerToken, !req.hasBearerToken(bearerToken) { return unauthorized }
                return await handler(req)
            }
        }
        @Sendable func snapshots() -> [ClusterSnapshot] {
            context.clusters.values.map { $0.snapshot() }.sorted { $0.name < $1.name }
        }
        @Sendable func cluster(_ req: HTTPServerRequest) -> Result<ClusterRuntime, HTTPRequestProblem> {
            let name = req.pathParameters["name"] ?? ""
            guard let c = context.clusters[name] else {
                return .failure(HTTPRequestProblem(parameter: "cluster", reason: "no cluster named \(quoted(name))"))
            }
            return .success(c)
        }
        return [
            // Health and readiness answer without the token: load balancers' and kubelets'
            // checks cannot read a secret, and the answer tells nothing else. A draining
            // instance is alive (200) and not ready (503).
            HTTPRoute(.GET, "/healthz", handler: { _ in .text("ok\n") }),
            HTTPRoute(.GET, "/readyz", handler: { _ in
                if let drain = context.readiness.drain {
                    return .text("not ready: \(drain)\n", status: .serviceUnavailable)
                }
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
            HTTPRoute(.GET, "/v1/clusters", handler: guarded { _ in json(snapshots()) }),
            HTTPRoute(.GET, "/v1/clusters/{name}", handler: guarded { req in
                switch cluster(req) {
                case .success(let c): return json(c.snapshot())
                case .failure(let problem): return notFound(problem, code: "unknown_cluster")
                }
            }),
            HTTPRoute(.GET, "/v1/clusters/{name}/sessions", handler: guarded { req in
                switch cluster(req) {
                case .success(let c): return json(c.sessions())
                case .failure(let problem): return notFound(problem, code: "unknown_cluster")
                }
            }),
            // `tdsgate drill` reports its start and end here, so drills are in the audit trail.
            HTTPRoute(.POST, "/v1/clusters/{name}/drills", handler: guarded { req in
                let c: ClusterRuntime
                switch cluster(req) {
                case .success(let found): c = found
                case .failure(let problem): return notFound(problem, code: "unknown_cluster")
                }
                let report: DrillReportBody
                do throws(HTTPRequestProblem) {
                    report = try DrillReportBody(req)
                } catch {
                    return error.response
                }
                switch report.phase {
                case .start:
                    context.record(.drillStart(cluster: c.config.name, mode: report.mode, drillID: report.drillID, target: report.target))
                case .end:
                    context.record(.drillEnd(cluster: c.config.name, mode: report.mode, drillID: report.drillID, outcome: report.outcome,
                                             durationMs: report.durationMs, oldPrimary: report.oldPrimary, newPrimary: report.newPrimary,
                                             sessionsAffected: report.sessionsClosed, summary: report.summary))
                }
                context.logger.notice("drill \(report.phase.rawValue)",
                                      metadata: ["cluster": "\(c.config.name)", "mode": "\(report.mode)", "drill": "\(report.drillID ?? "")"])
                return .json(.object(["recorded": .bool(context.audit != nil)]))
            }),
            HTTPRoute(.POST, "/v1/clusters/{name}/endpoints/{endpoint}/{action}", handler: guarded { req in
                let action = req.pathParameters["action"] ?? ""
                guard ["drain", "enable", "disable"].contains(action) else {
                    return .error(.notFound, code: "unknown_action", message: "actions are drain, enable and disable")
                }
                let c: ClusterRuntime
                switch cluster(req) {
                case .success(let found): c = found
                case .failure(let problem): return notFound(problem, code: "unknown_cluster")
                }
                let endpoint = req.pathParameters["endpoint"] ?? ""
                do {
                    _ = try c.setAdmin(action, endpoint: endpoint)
                    context.logger.notice("admin action", metadata: ["cluster": "\(c.config.name)", "endpoint": "\(endpoint)", "action": "\(action)"])
                    return json(c.snapshot())
                } catch {
                    return .error(.notFound, code: "unknown_endpoint",
                                  message: "cluster '\(c.config.name)' has no endpoint named \(quoted(endpoint))")
                }
            }),
        ] + dumpRoutes(context: context, guarded: guarded)
    }

    /// 401 without a hint of the expected token or an echo of the one sent.
    static var unauthorized: HTTPServerResponse {
        var response = HTTPServerResponse.error(.unauthorized, code: "unauthorized",
                                                message: "this admin API needs Authorization: Bearer <token>")
        response.headers.add(name: "WWW-Authenticate", value: #"Bearer realm="tdsgate admin""#)
        return response
    }

    static func json<T: Encodable>(_ value: T) -> HTTPServerResponse {
        (try? .json(encoding: value)) ?? .error(.internalServerError, code: "encoding", message: "cannot encode the answer")
    }

    static func notFound(_ problem: HTTPRequestProblem, code: String) -> HTTPServerResponse {
        .error(.notFound, code: code, message: problem.reason)
    }

    /// A name from the request path in an error: JSON escapes it, this keeps it short.
    static func quoted(_ name: String) -> String {
        name.count <= 100 ? "'\(name)'" : "'\(name.prefix(100))…'"
    }
}

/// The body of `POST /v1/clusters/{name}/drills`, checked field by field.
struct DrillReportBody {
    enum Phase: String { case start, end }

    var phase: Phase
    var mode: String
    var drillID: String?
    var target: String?
    var outcome: AuditEvent.DrillOutcome
    var durationMs: Int?
    var sessionsClosed: Int?
    var oldPrimary: String?
    var newPrimary: String?
    var summary: String?

    init(_ req: HTTPServerRequest) throws(HTTPRequestProblem) {
        guard let body = try? req.decodeJSON([String: JSONValue].self) else {
            throw HTTPRequestProblem(parameter: "body", reason: "expected a JSON object {phase: start|end, mode, drill_id, outcome, ...}")
        }
        let phaseText = try body.string("phase")
        guard let phase = phaseText.flatMap(Phase.init(rawValue:)) else {
            throw HTTPRequestProblem(parameter: "body field 'phase'", reason: "must be start or end")
        }
        self.phase = phase
        guard let mode = try body.string("mode", maxLength: 32), Self.isName(mode) else {
            throw HTTPRequestProblem(parameter: "body field 'mode'", reason: "must be a drill mode such as planned, forced or simulate")
        }
        self.mode = mode
        drillID = try body.string("drill_id", maxLength: 64)
        if let drillID, !Self.isName(drillID) {
            throw HTTPRequestProblem(parameter: "body field 'drill_id'", reason: "must be letters, digits, '.', '_' or '-'")
        }
        target = try body.string("target", maxLength: 256)
        if let text = try body.string("outcome") {
            guard let outcome = AuditEvent.DrillOutcome(rawValue: text) else {
                throw HTTPRequestProblem(parameter: "body field 'outcome'", reason: "must be passed, failed or aborted")
            }
            self.outcome = outcome
        } else {
            outcome = .failed
        }
        durationMs = try body.integer("duration_ms", in: jsonExactCounts)
        sessionsClosed = try body.integer("sessions_closed", in: jsonExactCounts)
        oldPrimary = try body.string("old_primary", maxLength: 256)
        newPrimary = try body.string("new_primary", maxLength: 256)
        summary = try body.string("summary", maxLength: 4096)
    }

    /// Names that go into the log as they are: no spaces, quotes or line breaks.
    private static func isName(_ text: String) -> Bool {
        !text.isEmpty && text.unicodeScalars.allSatisfy { scalar in
            switch scalar {
            case "a"..."z", "A"..."Z", "0"..."9", ".", "_", "-": return true
            default: return false
            }
        }
    }
}
