import Crypto
import Foundation
import GateSupport
import Synchronization
import _CryptoExtras

/// Why an encoded password hash is unusable (for config checking). Never holds a password.
public struct PasswordHashError: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String

    public init(reason: String) {
        self.reason = reason
    }

    public var description: String { self.reason }
}

/// Salted, slow password hashes for the SQL logins the proxy holds:
/// `pbkdf2-sha256$<iterations>$<salt base64>$<hash base64>` (standard base64 with padding,
/// 16-byte salt, 32-byte PBKDF2-HMAC-SHA256 output).
public enum PasswordHash {
    public static let scheme = "pbkdf2-sha256"
    public static let defaultIterations = 600_000
    /// Fewer iterations than this are refused (OWASP asks for 600,000 with SHA-256; tests use fewer).
    public static let minimumIterations = 10_000
    /// More than this would make one login take minutes: surely a typo.
    public static let maximumIterations = 50_000_000
    static let saltLength = 16
    static let hashLength = 32

    /// Hashes `password` with a fresh random salt. `iterations` is clamped to the allowed range.
    public static func make(password: String, iterations: Int = PasswordHash.defaultIterations) -> String {
        let rounds = min(max(iterations, minimumIterations), maximumIterations)
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<saltLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let hash = derive(password: password, salt: salt, iterations: rounds, length: hashLength)
        return "\(scheme)$\(rounds)$\(Data(salt).base64EncodedString())$\(Data(hash).base64EncodedString())"
    }

    /// True when `password` matches `encoded`. The comparison is constant-time; a malformed
    /// `encoded` never matches.
    public static func verify(password: String, encoded: String) -> Bool {
        guard let parsed = try? Parsed(encoded) else { return false }
        return parsed.matches(password)
    }

    /// Throws a ``PasswordHashError`` saying what is wrong with `encoded`, for config checking.
    public static func validate(encoded: String) throws {
        _ = try Parsed(encoded)
    }

    static func derive(password: String, salt: [UInt8], iterations: Int, length: Int) -> [UInt8] {
        do {
            let key = try KDF.Insecure.PBKDF2.deriveKey(
                from: Array(password.utf8),
                salt: salt,
                using: .sha256,
                outputByteCount: length,
                unsafeUncheckedRounds: iterations
            )
            return key.withUnsafeBytes { Array($0) }
        } catch {
            // BoringSSL's PBKDF2 fails only on allocation failure; never match then.
            return []
        }
    }

    /// A decoded hash.
    struct Parsed: Sendable, Hashable {
        var iterations: Int
        var salt: [UInt8]
        var hash: [UInt8]

        init(iterations: Int, salt: [UInt8], hash: [UInt8]) {
            self.iterations = iterations
            self.salt = salt
            self.hash = hash
        }

        init(_ encoded: String) throws(PasswordHashError) {
            let text = encoded.trimmingCharacters(in: .whitespacesAndNewlines)
            let fields = text.split(separator: "$", omittingEmptySubsequences: false)
            guard fields.count > 1 else {
                throw PasswordHashError(
                    reason: "this is not a password hash (a plain password?); store only hashes made with `tdsgate hash-password`"
                )
            }
            guard fields[0] == PasswordHash.scheme else {
                throw PasswordHashError(
                    reason: "unknown hash scheme '\(String(fields[0]).clipped(40))'; expected '\(PasswordHash.scheme)$<iterations>$<salt>$<hash>' from `tdsgate hash-password`"
                )
            }
            guard fields.count == 4 else {
                throw PasswordHashError(
                    reason: "a \(PasswordHash.scheme) hash has 4 '$'-separated fields (scheme, iterations, salt, hash), this one has \(fields.count)"
                )
            }
            guard let iterations = Int(fields[1]) else {
                throw PasswordHashError(reason: "the iteration count '\(String(fields[1]).clipped(40))' is not a number")
            }
            guard iterations >= PasswordHash.minimumIterations else {
                throw PasswordHashError(
                    reason: "\(iterations) iterations is too few (at least \(PasswordHash.minimumIterations), recommended \(PasswordHash.defaultIterations))"
                )
            }
            guard iterations <= PasswordHash.maximumIterations else {
                throw PasswordHashError(reason: "\(iterations) iterations is more than the maximum \(PasswordHash.maximumIterations)")
            }
            guard let salt = Data(base64Encoded: String(fields[2])) else {
                throw PasswordHashError(reason: "the salt is not valid base64")
            }
            guard salt.count >= 8 else {
                throw PasswordHashError(reason: "the salt has \(salt.count) bytes; at least 8 are needed (16 recommended)")
            }
            guard let hash = Data(base64Encoded: String(fields[3])) else {
                throw PasswordHashError(reason: "the hash is not valid base64")
            }
            guard (16...64).contains(hash.count) else {
                throw PasswordHashError(reason: "the hash has \(hash.count) bytes; expected 32 (16 to 64 accepted)")
            }
            self.iterations = iterations
            self.salt = Array(salt)
            self.hash = Array(hash)
        }

