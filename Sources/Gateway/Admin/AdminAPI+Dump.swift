import Foundation
import HTTPServerKit
import NIOHTTP1

/// The packet dump's admin endpoints (README "Packet dump"):
/// `GET /v1/dump` (status), `POST /v1/dump` (on, with settings), `DELETE /v1/dump` (off),
/// `GET /v1/dump/follow?after=N&wait=S&limit=L` (decoded lines after cursor N, waiting up to
/// S seconds for some; what `tdsgate dump --follow` polls).
extension AdminAPI {
    /// Cursor numbers `after` may name (line numbers count from 1; 0 means "from the start").
    static let followCursors = jsonExactCounts
    static let followWaitSeconds: ClosedRange<Double> = 0...30
    static let followLineLimits = 1...10_000

    static func dumpRoutes(context: GatewayContext, guarded: (@escaping Handler) -> Handler) -> [HTTPRoute] {
        let dump = context.dump
        @Sendable func status() -> HTTPServerResponse {
            json(dump.status)
        }
        return [
            HTTPRoute(.GET, "/v1/dump", handler: guarded { _ in status() }),
            HTTPRoute(.POST, "/v1/dump", handler: guarded { req in
                let settings: DumpSettings
                if req.body.allSatisfy({ $0 == 0x20 || $0 == 0x0A || $0 == 0x0D || $0 == 0x09 }) {
                    settings = dump.config.settings
                } else {
                    do {
                        settings = try req.decodeJSON(DumpSettings.self)
                    } catch {
                        return .error(.badRequest, code: "invalid_request",
                                      message: "expected {filter: {principal, client, cluster, database}, format: [text, pcapng], "
                                          + "pcapng_files: session|dump, hex, mask_literals}: \(error)")
                    }
                }
                if let client = settings.filter.client, let problem = DumpFilter.clientProblem(client) {
                    return .error(.badRequest, code: "invalid_filter", message: "filter.client: \(problem)")
                }
                if settings.formats.isEmpty {
                    return .error(.badRequest, code: "invalid_request", message: "format must name text and/or pcapng")
                }
                do {
                    try dump.enable(settings)
                } catch {
                    return .error(.internalServerError, code: "dump_failed", message: "cannot start the dump: \(error)")
                }
                context.logger.notice("admin action", metadata: ["action": "dump on", "filter": "\(settings.filter)"])
                return status()
            }),
            HTTPRoute(.DELETE, "/v1/dump", handler: guarded { _ in
                dump.disable()
                context.logger.notice("admin action", metadata: ["action": "dump off"])
                return status()
            }),
            HTTPRoute(.GET, "/v1/dump/follow", handler: guarded { req in
                let after: Int, wait: Double, limit: Int
                do throws(HTTPRequestProblem) {
                    after = try req.queryInteger("after", in: followCursors) ?? dump.ring.cursor
                    wait = try req.queryNumber("wait", in: followWaitSeconds, unit: "seconds") ?? 0
                    limit = try req.queryInteger("limit", in: followLineLimits) ?? 1000
                } catch {
                    return error.response
                }
                let deadline = ContinuousClock.now + .milliseconds(Int((wait * 1000).rounded()))
                var result = dump.ring.lines(after: after, limit: limit)
                while result.lines.isEmpty, result.missed == 0, ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(100))
                    result = dump.ring.lines(after: after, limit: limit)
                }
                return .json(.object([
                    "next": .int(result.next), "missed": .int(result.missed), "enabled": .bool(dump.isEnabled),
                    "lines": .array(result.lines.map { .string($0) }),
                ]))
            }),
        ]
    }
}
