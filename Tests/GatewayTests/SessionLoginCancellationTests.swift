import AsyncHTTPClient
import Foundation
import Identity
import Logging
import NIOCore
import NIOPosix
import Synchronization
import TDS
import Testing

@testable import Gateway

/// A loopback TCP server that accepts and then says nothing (a backend stuck before its
/// PRELOGIN reply, or an IMDS that never answers), and reports every connection opened
/// and closed.
final class SilentServer: Sendable {
    enum Event: Sendable, Equatable { case opened, closed }

    let port: Int
    let events: AsyncStream<Event>
    private let channel: any Channel
    private let acceptCounter: AcceptCounter

    private final class Watcher: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let report: @Sendable (Event) -> Void
        init(report: @escaping @Sendable (Event) -> Void) { self.report = report }
        func channelActive(context: ChannelHandlerContext) { report(.opened) }
        func channelInactive(context: ChannelHandlerContext) { report(.closed) }
        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
    }

    init() async throws {
        let (events, continuation) = AsyncStream.makeStream(of: Event.self)
        self.events = events
        let box = AcceptCounter()
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    box.add()
                    try ch.pipeline.syncOperations.addHandler(Watcher { continuation.yield($0) })
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress?.port ?? 0
        acceptCounter = box
    }

    /// Connections accepted so far.
    var connections: Int { acceptCounter.value }

    func stop() async {
        try? await channel.close()
    }
}

final class AcceptCounter: Sendable {
    private let count = Atomic<Int>(0)
    func add() { count.add(1, ordering: .relaxed) }
    var value: Int { count.load(ordering: .relaxed) }
}

