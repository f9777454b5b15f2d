import AzureEmulator
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing
import HTTPServerKit

@Suite("HTTP server")
struct HTTPServerTests {
    static let routes: [HTTPRoute] = [
        HTTPRoute(.GET, "/hello/{name}") { request in
            .json([
                "hello": .string(request.pathParameters["name"] ?? ""),
                "q": .string(request.query("q") ?? ""),
            ])
        },
        HTTPRoute(.POST, "/echo") { request in
            .json(["length": .int(request.body.count), "form": .string(request.form("a") ?? "")])
        },
        HTTPRoute(.GET, "/files/{path...}") { request in
            .text(request.pathParameters["path"] ?? "")
        },
    ]

    @Test func routeMatching() {
        let route = HTTPRoute(.GET, "/{tenant}/oauth2/v2.0/token") { _ in HTTPServerResponse() }
        #expect(route.match(path: "/abc/oauth2/v2.0/token") == ["tenant": "abc"])
        #expect(route.match(path: "/abc/oauth2/v2.0/token/") == ["tenant": "abc"])
        #expect(route.match(path: "/abc/oauth2/token") == nil)
        #expect(route.match(path: "/abc/oauth2/v2.0/token/more") == nil)
        let rest = HTTPRoute(.GET, "/files/{path...}") { _ in HTTPServerResponse() }
        #expect(rest.match(path: "/files/a/b/c") == ["path": "a/b/c"])
        #expect(rest.match(path: "/files") == ["path": ""])
    }

    @Test func queryAndFormDecoding() {
        let request = HTTPServerRequest(
            method: .GET,
            uri: "/x%20y?resource=https%3A%2F%2Fdatabase.windows.net%2F&a=b+c&flag",
            headers: ["Host": "127.0.0.1:1"]
        )
        #expect(request.path == "/x y")
        #expect(request.query("resource") == "https://database.windows.net/")
        #expect(request.query("a") == "b c")
        #expect(request.query("flag") == "")
        #expect(request.baseURL == "http://127.0.0.1:1")
        let encoded = HTTPQueryItem.encode([HTTPQueryItem(name: "scope", value: "https://database.windows.net/.default")])
        #expect(encoded == "scope=https%3A%2F%2Fdatabase.windows.net%2F.default")
        #expect(HTTPQueryItem.parse(encoded).first?.value == "https://database.windows.net/.default")
    }

    @Test func routerWithoutSockets() async throws {
        let router = HTTPRouter(routes: Self.routes)
        let hello = await router.respond(to: HTTPServerRequest(method: .GET, uri: "/hello/world?q=1"))
        #expect(hello.status == .ok)
        #expect(try JSONValue(parsing: hello.body)["hello"] == "world")
        let missing = await router.respond(to: HTTPServerRequest(method: .GET, uri: "/nope"))
        #expect(missing.status == .notFound)
        #expect(try JSONValue(parsing: missing.body)["error"] == "not_found")
        let wrongMethod = await router.respond(to: HTTPServerRequest(method: .DELETE, uri: "/echo"))
        #expect(wrongMethod.status == .methodNotAllowed)
        #expect(wrongMethod.headers.first(name: "Allow") == "POST")
    }

    @Test func servesOverLoopbackWithKeepAliveAndPipelining() async throws {
        try await withHTTPServer(routes: Self.routes) { port, server in
            #expect(server.port == port)
            #expect(server.baseURL == "http://127.0.0.1:\(port)")
            let responses = try await RawHTTPClient.send(
                [
                    RawHTTPRequest("GET", "/hello/alice?q=%2F"),
                    RawHTTPRequest("GET", "/unknown/path"),
                    .form("/echo", [("a", "x y&z")]),
                    RawHTTPRequest("HEAD", "/hello/bob"),
                    RawHTTPRequest("GET", "/files/a/b.txt"),
                ],
                port: port
            )
            #expect(responses.count == 5)
            #expect(responses[0].status == 200)
            #expect(try responses[0].json() == ["hello": "alice", "q": "/"])
            #expect(responses[0].header("Content-Type") == "application/json; charset=utf-8")
            #expect(responses[0].header("Connection") == nil)  // HTTP/1.1 keep-alive is implicit
            #expect(responses[1].status == 404)
            #expect(try responses[1].json()["error"] == "not_found")
            #expect(responses[2].status == 200)
            #expect(try responses[2].json() == ["length": 11, "form": "x y&z"])
            #expect(responses[3].status == 200)
            #expect(responses[3].body.isEmpty)
            #expect(responses[3].header("Content-Length") == String(#"{"hello":"bob","q":""}"#.utf8.count))
            #expect(responses[4].bodyString == "a/b.txt")
            #expect(responses[4].header("Connection") == "close")
        }
    }

