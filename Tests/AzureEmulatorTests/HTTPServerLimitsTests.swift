import Foundation
import NIOCore
import NIOEmbedded
import NIOHTTP1
import NIOPosix
import Testing

@testable import HTTPServerKit

/// The connection state machine alone: inputs in, actions and deadlines out, time injected.
@Suite("HTTP connection state machine")
struct HTTPConnectionStateMachineTests {
    static let limits = HTTPServerLimits(maxBodyBytes: 100, maxHeaderBytes: 1024, headerTimeout: .seconds(10),
                                         bodyTimeout: .seconds(30), idleTimeout: .seconds(75))
    let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
    let allocator = ByteBufferAllocator()

    func head(_ method: HTTPMethod = .POST, headers: HTTPHeaders = [:], keepAlive: Bool = true) -> HTTPRequestHead {
        var headers = headers
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        return HTTPRequestHead(version: .http1_1, method: method, uri: "/x", headers: headers)
    }

    func chunk(_ count: Int) -> ByteBuffer {
        ByteBuffer(repeating: 0x61, count: count)
    }

    @Test func firstRequestsHeadersAreDueAHeaderTimeoutAfterTheAccept() {
        var m = HTTPConnectionStateMachine(limits: Self.limits, acceptedAt: t0)
        #expect(m.deadline == t0 + .seconds(10))
        // Bytes trickling in do not push the deadline (a slowloris gains nothing).
        m.bytesArrived(now: t0 + .seconds(5))
        m.bytesArrived(now: t0 + .seconds(9))
        #expect(m.deadline == t0 + .seconds(10))
        guard case .none = m.deadlineFired(now: t0 + .seconds(10) - .nanoseconds(1)) else { Issue.record("fired early"); return }
        guard case .close = m.deadlineFired(now: t0 + .seconds(10)) else { Issue.record("not closed"); return }
        #expect(m.deadline == nil)
        guard case .closed = m.state else { Issue.record("state \(m.state)"); return }
    }

    @Test func keptAliveConnectionIdlesThenHasAHeaderTimeoutFromItsFirstByte() {
        var m = HTTPConnectionStateMachine(limits: Self.limits, acceptedAt: t0)
        m.bytesArrived(now: t0)
        _ = m.headReceived(head(.GET), allocator: allocator, now: t0 + .seconds(1))
        #expect(m.deadline == t0 + .seconds(31))
        guard case .dispatch = m.endReceived() else { Issue.record("not dispatched"); return }
        // A route takes the time it needs: no deadline while responding.
        #expect(m.deadline == nil)
        guard case .none = m.deadlineFired(now: t0 + .seconds(3600)) else { Issue.record("fired while responding"); return }
        let stays = m.responseWritten(now: t0 + .seconds(2))
        #expect(stays)
        #expect(m.deadline == t0 + .seconds(77))
        m.bytesArrived(now: t0 + .seconds(50))
        #expect(m.deadline == t0 + .seconds(60))
        guard case .close = m.deadlineFired(now: t0 + .seconds(60)) else { Issue.record("not closed"); return }
    }

    @Test func idleKeepAliveIsClosedQuietly() {
        var m = HTTPConnectionStateMachine(limits: Self.limits, acceptedAt: t0)
        _ = m.headReceived(head(.GET), allocator: allocator, now: t0)
        _ = m.endReceived()
        let stays = m.responseWritten(now: t0)
        #expect(stays)
        guard case .close = m.deadlineFired(now: t0 + .seconds(75)) else { Issue.record("not closed"); return }
    }

    @Test func responseWithoutKeepAliveEndsTheConnection() {
        var m = HTTPConnectionStateMachine(limits: Self.limits, acceptedAt: t0)
        _ = m.headReceived(head(.GET, keepAlive: false), allocator: allocator, now: t0)
        _ = m.endReceived()
        let stays = m.responseWritten(now: t0)
        #expect(!stays)
        #expect(m.deadline == nil)
    }

