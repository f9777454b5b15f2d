import AsyncHTTPClient
import Logging
import NIOCore
import NIOEmbedded
import NIOPosix
import Synchronization
import Testing
import TDS
import TDSNIO
@testable import Gateway

/// `ClientSessionHandler` executing the machine's actions, on a testing channel whose clock
/// the test moves: deadlines, refusals, cancellation and close requests. The login itself is
/// a stand-in (`LoginStarter`), so no backend is involved.
@Suite struct ClientSessionHandlerTests {
    final class Harness: Sendable {
        let channel: NIOAsyncTestingChannel
        let record: NIOLoopBound<SessionRecord>
        let http: HTTPClient

        init(loginTimeout: TimeAmount = .seconds(30), starter: LoginStarter) async throws {
            http = HTTPClient(eventLoopGroup: MultiThreadedEventLoopGroup.singleton)
            let listener = ListenerConfig(name: "main", clientEncryption: [.plaintext])
            let context = try GatewayContext(config: GatewayConfig(listeners: [listener]), httpClient: http, logger: Logger(label: "test"))
            channel = NIOAsyncTestingChannel()
            let loop = channel.testingEventLoop
            record = try await loop.executeInContext {
                NIOLoopBound(SessionRecord(id: 1, listener: "main", clientAddress: "192.0.2.7", clientPort: 50123, audit: nil,
                                           metrics: nil, logger: Logger(label: "test")), eventLoop: loop)
            }
            let recordValue = record
            let channel = self.channel
            try await loop.executeInContext {
                try channel.pipeline.syncOperations.addHandler(TDSMessageFramingHandler(maxMessageSize: 1 << 20))
                try channel.pipeline.syncOperations.addHandler(ClientSessionHandler(
                    context: context, listener: listener, hasCertificate: false, record: recordValue.value,
                    tap: SessionTap(sessionID: 1), loginTimeout: loginTimeout, loginStarter: starter))
            }
            try await channel.connect(to: SocketAddress(ipAddress: "192.0.2.7", port: 50123))
        }

        func reason() async throws -> SessionEndReason? {
            let r = record
            return try await channel.testingEventLoop.executeInContext { r.value.reason }
        }

        func send(_ type: TDSPacketType, _ write: (inout ByteBuffer) -> Void) async throws {
            var payload = ByteBuffer()
            write(&payload)
            var out = ByteBuffer()
            TDSMessage(type: type, payload: payload).writePackets(into: &out, packetSize: 4096)
            try await channel.writeInbound(out)
        }

        func sendPrelogin() async throws {
            try await send(.prelogin) { b in
                var p = PreloginMessage()
                p.version = PreloginVersion(major: 18, minor: 0, build: 0)
                p.encryption = .notSupported
                p.write(into: &b)
            }
            _ = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
        }

        func sendLogin() async throws {
            try await send(.login7) { b in
                Login7(packetSize: 4096, hostName: "h", userName: "app-user", password: "pw", appName: "a",
                       serverName: "s", language: "", database: "appdb").write(into: &b)
            }
        }

        /// The tokens of the next reply the client gets.
        func reply() async throws -> [TDSToken] {
            var out = try await channel.waitForOutboundWrite(as: ByteBuffer.self)
            out.moveReaderIndex(forwardBy: TDSPacketHeader.size)
            return try TDSTokenParser.parseAll(out)
        }

        func finish() async throws {
            _ = try? await channel.finish()
            try await http.shutdown()
        }
    }

    static func errorNumber(_ tokens: [TDSToken]) -> Int32? {
        for case .error(let m) in tokens { return m.number }
        return nil
    }

    /// A login that waits until it is cancelled, and says so on `cancelled`.
    static func hangingLogin() -> (LoginStarter, AsyncStream<Void>) {
        let (stream, continuation) = AsyncStream.makeStream(of: Void.self)
        let starter = LoginStarter { _, _ throws(LoginRefusal) in
            await withTaskCancellationHandler {
                await withCheckedContinuation { (_: CheckedContinuation<Void, Never>) in }
            } onCancel: {
                continuation.yield()
                continuation.finish()
            }
            throw LoginRefusal(message: "cancelled")
        }
        return (starter, stream)
    }

