import AsyncHTTPClient
import AzureEmulator
import Foundation
import NIOCore
import NIOPosix

import GateSupport
@testable import Identity
import HTTPServerKit

/// An emulated Entra tenant served over HTTP on 127.0.0.1 (a free port).
final class EmulatorFixture: Sendable {
    let entra: EntraEmulator
    let server: HTTPServer
    let baseURL: String

    var tenant: EmulatedTenant { self.entra.tenant }
    var tenantID: String { self.entra.tenant.tenantID }
    var imdsURL: String { self.baseURL + EntraEmulator.imdsPath }
    var appServiceURL: String { self.baseURL + EntraEmulator.appServicePath }
    var arcURL: String { self.baseURL + EntraEmulator.arcPath }
    var jwksURL: String { "\(self.baseURL)/\(self.tenantID)/discovery/v2.0/keys" }

    private init(entra: EntraEmulator, server: HTTPServer, baseURL: String) {
        self.entra = entra
        self.server = server
        self.baseURL = baseURL
    }

    static func start(tenant: EmulatedTenant = .demo()) async throws -> EmulatorFixture {
        let entra = try EntraEmulator(tenant: tenant)
        let server = HTTPServer(group: MultiThreadedEventLoopGroup.singleton, host: "127.0.0.1", port: 0, routes: entra.routes)
        let port = try await server.start()
        return EmulatorFixture(entra: entra, server: server, baseURL: "http://127.0.0.1:\(port)")
    }

    func stop() async {
        try? await self.server.stop()
    }

    func identity(_ name: String) -> EmulatedIdentity {
        guard let identity = self.tenant.identity(named: name) else { fatalError("no identity \(name) in the demo tenant") }
        return identity
    }
}

func withEmulator<T: Sendable>(
    tenant: EmulatedTenant = .demo(),
    _ body: (EmulatorFixture) async throws -> T
) async throws -> T {
    let fixture = try await EmulatorFixture.start(tenant: tenant)
    do {
        let result = try await body(fixture)
        await fixture.stop()
        return result
    } catch {
        await fixture.stop()
        throw error
    }
}

/// Retries fast enough for tests.
// Deadlines are generous: Swift Testing runs every test at once on 2 cores, and a loaded
// CI machine must not turn a retry count into a wall-clock race.
let fastRetry = RetryPolicy(maxRetries: 3, initialDelay: 0.01, maxDelay: 0.05, deadline: 120, requestTimeout: 60, jitter: 0.2)

let httpClient = HTTPClient.shared

/// A clock tests move by hand.
final class ManualClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    init(_ start: Date = Date(timeIntervalSince1970: 1_750_000_000)) {
        self.current = start
    }

    var now: Date {
        self.lock.lock()
        defer { self.lock.unlock() }
        return self.current
    }

    func advance(_ seconds: TimeInterval) {
        self.lock.lock()
        self.current += seconds
        self.lock.unlock()
    }

    var function: @Sendable () -> Date {
        { [self] in self.now }
    }
}

/// A provider that counts fetches and can be told to fail or to be slow.
final class FakeProvider: AccessTokenProvider, @unchecked Sendable {
    private let lock = NSLock()
    private var fetches = 0
    private var failing = false
    private let clock: ManualClock
    let lifetime: TimeInterval
    let delay: TimeInterval

    init(clock: ManualClock, lifetime: TimeInterval = 3600, delay: TimeInterval = 0) {
        self.clock = clock
        self.lifetime = lifetime
        self.delay = delay
    }

    var label: String { "fake" }

    var fetchCount: Int {
        self.lock.lock()
        defer { self.lock.unlock() }
        return self.fetches
    }

    func setFailing(_ value: Bool) {
        self.lock.lock()
        self.failing = value
        self.lock.unlock()
    }

    func fetchToken(resource: String) async throws -> AccessToken {
        let (count, failing): (Int, Bool) = {
            self.lock.lock()
            defer { self.lock.unlock() }
            self.fetches += 1
            return (self.fetches, self.failing)
        }()
        if self.delay > 0 { try await Task.sleep(nanoseconds: UInt64(self.delay * 1_000_000_000)) }
        if failing {
            throw TokenError(identity: "fake", label: "fake", reason: "the fake endpoint is down", status: 503)
        }
        let now = self.clock.now
        return AccessToken(token: "token-\(count)-\(resource)", expiresOn: now + self.lifetime, obtainedAt: now)
    }
}

func temporaryDirectory() throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("identity-tests-\(UUID().uuidString)", isDirectory: true)
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

/// The claims of a JWT (not verified).
func claims(of token: String) -> [String: Any] {
    JWTInspection.claims(of: token) ?? [:]
}

func header(of token: String) -> [String: Any] {
    let first = token.split(separator: ".").first.map(String.init) ?? ""
    guard let bytes = Base64URL.decode(first) else { return [:] }
    return ((try? JSONSerialization.jsonObject(with: Data(bytes))) as? [String: Any]) ?? [:]
}

/// Runs `body` and returns the error it threw (nil if none).
func caught(_ body: () async throws -> Void) async -> (any Error)? {
    do {
        try await body()
        return nil
    } catch {
        return error
    }
}
