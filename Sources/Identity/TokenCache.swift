import Foundation

/// Backend access tokens, cached per (identity, resource).
///
/// - A cached token is used until its refresh time: the earlier of 5 minutes before
///   `expiresOn` and half its lifetime.
/// - One fetch in flight per key: concurrent callers wait for the same fetch.
/// - A failed refresh while the old token is still valid returns the old token (and the next
///   refresh is tried no sooner than ``retryAfterFailure`` later); otherwise the error is thrown
///   as ``TokenError``.
/// - Callers that hold a still-valid old token wait at most ``maxRefreshWait`` for a refresh
///   (IMDS retries can take a minute); then they get the old token and the fetch goes on.
public actor TokenCache {
    struct Key: Hashable, Sendable {
        var identity: String
        var resource: String
    }

    private struct Waiter {
        var continuation: CheckedContinuation<AccessToken, any Error>
    }

    private struct Entry {
        var token: AccessToken?
        var refreshAt: Date = .distantPast
        /// No new fetch before this (after a failure while the old token was usable).
        var notBefore: Date = .distantPast
        var inFlight = false
        var waiters: [UInt64: Waiter] = [:]
    }

    /// Time before expiry when a token counts as no longer usable.
    public static let usableMargin: TimeInterval = 30
    /// How long before `expiresOn` a refresh starts at the latest.
    public static let refreshAhead: TimeInterval = 300

    private let providers: [String: any AccessTokenProvider]
    private let clock: @Sendable () -> Date
    public let maxRefreshWait: TimeInterval
    public let retryAfterFailure: TimeInterval
    private var entries: [Key: Entry] = [:]
    private var nextWaiterID: UInt64 = 0
    private var hits = 0
    private var refreshes = 0
    private var failures = 0

    public init(
        providers: [String: any AccessTokenProvider],
        clock: @escaping @Sendable () -> Date = { Date() },
        maxRefreshWait: TimeInterval = 5,
        retryAfterFailure: TimeInterval = 10
    ) {
        self.providers = providers
        self.clock = clock
        self.maxRefreshWait = maxRefreshWait
        self.retryAfterFailure = retryAfterFailure
    }

    /// (cache hits, successful fetches, failed fetches).
    public var stats: (hits: Int, refreshes: Int, failures: Int) {
        (self.hits, self.refreshes, self.failures)
    }

    /// The configured identity names.
    public nonisolated var identities: [String] {
        self.providers.keys.sorted()
    }

    /// The provider label for an identity (for logs), nil if unknown.
    public nonisolated func label(of identity: String) -> String? {
        self.providers[identity]?.label
    }

    /// When a token obtained now should be refreshed.
    static func refreshTime(for token: AccessToken) -> Date {
        let lifetime = max(0, token.lifetime)
        let aheadOfExpiry = token.expiresOn.addingTimeInterval(-Self.refreshAhead)
        let halfLife = token.obtainedAt.addingTimeInterval(lifetime / 2)
        return min(aheadOfExpiry, halfLife)
    }

    private func isUsable(_ token: AccessToken?, at now: Date) -> Bool {
        guard let token else { return false }
        return token.expiresOn.timeIntervalSince(now) > Self.usableMargin
    }

    /// A token for `identity` and `resource`, from the cache or freshly fetched.
    public func token(identity: String, resource: String = "https://database.windows.net/") async throws -> AccessToken {
        guard let provider = self.providers[identity] else {
            let known = self.providers.keys.sorted().map { "'\($0)'" }.joined(separator: ", ")
            throw TokenError(
                identity: identity,
                reason: "no backend identity of that name is configured (known: \(known.isEmpty ? "none" : known))"
            )
        }
        let key = Key(identity: identity, resource: resource)
        let now = self.clock()
        var entry = self.entries[key] ?? Entry()
        let usable = self.isUsable(entry.token, at: now)
        if let token = entry.token, usable, now < entry.refreshAt || now < entry.notBefore {
            self.hits += 1
            return token
        }
        if !entry.inFlight {
            entry.inFlight = true
            self.entries[key] = entry
            Task { await self.fetch(key: key, provider: provider) }
        }
        let stale = usable ? entry.token : nil
        return try await self.wait(for: key, stale: stale)
    }

    /// Waits for the fetch of `key`; with a usable `stale` token, at most ``maxRefreshWait``.
    /// A cancelled caller (a client that left during its login) stops waiting at once with
    /// `CancellationError`; the fetch goes on for the others.
    private func wait(for key: Key, stale: AccessToken?) async throws -> AccessToken {
        self.nextWaiterID &+= 1
        let id = self.nextWaiterID
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<AccessToken, any Error>) in
                if Task.isCancelled {
                    continuation.resume(throwing: CancellationError())
                    return
                }
                self.entries[key, default: Entry()].waiters[id] = Waiter(continuation: continuation)
                if let stale {
                    let wait = self.maxRefreshWait
                    Task {
                        try? await Task.sleep(nanoseconds: UInt64(max(0, wait) * 1_000_000_000))
                        self.timeOut(waiter: id, key: key, with: stale)
                    }
                }
            }
        } onCancel: {
            // The handler runs outside the actor; the waiter is registered before this hop
            // runs, because registration happens in the actor turn that is running now.
            Task { await self.cancel(waiter: id, key: key) }
        }
    }

    private func cancel(waiter id: UInt64, key: Key) {
        guard let waiter = self.entries[key]?.waiters.removeValue(forKey: id) else { return }
        waiter.continuation.resume(throwing: CancellationError())
    }

    private func timeOut(waiter id: UInt64, key: Key, with stale: AccessToken) {
        guard let waiter = self.entries[key]?.waiters.removeValue(forKey: id) else { return }
        waiter.continuation.resume(returning: stale)
    }

    private func fetch(key: Key, provider: any AccessTokenProvider) async {
        let result: Result<AccessToken, any Error>
        do {
            result = .success(try await provider.fetchToken(resource: key.resource))
        } catch {
            result = .failure(error)
        }
        self.complete(key: key, provider: provider, result: result)
    }

    private func complete(key: Key, provider: any AccessTokenProvider, result: Result<AccessToken, any Error>) {
        var entry = self.entries[key] ?? Entry()
        let now = self.clock()
        let waiters = entry.waiters.values
        entry.waiters.removeAll()
        entry.inFlight = false
        switch result {
        case .success(let token):
            self.refreshes += 1
            entry.token = token
            entry.refreshAt = Self.refreshTime(for: token)
            entry.notBefore = .distantPast
            self.entries[key] = entry
            for waiter in waiters { waiter.continuation.resume(returning: token) }
        case .failure(let error):
            self.failures += 1
            let tokenError =
                (error as? TokenError)
                ?? TokenError(identity: key.identity, label: provider.label, reason: "\(error)")
            if let old = entry.token, self.isUsable(old, at: now) {
                entry.notBefore = now.addingTimeInterval(self.retryAfterFailure)
                self.entries[key] = entry
                for waiter in waiters { waiter.continuation.resume(returning: old) }
            } else {
                self.entries[key] = entry
                for waiter in waiters { waiter.continuation.resume(throwing: tokenError) }
            }
        }
    }

    /// Forgets every cached token (e.g. after a configuration reload).
    public func removeAll() {
        for key in self.entries.keys where !(self.entries[key]?.inFlight ?? false) {
            self.entries.removeValue(forKey: key)
        }
    }
}