    @Test func rejectsOversizedBodies() async throws {
        try await withHTTPServer(routes: Self.routes, limits: HTTPServerLimits(maxBodyBytes: 1024, headerTimeout: .seconds(120), bodyTimeout: .seconds(120), idleTimeout: .seconds(120))) { port, _ in
            let small = try await RawHTTPClient.send(RawHTTPRequest("POST", "/echo", body: Array(repeating: 0x61, count: 1024)), port: port)
            #expect(small.status == 200)
            #expect(try small.json()["length"] == 1024)
            let large = try await RawHTTPClient.send(RawHTTPRequest("POST", "/echo", body: Array(repeating: 0x61, count: 5000)), port: port)
            #expect(large.status == 413)
            #expect(try large.json()["error"] == "request_entity_too_large")
            #expect(large.header("Connection") == "close")
            // Chunked bodies are counted as they arrive.
            let chunk = String(repeating: "b", count: 800)
            let chunked =
                "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                + "320\r\n\(chunk)\r\n320\r\n\(chunk)\r\n0\r\n\r\n"
            let raw = try await RawHTTPClient.exchange(Array(chunked.utf8), port: port)
            let parsed = try RawHTTPClient.parse(raw)
            #expect(parsed.first?.status == 413)
        }
    }

    @Test func stopClosesListenerAndConnections() async throws {
        let server = HTTPServer(group: MultiThreadedEventLoopGroup.singleton, routes: Self.routes)
        let port = try await server.start()
        let response = try await RawHTTPClient.get("/hello/x", port: port)
        #expect(response.status == 200)
        try await server.stop()
        await #expect(throws: (any Error).self) {
            _ = try await RawHTTPClient.get("/hello/x", port: port)
        }
    }

    @Test func servesHTTPSWithAnEmulatorPKICertificate() async throws {
        let pki = try EmulatorPKI.generate()
        let leaf = try pki.issueServerCertificate(hosts: ["localhost", "127.0.0.1"])
        let serverTLS = try HTTPServer.makeTLSContext(certificatePEM: leaf.certificatePEM, privateKeyPEM: leaf.privateKeyPEM)
        var clientConfiguration = TLSConfiguration.makeClientConfiguration()
        clientConfiguration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(pki.caCertificatePEM.utf8)))
        clientConfiguration.certificateVerification = .fullVerification
        let clientTLS = try NIOSSLContext(configuration: clientConfiguration)

        try await withHTTPServer(routes: Self.routes, tls: serverTLS) { port, server in
            #expect(server.baseURL == "https://127.0.0.1:\(port)")
            let response = try await RawHTTPClient.send(
                RawHTTPRequest("GET", "/hello/tls"),
                port: port,
                tls: clientTLS,
                serverHostname: "localhost"
            )
            #expect(response.status == 200)
            #expect(try response.json()["hello"] == "tls")

            // A client that does not trust our CA fails the handshake.
            var untrusting = TLSConfiguration.makeClientConfiguration()
            untrusting.trustRoots = .certificates([])
            let untrustingContext = try NIOSSLContext(configuration: untrusting)
            await #expect(throws: (any Error).self) {
                _ = try await RawHTTPClient.send(
                    RawHTTPRequest("GET", "/hello/tls"),
                    port: port,
                    tls: untrustingContext,
                    serverHostname: "localhost"
                )
            }
        }
    }
}
