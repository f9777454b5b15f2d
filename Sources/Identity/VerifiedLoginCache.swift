import Crypto
import Foundation
import GateSupport
import Synchronization

/// Remembers, for a short time, that a user's password was verified, so a client that opens
/// connection after connection (no pool, or a pool that churns) pays the deliberately slow
/// PBKDF2 once per `ttl` instead of once per login.
///
/// What is kept is an HMAC-SHA256 of the password under a key that exists only in this
/// process's memory, never the password or anything that can be checked offline. Only a
/// correct password can hit; a wrong one, or an unknown user, always costs the full PBKDF2,
/// so the cache tells a guesser nothing and leaves throttling as it was.
final class VerifiedLoginCache: Sendable {
    private struct Entry {
        var tag: [UInt8]
        var expires: Date
    }

    let ttl: TimeInterval
    let maxEntries: Int
    private let key = SymmetricKey(size: .bits256)
    private let entries = Mutex([String: Entry]())

    init(ttl: TimeInterval, maxEntries: Int = 10_000) {
        self.ttl = ttl
        self.maxEntries = maxEntries
    }

    /// Whether `password` was verified for `user` (the store's key) within `ttl`.
    func contains(user: String, password: String, now: Date = Date()) -> Bool {
        guard let entry = entries.withLock({ $0[user] }), entry.expires > now else { return false }
        return ConstantTime.equals(tag(password), entry.tag)
    }

    func remember(user: String, password: String, now: Date = Date()) {
        let entry = Entry(tag: tag(password), expires: now.addingTimeInterval(ttl))
        entries.withLock { entries in
            if entries.count >= maxEntries, entries[user] == nil {
                entries = entries.filter { $0.value.expires > now }
                // Still full of live entries: forget one rather than grow without bound.
                if entries.count >= maxEntries, let any = entries.keys.first { entries[any] = nil }
            }
            entries[user] = entry
        }
    }

    private func tag(_ password: String) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: Array(password.utf8), using: key))
    }
}
