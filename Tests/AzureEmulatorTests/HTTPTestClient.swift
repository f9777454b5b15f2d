import AzureEmulator
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import HTTPServerKit

/// One HTTP/1.1 response read off the wire.
struct RawHTTPResponse: Sendable {
    var status: Int
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    func header(_ name: String) -> String? {
        self.headers.first(where: { $0.name.lowercased() == name.lowercased() })?.value
    }

    var bodyString: String {
        String(decoding: self.body, as: UTF8.self)
    }

    func json() throws -> JSONValue {
        try JSONValue(parsing: self.body)
    }
}

struct RawHTTPRequest: Sendable {
    var method: String
    var target: String
    var headers: [(name: String, value: String)]
    var body: [UInt8]

    init(_ method: String, _ target: String, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.method = method
        self.target = target
        self.headers = headers
        self.body = body
    }

    static func form(_ target: String, _ fields: [(String, String)], headers: [(name: String, value: String)] = [])
        -> RawHTTPRequest
    {
        let body = HTTPQueryItem.encode(fields.map { HTTPQueryItem(name: $0.0, value: $0.1) })
        return RawHTTPRequest(
            "POST",
            target,
            headers: headers + [(name: "Content-Type", value: "application/x-www-form-urlencoded")],
            body: Array(body.utf8)
        )
    }
}

enum RawHTTPClientError: Error {
    case malformedResponse(String)
}

/// A deliberately tiny HTTP/1.1 client over a real loopback socket (NIOCore/NIOPosix only, so
/// the test target needs no HTTP library): writes the requests pipelined on one connection, the
/// last with `Connection: close`, reads until the server closes, and parses the responses.
enum RawHTTPClient {
    static func send(
        _ requests: [RawHTTPRequest],
        port: Int,
        host: String = "127.0.0.1",
        hostHeader: String? = nil,
        tls: NIOSSLContext? = nil,
        serverHostname: String? = nil
    ) async throws -> [RawHTTPResponse] {
        var wire: [UInt8] = []
        for (index, request) in requests.enumerated() {
            var text = "\(request.method) \(request.target) HTTP/1.1\r\n"
            text += "Host: \(hostHeader ?? "\(host):\(port)")\r\n"
            for header in request.headers { text += "\(header.name): \(header.value)\r\n" }
            if !request.body.isEmpty || request.method == "POST" {
                text += "Content-Length: \(request.body.count)\r\n"
            }
            if index == requests.count - 1 { text += "Connection: close\r\n" }
            text += "\r\n"
            wire += Array(text.utf8) + request.body
        }
        let raw = try await self.exchange(wire, port: port, host: host, tls: tls, serverHostname: serverHostname)
        return try self.parse(raw, methods: requests.map(\.method))
    }

    static func send(
        _ request: RawHTTPRequest,
        port: Int,
        hostHeader: String? = nil,
        tls: NIOSSLContext? = nil,
        serverHostname: String? = nil
    ) async throws -> RawHTTPResponse {
        let responses = try await self.send(
            [request],
            port: port,
            hostHeader: hostHeader,
            tls: tls,
            serverHostname: serverHostname
        )
        guard let first = responses.first else { throw RawHTTPClientError.malformedResponse("no response") }
        return first
    }

    static func get(_ target: String, port: Int, headers: [(name: String, value: String)] = []) async throws
        -> RawHTTPResponse
    {
        try await self.send(RawHTTPRequest("GET", target, headers: headers), port: port)
    }

