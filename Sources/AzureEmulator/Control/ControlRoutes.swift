import Foundation
import NIOHTTP1
import HTTPServerKit

/// The ARM-like failover API and the emulator-only controls (README: "Control API").
/// ARM calls need a bearer token for https://management.azure.com/ from the emulated
/// tenant, as real ARM does; emulator-only calls are open (the endpoint is loopback-only).
enum ControlRoutes {
    static let armAudience = "https://management.azure.com/"

    static func routes(for runtime: AzureEmulatorRuntime) -> [HTTPRoute] {
        let armBase = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Sql/servers/{server}/failoverGroups/{group}"
        return [
            HTTPRoute(.POST, armBase + "/failover") { req in
                await armFailover(runtime, req, allowDataLoss: false)
            },
            HTTPRoute(.POST, armBase + "/forceFailoverAllowDataLoss") { req in
                await armFailover(runtime, req, allowDataLoss: true)
            },
            HTTPRoute(.GET, armBase) { req in
                if let denied = authorizeARM(runtime, req) { return denied }
                guard let name = req.pathParameters["group"], let g = runtime.config.failoverGroups.first(where: { $0.name == name }) else {
                    return armError(.notFound, "ResourceNotFound", "The Resource 'Microsoft.Sql/servers/failoverGroups/\(req.pathParameters["group"] ?? "")' was not found.")
                }
                let server = req.pathParameters["server"] ?? g.primaryServer
                let primary = runtime.deployment.isPrimaryServer(g.primaryServer) ? g.primaryServer : g.secondaryServer
                let partner = server == g.primaryServer ? g.secondaryServer : g.primaryServer
                return .json(.object([
                    "name": .string(g.name),
                    "type": .string("Microsoft.Sql/servers/failoverGroups"),
                    "properties": .object([
                        "replicationRole": .string(server == primary ? "Primary" : "Secondary"),
                        "replicationState": .string("CATCH_UP"),
                        "partnerServers": .array([.object(["id": .string(partner), "replicationRole": .string(partner == primary ? "Primary" : "Secondary")])]),
                    ]),
                ]))
            },
            HTTPRoute(.GET, "/emulator/state") { _ in
                jsonResponse(runtime.deployment.describe())
            },
            HTTPRoute(.GET, "/emulator/nodes/{node}/sessions") { req in
                guard let node = req.pathParameters["node"], let counts = runtime.sessionCounts(node: node) else {
                    return .error(.notFound, code: "unknown_node", message: "no node named '\(req.pathParameters["node"] ?? "")'")
                }
                return .json(.object(["node": .string(node), "open": .int(counts.open), "accepted": .int(counts.accepted)]))
            },
            HTTPRoute(.POST, "/emulator/nodes/{node}/kill") { req in
                await nodeOp(req) { try await runtime.kill(node: $0) }
            },
            HTTPRoute(.POST, "/emulator/nodes/{node}/restore") { req in
                await nodeOp(req) { try await runtime.restore(node: $0) }
            },
            HTTPRoute(.POST, "/emulator/nodes/{node}/refuse") { req in
                await nodeOp(req) { node in
                    runtime.deployment.refuseConnections(node: node, count: try body(req)["count"]?.intValue ?? 1)
                }
            },
            HTTPRoute(.POST, "/emulator/nodes/{node}/login-delay") { req in
                await nodeOp(req) { node in
                    runtime.deployment.setLoginDelay(node: node, milliseconds: try body(req)["milliseconds"]?.intValue ?? 0)
                }
            },
            HTTPRoute(.POST, "/emulator/nodes/{node}/lag") { req in
                await nodeOp(req) { node in
                    runtime.deployment.setLag(node: node, milliseconds: try body(req)["milliseconds"]?.intValue ?? 0)
                }
            },
            // Azure's per-tier session cap: {"limit": N} or {"limit": null} for none.
            HTTPRoute(.POST, "/emulator/nodes/{node}/session-limit") { req in
                await nodeOp(req) { node in
                    guard runtime.deployment.node(named: node) != nil else { throw EmulatorConfigError("no node named '\(node)'") }
                    let limit = try body(req)["limit"]?.intValue
                    if let limit, limit < 1 { throw EmulatorConfigError("limit must be at least 1, or null for no limit") }
                    runtime.deployment.setSessionLimit(node: node, limit: limit)
                }
            },
            // KILL spid: closes one connection (idle connection resiliency tests).
            HTTPRoute(.POST, "/emulator/sessions/{spid}/kill") { req in
                guard let spid = req.pathParameters["spid"].flatMap({ Int($0) }) else {
                    return .error(.badRequest, code: "invalid_request", message: "the SPID must be a number")
                }
                guard runtime.killSession(spid: spid) else {
                    return .error(.notFound, code: "unknown_session", message: "no session with SPID \(spid)")
                }
                return .json(.object(["ok": .bool(true), "spid": .int(spid)]))
            },
            HTTPRoute(.POST, "/emulator/faults/login") { req in
                do {
                    let b = try body(req)
                    guard let number = b["error"]?.intValue else {
                        return .error(.badRequest, code: "invalid_request", message: "body needs \"error\" (an error number) and optionally \"count\" and \"node\"")
                    }
                    let node = b["node"]?.stringValue
                    if let node, runtime.deployment.node(named: node) == nil {
                        return .error(.notFound, code: "unknown_node", message: "no node named '\(node)'")
                    }
                    runtime.deployment.injectLoginFault(LoginFault(node: node, number: Int32(number), remaining: b["count"]?.intValue ?? 1))
                    return jsonResponse(runtime.deployment.describe())
                } catch {
                    return .error(.badRequest, code: "invalid_json", message: "\(error)")
                }
            },
            HTTPRoute(.POST, "/emulator/faults/token") { req in
                do {
                    let b = try body(req)
                    runtime.entra.failNextTokenRequests(count: b["count"]?.intValue ?? 1, status: b["status"]?.intValue ?? 500)
                    return .json(.object(["ok": .bool(true)]))
                } catch {
                    return .error(.badRequest, code: "invalid_json", message: "\(error)")
                }
            },
            // Deliberately bad tokens (expired, wrong audience, foreign key, alg none...) for
            // tests of token validation in front of the emulator; a test-only convenience.
            HTTPRoute(.POST, "/emulator/tokens/bad") { req in
                do {
                    let b = try body(req)
                    guard let kindName = b["kind"]?.stringValue, let kind = EntraBadTokenKind(rawValue: kindName) else {
                        return .error(.badRequest, code: "invalid_request",
                                      message: "\"kind\" must be one of \(EntraBadTokenKind.allCases.map(\.rawValue).joined(separator: ", "))")
                    }
                    let name = b["identity"]?.stringValue
                    guard let identity = runtime.entra.tenant.identities.first(where: { $0.name == name || name == nil }) else {
                        return .error(.notFound, code: "unknown_identity", message: "no identity named '\(name ?? "")'")
                    }
                    let token = try runtime.entra.issuer.issueBadToken(kind, for: identity,
                                                                       audience: b["audience"]?.stringValue ?? "https://database.windows.net/")
                    return .json(.object(["access_token": .string(token), "kind": .string(kindName)]))
                } catch {
                    return .error(.badRequest, code: "invalid_request", message: "\(error)")
                }
            },
            HTTPRoute(.DELETE, "/emulator/faults") { _ in
                runtime.deployment.clearFaults()
                runtime.entra.clearFaults()
                return jsonResponse(runtime.deployment.describe())
            },
        ]
    }