/// A JWT-shaped token (unsigned: only its `exp` is read on tdsgate's side) for a
/// `static_file` backend identity.
private func fakeAccessToken() -> String {
    func b64(_ s: String) -> String {
        Data(s.utf8).base64EncodedString().replacingOccurrences(of: "=", with: "")
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
    }
    let exp = Int(Date().timeIntervalSince1970) + 3600
    return b64(#"{"alg":"RS256","typ":"JWT"}"#) + "." + b64(#"{"aud":"https://database.windows.net/","exp":\#(exp)}"#) + ".c2ln"
}

/// A gateway context from YAML, with its HTTP client, for driving `SessionLogin` directly.
struct LoginHarness {
    let context: GatewayContext
    let http: HTTPClient
    let directory: String

    static let password = "Cancel-Passw0rd!"

    /// `identity` is the backend identity's YAML mapping body (`kind: ...`); `cluster`
    /// adds keys to the cluster.
    static func make(backendPort: Int, identity: String? = nil, cluster: String = "") throws -> LoginHarness {
        let directory = try ConfigTestSupport.temporaryDirectory()
        let tokenFile = directory + "/token.jwt"
        try ConfigTestSupport.write(fakeAccessToken(), to: tokenFile)
        let hash = PasswordHash.make(password: password, iterations: 100_000)
        let yaml = """
        listeners:
          - name: main
            client_encryption: [plaintext]
            cluster: orders
        clusters:
          - name: orders
            databases: [appdb]
            login_timeout_ms: 60000
            max_write_wait_ms: 60000
            endpoints:
              - {name: east, host: 127.0.0.1, port: \(backendPort), tls_name: localhost}
        \(cluster)
        backend_identities:
          - {name: mi, \(identity ?? "kind: static_file, token_file: \"\(tokenFile)\"")}
        logins:
          - {name: app, password_hash: "\(hash)"}
        policy:
          - {name: everyone, match: any, clusters: ["*"], databases: ["*"], write: true, backend_identity: mi}
        """
        let config = try GatewayConfig.parse(yaml: yaml, baseDirectory: directory, checkFiles: false)
        let http = HTTPClient(eventLoopGroupProvider: .singleton)
        let context = try GatewayContext(config: config, httpClient: http, logger: Logger(label: "test"))
        return LoginHarness(context: context, http: http, directory: directory)
    }

    func login(on loop: any EventLoop) -> SessionLogin {
        SessionLogin(context: context, listener: context.config.listeners[0], clientAddress: "198.51.100.9", eventLoop: loop)
    }

    static var clientLogin: Login7 {
        Login7(packetSize: 4096, hostName: "app-host", userName: "app", password: password, appName: "cancel-test",
               serverName: "tdsgate", language: "us_english", database: "appdb")
    }

    func shutdown() async throws {
        try await http.shutdown()
        try? FileManager.default.removeItem(atPath: directory)
    }
}

/// The lead's `ClientSessionHandler` cancels the task that runs `SessionLogin.run` when the
/// client leaves: whatever the login waits for then ends, and nothing stays open.
@Suite(.timeLimit(.minutes(1)))
struct SessionLoginCancellationTests {
    let loop = MultiThreadedEventLoopGroup.singleton.next()

    func target(_ port: Int) -> BackendTarget {
        BackendTarget(host: "127.0.0.1", port: port, tlsName: "localhost", caFile: nil, strict: false, connectTimeout: .seconds(5))
    }

    /// Runs the login in a task of its own, as `ClientSessionHandler` does; the task's value
    /// is the refusal (nil: it logged in).
    func start(_ login: SessionLogin) -> Task<LoginRefusal?, Never> {
        Task {
            do throws(LoginRefusal) {
                let result = try await login.run(LoginHarness.clientLogin)
                result.backend.close()
                return nil
            } catch {
                return error
            }
        }
    }

    let anyLogin: BackendLoginAttempt.Login7Builder = { _, _ in Login7(packetSize: 4096, database: "appdb") }

    @Test func aCancelledAttemptClosesItsBackendConnection() async throws {
        let server = try await SilentServer()
        var events = server.events.makeAsyncIterator()
        let attempt = BackendLoginAttempt(tls: BackendTLSContexts(), eventLoop: loop)
        let task = Task { [anyLogin] in
            await attempt.run(target: target(server.port), deadline: .now + .seconds(60), login: anyLogin)
        }
        #expect(await events.next() == .opened)
        task.cancel()
        guard case .failure(.cancelled) = await task.value else {
            Issue.record("a cancelled attempt fails as cancelled")
            return
        }
        #expect(await events.next() == .closed)
        await server.stop()
    }

    @Test func anAttemptEndsAtItsDeadlineWhateverStageItIsIn() async throws {
        let server = try await SilentServer()
        var events = server.events.makeAsyncIterator()
        let attempt = BackendLoginAttempt(tls: BackendTLSContexts(), eventLoop: loop)
        // The backend accepts and never answers PRELOGIN: only the deadline ends this.
        let result = await attempt.run(target: target(server.port), deadline: .now + .milliseconds(200), login: anyLogin)
        guard case .failure(.timedOut) = result else {
            Issue.record("expected the attempt to time out, got \(result)")
            return
        }
        #expect(await events.next() == .opened)
        #expect(await events.next() == .closed)
        await server.stop()
    }

    @Test func aDeadlineAlreadyPastMakesNoConnection() async throws {
        let server = try await SilentServer()
        let attempt = BackendLoginAttempt(tls: BackendTLSContexts(), eventLoop: loop)
        guard case .failure(.timedOut) = await attempt.run(target: target(server.port), deadline: .now, login: anyLogin) else {
            Issue.record("expected a timeout")
            return
        }
        #expect(server.connections == 0)
        await server.stop()
    }

    @Test func cancellingTheSessionLoginClosesTheBackendLegItOpened() async throws {
        let server = try await SilentServer()
        var events = server.events.makeAsyncIterator()
        let harness = try LoginHarness.make(backendPort: server.port)
        let login = harness.login(on: loop)
        let task = start(login)
        #expect(await events.next() == .opened)
        task.cancel()
        let refusal = await task.value
        #expect(refusal != nil, "a cancelled login throws")
        #expect(await events.next() == .closed)
        #expect(harness.context.throttle.trackedCount == 0, "the credentials were good: the throttle keeps nothing")
        try await harness.shutdown()
        await server.stop()
    }

    @Test func cancellingALoginThatWaitsForAPrimaryEndsTheWaitAndConnectsNowhere() async throws {
        let server = try await SilentServer()
        // With probes configured and no prober running, no endpoint is ever confirmed
        // READ_WRITE: a write login waits (up to max_write_wait_ms, 60 s here).
        let harness = try LoginHarness.make(backendPort: server.port, cluster: "    probe: {identity: mi, interval_ms: 60000}")
        let runtime = try #require(harness.context.clusters["orders"])
        let login = harness.login(on: loop)
        let task = start(login)
        while runtime.waitingLogins == 0 { await Task.yield() }
        task.cancel()
        #expect(await task.value != nil)
        #expect(runtime.waitingLogins == 0)
        #expect(server.connections == 0, "a cancelled login never reaches a backend")
        try await harness.shutdown()
        await server.stop()
    }

    @Test func cancellingALoginThatWaitsForItsTokenEndsTheWait() async throws {
        let imds = try await SilentServer()
        var imdsEvents = imds.events.makeAsyncIterator()
        let backend = try await SilentServer()
        let harness = try LoginHarness.make(backendPort: backend.port,
                                            identity: "kind: imds, endpoint: \"http://127.0.0.1:\(imds.port)/metadata/identity/oauth2/token\"")
        let login = harness.login(on: loop)
        let task = start(login)
        // The token request reached the (silent) IMDS: the login now waits for its token.
        #expect(await imdsEvents.next() == .opened)
        task.cancel()
        #expect(await task.value != nil)
        #expect(backend.connections == 0)
        try await harness.shutdown()
        await imds.stop()
        await backend.stop()
    }
}