        func matches(_ password: String) -> Bool {
            let derived = PasswordHash.derive(
                password: password,
                salt: self.salt,
                iterations: self.iterations,
                length: self.hash.count
            )
            return ConstantTime.equals(derived, self.hash)
        }
    }
}

/// The SQL logins the proxy holds itself, by user name (case-insensitive, as SQL Server
/// compares login names), each with a ``PasswordHash``.
public struct SQLLoginStore: Sendable {
    private struct Entry: Sendable {
        var name: String
        var hash: PasswordHash.Parsed
    }

    private let entries: [String: Entry]
    /// Checked for unknown users, so they cost the same PBKDF2 time as known ones.
    private let decoy: PasswordHash.Parsed
    private let derivations = DerivationCounter()
    private let verified: VerifiedLoginCache?

    /// - Parameters:
    ///   - hashes: user name → encoded hash. Throws a ``PasswordHashError`` naming the user
    ///     whose hash is unusable, or two names that differ only in case.
    ///   - verifiedCacheSeconds: how long a verified password is remembered (as a keyed hash
    ///     in memory, see `VerifiedLoginCache`) so that the user's next logins skip PBKDF2;
    ///     0 verifies every login.
    public init(hashes: [String: String], verifiedCacheSeconds: Int = 0) throws {
        self.verified = verifiedCacheSeconds > 0 ? VerifiedLoginCache(ttl: TimeInterval(verifiedCacheSeconds)) : nil
        var entries: [String: Entry] = [:]
        for (user, encoded) in hashes.sorted(by: { $0.key < $1.key }) {
            let trimmed = user.trimmingCharacters(in: .whitespaces)
            guard !trimmed.isEmpty else {
                throw PasswordHashError(reason: "a SQL login has an empty user name")
            }
            let parsed: PasswordHash.Parsed
            do {
                parsed = try PasswordHash.Parsed(encoded)
            } catch {
                throw PasswordHashError(reason: "SQL login '\(trimmed)': \(error.reason)")
            }
            let key = trimmed.lowercased()
            if let existing = entries[key] {
                throw PasswordHashError(
                    reason: "SQL logins '\(existing.name)' and '\(trimmed)' differ only in case; login names are case-insensitive"
                )
            }
            entries[key] = Entry(name: trimmed, hash: parsed)
        }
        self.entries = entries
        // The decoy uses the most common iteration count (the largest on a tie).
        var counts: [Int: Int] = [:]
        for entry in entries.values { counts[entry.hash.iterations, default: 0] += 1 }
        let iterations =
            counts.max(by: { $0.value == $1.value ? $0.key < $1.key : $0.value < $1.value })?.key
            ?? PasswordHash.defaultIterations
        var generator = SystemRandomNumberGenerator()
        let salt = (0..<PasswordHash.saltLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let hash = (0..<PasswordHash.hashLength).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        self.decoy = PasswordHash.Parsed(iterations: iterations, salt: salt, hash: hash)
    }

    /// The configured user names.
    public var users: [String] {
        self.entries.values.map(\.name).sorted()
    }

    /// How many PBKDF2 derivations ``authenticate(user:password:)`` has run (one per call,
    /// unknown users included, except logins the verified cache answered). For metrics and
    /// tests.
    public var derivationCount: Int {
        self.derivations.value
    }

    /// The iteration count spent on unknown users.
    public var decoyIterations: Int {
        self.decoy.iterations
    }

    /// Checks user+password; for an unknown user still spends the same PBKDF2 time (no user
    /// enumeration by timing). Returns the principal (name as configured) or nil.
    public func authenticate(user: String, password: String) -> Principal? {
        let key = user.trimmingCharacters(in: .whitespaces).lowercased()
        if let entry = self.entries[key], let verified, verified.contains(user: key, password: password) {
            return Principal(method: .sqlLogin, name: entry.name)
        }
        self.derivations.increment()
        guard let entry = self.entries[key] else {
            _ = self.decoy.matches(password)
            return nil
        }
        guard entry.hash.matches(password) else { return nil }
        verified?.remember(user: key, password: password)
        return Principal(method: .sqlLogin, name: entry.name)
    }
}

/// Shared by the copies of one ``SQLLoginStore`` (a value type), so every copy counts into
/// the same total.
private final class DerivationCounter: Sendable {
    private let count = Atomic<Int>(0)

    var value: Int { count.load(ordering: .relaxed) }

    func increment() { count.wrappingAdd(1, ordering: .relaxed) }
}