    @Test func aClientThatSendsNothingIsClosedAtTheDeadline() async throws {
        let h = try await Harness(loginTimeout: .seconds(30), starter: Self.hangingLogin().0)
        await h.channel.testingEventLoop.advanceTime(by: .seconds(29))
        #expect(h.channel.isActive)
        await h.channel.testingEventLoop.advanceTime(by: .seconds(1))
        #expect(!h.channel.isActive)
        #expect(try await h.reason() == .loginTimeout)
        try await h.finish()
    }

    @Test func halfAHeaderIsClosedAtTheDeadline() async throws {
        let h = try await Harness(loginTimeout: .seconds(5), starter: Self.hangingLogin().0)
        try await h.channel.writeInbound(ByteBuffer(bytes: [0x12, 0x01, 0x00]))
        await h.channel.testingEventLoop.advanceTime(by: .seconds(5))
        #expect(!h.channel.isActive)
        try await h.finish()
    }

    @Test func noLogin7AfterPreloginGetsAnErrorAtTheDeadline() async throws {
        let h = try await Harness(loginTimeout: .seconds(5), starter: Self.hangingLogin().0)
        try await h.sendPrelogin()
        await h.channel.testingEventLoop.advanceTime(by: .seconds(5))
        #expect(Self.errorNumber(try await h.reply()) == 17830)
        #expect(try await h.reason() == .loginTimeout)
        try await h.finish()
    }

    @Test func aLoginStillRunningAtTheDeadlineIsCancelledWithARetryableError() async throws {
        let (starter, cancelled) = Self.hangingLogin()
        let h = try await Harness(loginTimeout: .seconds(5), starter: starter)
        try await h.sendPrelogin()
        try await h.sendLogin()
        await h.channel.testingEventLoop.advanceTime(by: .seconds(5))
        #expect(Self.errorNumber(try await h.reply()) == 40613)
        var it = cancelled.makeAsyncIterator()
        #expect(await it.next() != nil, "the login task was cancelled")
        try await h.finish()
    }

    @Test func aClientThatLeavesDuringLoginCancelsIt() async throws {
        let (starter, cancelled) = Self.hangingLogin()
        let h = try await Harness(starter: starter)
        try await h.sendPrelogin()
        try await h.sendLogin()
        try await h.channel.close()
        var it = cancelled.makeAsyncIterator()
        #expect(await it.next() != nil, "the login task was cancelled")
        #expect(try await h.reason() == .clientClosed)
        try await h.finish()
    }

    @Test func aRefusedLoginGetsItsErrorAndTheSessionCloses() async throws {
        let refusal = LoginRefusal(message: "Login failed for user 'app-user'.")
        let h = try await Harness(starter: LoginStarter { _, _ throws(LoginRefusal) in throw refusal })
        try await h.sendPrelogin()
        try await h.sendLogin()
        #expect(Self.errorNumber(try await h.reply()) == 18456)
        try await h.channel.closeFuture.get()
        #expect(try await h.reason() == .refused(refusal.message))
        try await h.finish()
    }

    @Test func aCloseRequestEndsTheSessionWithItsReason() async throws {
        let (starter, cancelled) = Self.hangingLogin()
        let h = try await Harness(starter: starter)
        try await h.sendPrelogin()
        try await h.sendLogin()
        h.channel.requestSessionClose(.shutdown)
        try await h.channel.closeFuture.get()
        var it = cancelled.makeAsyncIterator()
        #expect(await it.next() != nil)
        #expect(try await h.reason() == .shutdown)
        try await h.finish()
    }

    @Test func aBatchBeforeLoginIsAProtocolError() async throws {
        let h = try await Harness(starter: Self.hangingLogin().0)
        try await h.send(.sqlBatch) { $0.writeBytes([1, 2, 3]) }
        #expect(Self.errorNumber(try await h.reply()) == 4002)
        try await h.finish()
    }
}