    @Test func bodyIsCollectedAndDispatchedWhole() {
        var m = HTTPConnectionStateMachine(limits: Self.limits, acceptedAt: t0)
        guard case .none = m.headReceived(head(), allocator: allocator, now: t0) else { Issue.record("action"); return }
        var a = chunk(60), b = chunk(40)
        guard case .none = m.bodyReceived(&a), case .none = m.bodyReceived(&b) else { Issue.record("refused 100 bytes"); return }
        guard case .dispatch(let head, let body) = m.endReceived() else { Issue.record("not dispatched"); return }
        #expect(head.uri == "/x")
        #expect(body.readableBytes == 100)
    }

    @Test func bodyOverTheCapIsRefusedThenDiscardedUntilTheEnd() {
        var m = HTTPConnectionStateMachine(limits: Self.limits, acceptedAt: t0)
        _ = m.headReceived(head(), allocator: allocator, now: t0)
        var a = chunk(60), b = chunk(41)
        _ = m.bodyReceived(&a)
        guard case .reject(.bodyTooLarge(limit: 100), _, closeAfterwards: false) = m.bodyReceived(&b) else {
            Issue.record("not refused"); return
        }
        var more = chunk(1000)
        guard case .none = m.bodyReceived(&more) else { Issue.record("discarding stopped"); return }
        guard case .close = m.endReceived() else { Issue.record("not closed at the end"); return }
    }

    @Test func discardingHasALimitToo() {
        var m = HTTPConnectionStateMachine(limits: Self.limits, acceptedAt: t0)
        _ = m.headReceived(head(), allocator: allocator, now: t0)
        var big = chunk(101)
        _ = m.bodyReceived(&big)
        var flood = chunk(HTTPConnectionStateMachine.discardLimit + 1)
        guard case .close = m.bodyReceived(&flood) else { Issue.record("discarded without end"); return }
    }

    @Test func contentLengthOverTheCapIsRefusedBeforeTheBody() {
        var m = HTTPConnectionStateMachine(limits: Self.limits, acceptedAt: t0)
        let action = m.headReceived(head(headers: ["Content-Length": "101", "Expect": "100-continue"]), allocator: allocator, now: t0)
        guard case .reject(.bodyTooLarge(limit: 100), .http1_1, closeAfterwards: false) = action else {
            Issue.record("\(action)"); return
        }
    }

    @Test func expectContinueIsAnsweredWhenTheBodyFits() {
        var m = HTTPConnectionStateMachine(limits: Self.limits, acceptedAt: t0)
        let action = m.headReceived(head(headers: ["Content-Length": "100", "Expect": "100-Continue"]), allocator: allocator, now: t0)
        guard case .sendContinue(.http1_1) = action else { Issue.record("\(action)"); return }
    }

    @Test func slowBodyGets408() {
        var m = HTTPConnectionStateMachine(limits: Self.limits, acceptedAt: t0)
        _ = m.headReceived(head(), allocator: allocator, now: t0 + .seconds(2))
        var a = chunk(10)
        _ = m.bodyReceived(&a)
        guard case .none = m.deadlineFired(now: t0 + .seconds(31)) else { Issue.record("early"); return }
        guard case .reject(.bodyTimeout, _, closeAfterwards: true) = m.deadlineFired(now: t0 + .seconds(32)) else {
            Issue.record("no 408"); return
        }
    }

    @Test func parserErrorsAreAnsweredUnlessAResponseIsUnderway() {
        var m = HTTPConnectionStateMachine(limits: Self.limits, acceptedAt: t0)
        m.bytesArrived(now: t0)
        guard case .reject(.headersTooLarge(limit: 1024), _, closeAfterwards: true) = m.parseFailed(.headerOverflow) else {
            Issue.record("no 431"); return
        }
        var n = HTTPConnectionStateMachine(limits: Self.limits, acceptedAt: t0)
        guard case .reject(.badRequest, _, closeAfterwards: true) = n.parseFailed(.invalidVersion) else {
            Issue.record("no 400"); return
        }
        var r = HTTPConnectionStateMachine(limits: Self.limits, acceptedAt: t0)
        _ = r.headReceived(head(.GET), allocator: allocator, now: t0)
        _ = r.endReceived()
        guard case .close = r.parseFailed(.invalidVersion) else { Issue.record("answered twice"); return }
    }
}