    private static func body(_ req: HTTPServerRequest) throws -> [String: JSONValue] {
        if req.body.isEmpty { return [:] }
        return try req.decodeJSON([String: JSONValue].self)
    }

    private static func nodeOp(_ req: HTTPServerRequest, _ op: (String) async throws -> Void) async -> HTTPServerResponse {
        guard let node = req.pathParameters["node"] else { return .error(.badRequest, code: "invalid_request", message: "no node") }
        do {
            try await op(node)
            return .json(.object(["ok": .bool(true), "node": .string(node)]))
        } catch {
            return .error(.notFound, code: "node_operation_failed", message: "\(error)")
        }
    }

    private static func armFailover(_ runtime: AzureEmulatorRuntime, _ req: HTTPServerRequest, allowDataLoss: Bool) async -> HTTPServerResponse {
        if let denied = authorizeARM(runtime, req) { return denied }
        guard let group = req.pathParameters["group"], let g = runtime.config.failoverGroups.first(where: { $0.name == group }) else {
            return armError(.notFound, "ResourceNotFound", "The Resource 'Microsoft.Sql/servers/failoverGroups/\(req.pathParameters["group"] ?? "")' was not found.")
        }
        // ARM fails over to the server named in the URL: it must be the current secondary.
        let server = req.pathParameters["server"] ?? ""
        let primary = runtime.deployment.isPrimaryServer(g.primaryServer) ? g.primaryServer : g.secondaryServer
        if server == primary {
            return armError(.badRequest, "FailoverGroupFailoverRequestOnPrimary", "The failover group '\(group)' cannot be failed over because server '\(server)' is already the primary.")
        }
        do {
            try await runtime.failover(group: group, allowDataLoss: allowDataLoss)
        } catch {
            return armError(.internalServerError, "InternalServerError", "\(error)")
        }
        return .json(.object(["status": .string("Succeeded"), "name": .string(group), "primary_server": .string(server)]))
    }

    private static func authorizeARM(_ runtime: AzureEmulatorRuntime, _ req: HTTPServerRequest) -> HTTPServerResponse? {
        guard let auth = req.header("Authorization"), auth.lowercased().hasPrefix("bearer ") else {
            return armError(.unauthorized, "AuthenticationFailed", "Authentication failed. The 'Authorization' header is missing.")
        }
        let token = String(auth.dropFirst(7)).trimmingCharacters(in: .whitespaces)
        do {
            _ = try runtime.entra.verifier(audience: armAudience).verify(token)
            return nil
        } catch {
            return armError(.unauthorized, "InvalidAuthenticationToken", "The access token is invalid. \(error)")
        }
    }

    private static func armError(_ status: HTTPResponseStatus, _ code: String, _ message: String) -> HTTPServerResponse {
        .json(.object(["error": .object(["code": .string(code), "message": .string(message)])]), status: status)
    }

    static func jsonResponse(_ object: [String: Any]) -> HTTPServerResponse {
        let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .prettyPrinted])) ?? Data("{}".utf8)
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        return HTTPServerResponse(status: .ok, headers: headers, body: Array(data))
    }
}