    /// Writes `bytes` and returns everything read until the peer closes (10 s cap).
    static func exchange(
        _ bytes: [UInt8],
        port: Int,
        host: String = "127.0.0.1",
        tls: NIOSSLContext? = nil,
        serverHostname: String? = nil
    ) async throws -> [UInt8] {
        let group = MultiThreadedEventLoopGroup.singleton
        let promise = group.next().makePromise(of: [UInt8].self)
        let channel: any Channel
        do {
            channel = try await ClientBootstrap(group: group)
                .connectTimeout(.seconds(5))
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        let sync = channel.pipeline.syncOperations
                        if let tls {
                            try sync.addHandler(NIOSSLClientHandler(context: tls, serverHostname: serverHostname))
                        }
                        try sync.addHandler(ByteCollector(promise: promise))
                    }
                }
                .connect(host: host, port: port)
                .get()
        } catch {
            promise.fail(error)
            throw error
        }
        let timeout = channel.eventLoop.scheduleTask(in: .seconds(60)) {
            promise.fail(RawHTTPClientError.malformedResponse("timed out waiting for the server to close"))
            channel.close(promise: nil)
        }
        var buffer = channel.allocator.buffer(capacity: bytes.count)
        buffer.writeBytes(bytes)
        try await channel.writeAndFlush(buffer)
        defer { timeout.cancel() }
        return try await promise.futureResult.get()
    }

    /// Parses consecutive responses; `methods[i]` is the method of the i-th request (HEAD replies have no body).
    static func parse(_ bytes: [UInt8], methods: [String] = []) throws -> [RawHTTPResponse] {
        var responses: [RawHTTPResponse] = []
        var index = 0
        let separator: [UInt8] = Array("\r\n\r\n".utf8)
        while index < bytes.count {
            guard let end = self.find(separator, in: bytes, from: index) else {
                throw RawHTTPClientError.malformedResponse("incomplete head")
            }
            let head = String(decoding: bytes[index..<end], as: UTF8.self)
            var lines = head.components(separatedBy: "\r\n")
            let statusLine = lines.removeFirst().split(separator: " ")
            guard statusLine.count >= 2, let status = Int(statusLine[1]) else {
                throw RawHTTPClientError.malformedResponse("bad status line")
            }
            let headers = lines.compactMap { line -> (name: String, value: String)? in
                guard let colon = line.firstIndex(of: ":") else { return nil }
                return (
                    name: String(line[..<colon]),
                    value: line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                )
            }
            let isHead = responses.count < methods.count && methods[responses.count] == "HEAD"
            let length =
                isHead
                ? 0 : headers.first(where: { $0.name.lowercased() == "content-length" }).flatMap { Int($0.value) } ?? 0
            let bodyStart = end + separator.count
            guard bodyStart + length <= bytes.count else {
                throw RawHTTPClientError.malformedResponse("truncated body")
            }
            responses.append(
                RawHTTPResponse(status: status, headers: headers, body: Array(bytes[bodyStart..<(bodyStart + length)]))
            )
            index = bodyStart + length
        }
        return responses
    }

    private static func find(_ needle: [UInt8], in haystack: [UInt8], from start: Int) -> Int? {
        guard haystack.count >= needle.count else { return nil }
        var index = start
        while index + needle.count <= haystack.count {
            if Array(haystack[index..<(index + needle.count)]) == needle { return index }
            index += 1
        }
        return nil
    }
}

/// Collects inbound bytes and completes the promise when the channel closes.
private final class ByteCollector: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let promise: EventLoopPromise<[UInt8]>
    private var bytes: [UInt8] = []

    init(promise: EventLoopPromise<[UInt8]>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = self.unwrapInboundIn(data)
        self.bytes += buffer.readableBytesView
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.promise.succeed(self.bytes)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // A TLS peer closing without close_notify is still the end of the stream for us.
        if let sslError = error as? NIOSSLError, case .uncleanShutdown = sslError {
            return
        }
        self.promise.fail(error)
        context.close(promise: nil)
    }
}

/// Runs `body` with an ``HTTPServer`` on a free loopback port.
/// Tests that are not about the server's timeouts get generous ones: the whole suite runs
/// in parallel on a loaded 2-core machine, where the shared event loops can stall for
/// seconds, and a header timeout firing then closes a connection the client is about to
/// write on ("I/O on closed channel"). The limit tests pass their own.
let relaxedTestLimits = HTTPServerLimits(headerTimeout: .seconds(120), bodyTimeout: .seconds(120), idleTimeout: .seconds(120))

func withHTTPServer<T: Sendable>(
    routes: [HTTPRoute],
    limits: HTTPServerLimits = relaxedTestLimits,
    tls: NIOSSLContext? = nil,
    _ body: (Int, HTTPServer) async throws -> T
) async throws -> T {
    let server = HTTPServer(
        group: MultiThreadedEventLoopGroup.singleton,
        host: "127.0.0.1",
        port: 0,
        routes: routes,
        limits: limits,
        tls: tls
    )
    let port = try await server.start()
    do {
        let result = try await body(port, server)
        try await server.stop()
        return result
    } catch {
        try? await server.stop()
        throw error
    }
}
