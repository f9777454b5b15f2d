import HTTPServerKit
import NIOHTTP1
import Testing

@testable import Gateway

/// A draining instance is alive and not ready: a balancer stops sending it new sessions
/// and nothing restarts it (issue 18).
@Suite struct ReadinessTests {
    func get(_ path: String, _ routes: [HTTPRoute]) async throws -> (HTTPResponseStatus, String) {
        let route = try #require(routes.first { $0.method == .GET && $0.pattern == path })
        let response = await route.handler(HTTPServerRequest(method: .GET, uri: path))
        return (response.status, String(decoding: response.body, as: UTF8.self))
    }

    @Test func readyzAnswers503OnceShutdownDrainsAndHealthzStays200() async throws {
        let harness = try LoginHarness.make(backendPort: 1)
        let routes = AdminAPI.routes(context: harness.context, bearerToken: nil)
        let (before, ready) = try await get("/readyz", routes)
        #expect(before == .ok && ready == "ready\n")
        harness.context.readiness.startDraining(.shutdown(graceSeconds: 30))
        let (status, body) = try await get("/readyz", routes)
        #expect(status == .serviceUnavailable)
        #expect(body == "not ready: draining: shutting down, running sessions have up to 30 s to finish; send new connections to another instance\n")
        let (health, ok) = try await get("/healthz", routes)
        #expect(health == .ok && ok == "ok\n")
        // The first reason stays.
        harness.context.readiness.startDraining(.shutdown(graceSeconds: 0))
        #expect(harness.context.readiness.drain == .shutdown(graceSeconds: 30))
        try await harness.shutdown()
    }
}
