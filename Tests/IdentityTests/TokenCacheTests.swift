import AzureEmulator
import Foundation
import Testing

@testable import Identity

@Suite struct TokenCacheTests {
    static let resource = "https://database.windows.net/"

    @Test func cachesPerIdentityAndResource() async throws {
        let clock = ManualClock()
        let provider = FakeProvider(clock: clock)
        let cache = TokenCache(providers: ["mi": provider], clock: clock.function)
        let first = try await cache.token(identity: "mi")
        let second = try await cache.token(identity: "mi", resource: Self.resource)
        #expect(first == second)
        #expect(provider.fetchCount == 1)
        let other = try await cache.token(identity: "mi", resource: "https://vault.azure.net")
        #expect(other != first)
        #expect(provider.fetchCount == 2)
        let stats = await cache.stats
        #expect(stats.hits == 1 && stats.refreshes == 2 && stats.failures == 0)
    }

    @Test func refreshesAheadOfExpiry() async throws {
        let clock = ManualClock()
        // One hour: refresh at half the lifetime (30 min), before "5 minutes before expiry".
        let long = FakeProvider(clock: clock, lifetime: 3600)
        // Eight minutes: refresh 5 minutes before expiry (3 min), before half the lifetime.
        let short = FakeProvider(clock: clock, lifetime: 480)
        let cache = TokenCache(providers: ["long": long, "short": short], clock: clock.function)
        let longFirst = try await cache.token(identity: "long")
        let shortFirst = try await cache.token(identity: "short")
        clock.advance(179)
        #expect(try await cache.token(identity: "short") == shortFirst)
        clock.advance(2)
        let shortSecond = try await cache.token(identity: "short")
        #expect(shortSecond != shortFirst)
        #expect(short.fetchCount == 2)
        clock.advance(1800 - 181 - 1)
        #expect(try await cache.token(identity: "long") == longFirst)
        clock.advance(2)
        #expect(try await cache.token(identity: "long") != longFirst)
        #expect(long.fetchCount == 2)
        #expect(TokenCache.refreshTime(for: longFirst) == longFirst.obtainedAt + 1800)
        #expect(TokenCache.refreshTime(for: shortFirst) == shortFirst.expiresOn - 300)
    }

    @Test func concurrentCallersShareOneIMDSRequest() async throws {
        try await withEmulator { fixture async throws in
            let provider = try TokenProviders.make(
                BackendIdentitySpec(name: "mi", kind: .imds, endpoint: fixture.imdsURL, retry: fastRetry),
                httpClient: httpClient
            )
            let cache = TokenCache(providers: ["mi": provider])
            let tokens = try await withThrowingTaskGroup(of: AccessToken.self) { group in
                for _ in 0..<20 {
                    group.addTask { try await cache.token(identity: "mi") }
                }
                var tokens: [AccessToken] = []
                for try await token in group { tokens.append(token) }
                return tokens
            }
            #expect(tokens.count == 20)
            #expect(Set(tokens.map(\.token)).count == 1)
            #expect(fixture.entra.requestCount(.imds) == 1)
            _ = try await cache.token(identity: "mi")
            #expect(fixture.entra.requestCount(.imds) == 1)
            let stats = await cache.stats
            #expect(stats.refreshes == 1)
        }
    }

    @Test func failedRefreshKeepsTheStillValidToken() async throws {
        let clock = ManualClock()
        let provider = FakeProvider(clock: clock, lifetime: 3600)
        let cache = TokenCache(providers: ["mi": provider], clock: clock.function, retryAfterFailure: 10)
        let first = try await cache.token(identity: "mi")
        provider.setFailing(true)
        clock.advance(1801)
        #expect(try await cache.token(identity: "mi") == first)
        #expect(provider.fetchCount == 2)
        // No new attempt for `retryAfterFailure` seconds.
        clock.advance(5)
        #expect(try await cache.token(identity: "mi") == first)
        #expect(provider.fetchCount == 2)
        clock.advance(6)
        #expect(try await cache.token(identity: "mi") == first)
        #expect(provider.fetchCount == 3)
        var stats = await cache.stats
        #expect(stats.failures == 2)
        // Once the old token is (nearly) expired, the error comes through.
        clock.advance(3600)
        let error = await caught { _ = try await cache.token(identity: "mi") }
        #expect((error as? TokenError)?.reason == "the fake endpoint is down")
        // And the cache recovers with the endpoint.
        provider.setFailing(false)
        #expect(try await cache.token(identity: "mi") != first)
        stats = await cache.stats
        #expect(stats.failures == 3)
    }

    @Test func slowRefreshReturnsTheOldTokenAfterTheWaitLimit() async throws {
        let clock = ManualClock()
        let provider = FakeProvider(clock: clock, lifetime: 3600, delay: 0.5)
        let cache = TokenCache(providers: ["mi": provider], clock: clock.function, maxRefreshWait: 0.05)
        let first = try await cache.token(identity: "mi")
        clock.advance(1801)
        let started = Date()
        #expect(try await cache.token(identity: "mi") == first)
        #expect(Date().timeIntervalSince(started) < 0.45)
        // The refresh completes in the background and is used afterwards.
        var refreshed = first
        for _ in 0..<100 where refreshed == first {
            try await Task.sleep(nanoseconds: 20_000_000)
            if await cache.stats.refreshes == 2 { refreshed = try await cache.token(identity: "mi") }
        }
        #expect(refreshed != first)
        #expect(provider.fetchCount == 2)
    }

    @Test func firstFetchErrorsAreTokenErrors() async throws {
        let clock = ManualClock()
        let provider = FakeProvider(clock: clock)
        provider.setFailing(true)
        let cache = TokenCache(providers: ["mi": provider], clock: clock.function)
        let error = await caught { _ = try await cache.token(identity: "mi") }
        #expect(error is TokenError)
        let unknown = await caught { _ = try await cache.token(identity: "nope") }
        #expect((unknown as? TokenError)?.description == "backend identity 'nope': no backend identity of that name is configured (known: 'mi')")
    }
}