/// `HTTPRequestHandler` in the server's own pipeline on a testing channel: what a client
/// sees, with the event loop's clock moved by hand.
@Suite("HTTP server limits on a testing channel")
struct HTTPServerLimitsChannelTests {
    static let routes = [
        HTTPRoute(.GET, "/ok") { _ in .text("ok\n") },
        HTTPRoute(.POST, "/echo") { request in .json(["length": .int(request.body.count)]) },
    ]

    func makeChannel(_ limits: HTTPServerLimits) async throws -> NIOAsyncTestingChannel {
        let channel = NIOAsyncTestingChannel()
        let router = HTTPRouter(routes: Self.routes)
        try await channel.testingEventLoop.executeInContext {
            try HTTPServer.addHTTPHandlers(to: channel.pipeline.syncOperations, router: router, limits: limits,
                                           isSecure: false, acceptedAt: channel.testingEventLoop.now)
        }
        try await channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1))
        return channel
    }

    func send(_ channel: NIOAsyncTestingChannel, _ text: String) async throws {
        try await channel.writeInbound(ByteBuffer(string: text))
    }

    /// Everything written to the client so far, parsed.
    func responses(_ channel: NIOAsyncTestingChannel) async throws -> [RawHTTPResponse] {
        var bytes: [UInt8] = []
        while let buffer = try await channel.readOutbound(as: ByteBuffer.self) {
            bytes += buffer.readableBytesView
        }
        return try RawHTTPClient.parse(bytes)
    }

    @Test func slowlorisIsClosedAtTheHeaderTimeout() async throws {
        let channel = try await makeChannel(HTTPServerLimits(headerTimeout: .seconds(10)))
        let request = Array("GET /ok HTTP/1.1\r\nHost: x\r\nX-Slow: ".utf8)
        for second in 0..<9 {
            try await send(channel, String(decoding: [request[second]], as: UTF8.self))
            await channel.testingEventLoop.advanceTime(by: .seconds(1))
            #expect(channel.isActive, "closed after \(second + 1) s")
        }
        await channel.testingEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
        #expect(try await responses(channel).isEmpty)
    }

    @Test func silentClientIsClosedAtTheHeaderTimeout() async throws {
        let channel = try await makeChannel(HTTPServerLimits(headerTimeout: .seconds(3)))
        await channel.testingEventLoop.advanceTime(by: .milliseconds(2999))
        #expect(channel.isActive)
        await channel.testingEventLoop.advanceTime(by: .milliseconds(1))
        #expect(!channel.isActive)
    }

    @Test func keptAliveConnectionIsClosedAfterTheIdleTimeout() async throws {
        let channel = try await makeChannel(HTTPServerLimits(headerTimeout: .seconds(10), idleTimeout: .seconds(75)))
        try await send(channel, "GET /ok HTTP/1.1\r\nHost: x\r\n\r\n")
        let first = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
        #expect(String(buffer: first).hasPrefix("HTTP/1.1 200 OK"))
        // The header timeout no longer applies; the idle timeout does.
        await channel.testingEventLoop.advanceTime(by: .seconds(74))
        #expect(channel.isActive)
        await channel.testingEventLoop.advanceTime(by: .seconds(1))
        #expect(!channel.isActive)
    }

    @Test func headersOverTheCapGet431() async throws {
        let channel = try await makeChannel(HTTPServerLimits(maxHeaderBytes: 1024))
        try await send(channel, "GET /ok HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 2000))\r\n\r\n")
        let answer = try await responses(channel)
        #expect(answer.first?.status == 431)
        #expect(try answer.first?.json()["error"] == "request_header_fields_too_large")
        #expect(answer.first?.header("Connection") == "close")
        try await channel.closeFuture.get()
    }

    @Test func tooManyHeaderFieldsGet431() async throws {
        let channel = try await makeChannel(HTTPServerLimits(maxHeaderCount: 10))
        let fields = (0..<20).map { "X-\($0): 1\r\n" }.joined()
        try await send(channel, "GET /ok HTTP/1.1\r\nHost: x\r\n\(fields)\r\n")
        #expect(try await responses(channel).first?.status == 431)
    }

    @Test func garbageGets400() async throws {
        let channel = try await makeChannel(HTTPServerLimits())
        try await send(channel, "\u{16}\u{03}\u{01} not http\r\n\r\n")
        let answer = try await responses(channel)
        #expect(answer.first?.status == 400)
        #expect(try answer.first?.json()["error"] == "bad_request")
        try await channel.closeFuture.get()
    }

    @Test func bodyOverTheCapGets413() async throws {
        let channel = try await makeChannel(HTTPServerLimits(maxBodyBytes: 10))
        try await send(channel, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 11\r\n\r\nhello world")
        let answer = try await responses(channel)
        #expect(answer.first?.status == 413)
        #expect(try answer.first?.json()["error"] == "request_entity_too_large")
        try await channel.closeFuture.get()
    }

    @Test func bodyThatStopsGets408() async throws {
        let channel = try await makeChannel(HTTPServerLimits(bodyTimeout: .seconds(30)))
        try await send(channel, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nhalf")
        await channel.testingEventLoop.advanceTime(by: .seconds(29))
        #expect(channel.isActive)
        await channel.testingEventLoop.advanceTime(by: .seconds(1))
        let answer = try await responses(channel)
        #expect(answer.first?.status == 408)
        #expect(try answer.first?.json()["error"] == "request_timeout")
        try await channel.closeFuture.get()
    }
}

/// Real loopback sockets: the connection cap.
@Suite("HTTP server connection cap")
struct HTTPServerConnectionCapTests {
    typealias Connection = NIOAsyncChannel<ByteBuffer, ByteBuffer>

    @Test func connectionsBeyondTheCapGet503AndAdmittedOnesKeepWorking() async throws {
        let routes = [HTTPRoute(.GET, "/ok") { _ in .text("ok\n") }]
        try await withHTTPServer(routes: routes, limits: HTTPServerLimits(headerTimeout: .seconds(120), bodyTimeout: .seconds(120), idleTimeout: .seconds(120), maxConnections: 2)) { port, server in
            // Two kept-alive connections hold both places (a first answer proves each admitted).
            try await Self.connect(port).executeThenClose { firstIn, firstOut in
                var first = firstIn.makeAsyncIterator()
                let firstAnswer = try await Self.get("/ok", on: firstOut, reading: &first)
                #expect(firstAnswer.status == 200)
                try await Self.connect(port).executeThenClose { secondIn, secondOut in
                    var second = secondIn.makeAsyncIterator()
                    let secondAnswer = try await Self.get("/ok", on: secondOut, reading: &second)
                    #expect(secondAnswer.status == 200)
                    #expect(server.connectionCount == 2)

                    // The third is answered without sending anything, and closed.
                    let refused = try RawHTTPClient.parse(try await Self.connect(port).executeThenClose { inbound, _ in
                        var bytes: [UInt8] = []
                        for try await chunk in inbound { bytes += chunk.readableBytesView }
                        return bytes
                    })
                    #expect(refused.first?.status == 503)
                    #expect(try refused.first?.json()["error"] == "too_many_connections")
                    #expect(refused.first?.header("Connection") == "close")

                    let again = try await Self.get("/ok", on: firstOut, reading: &first)
                    #expect(again.status == 200)
                    #expect(server.connectionCount == 2)
                }
            }
        }
    }

    static func connect(_ port: Int) async throws -> Connection {
        try await ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .connect(host: "127.0.0.1", port: port) { channel in
                channel.eventLoop.makeCompletedFuture { try Connection(wrappingChannelSynchronously: channel) }
            }
    }

    /// One keep-alive GET and its whole response.
    static func get(
        _ path: String, on outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>,
        reading inbound: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator
    ) async throws -> RawHTTPResponse {
        try await outbound.write(ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: x\r\n\r\n"))
        var bytes: [UInt8] = []
        while let chunk = try await inbound.next() {
            bytes += chunk.readableBytesView
            if let response = try? RawHTTPClient.parse(bytes).first { return response }
        }
        throw RawHTTPClientError.malformedResponse("connection closed before the response")
    }
}
