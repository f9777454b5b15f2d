import Foundation
import Testing

@testable import Identity

@Suite struct PasswordHashTests {
    let iterations = PasswordHash.minimumIterations

    @Test func makeAndVerify() throws {
        let encoded = PasswordHash.make(password: "s3cret-Pässword", iterations: iterations)
        let fields = encoded.split(separator: "$", omittingEmptySubsequences: false)
        #expect(fields.count == 4)
        #expect(fields[0] == "pbkdf2-sha256")
        #expect(fields[1] == "\(iterations)")
        #expect(Data(base64Encoded: String(fields[2]))?.count == 16)
        #expect(Data(base64Encoded: String(fields[3]))?.count == 32)
        #expect(!encoded.contains("s3cret"))
        #expect(PasswordHash.verify(password: "s3cret-Pässword", encoded: encoded))
        #expect(!PasswordHash.verify(password: "s3cret-Password", encoded: encoded))
        #expect(!PasswordHash.verify(password: "", encoded: encoded))
        try PasswordHash.validate(encoded: encoded)
    }

    @Test func saltsDiffer() {
        let a = PasswordHash.make(password: "same", iterations: iterations)
        let b = PasswordHash.make(password: "same", iterations: iterations)
        #expect(a != b)
        #expect(PasswordHash.verify(password: "same", encoded: a))
        #expect(PasswordHash.verify(password: "same", encoded: b))
    }

    @Test func knownVector() {
        // RFC 7914 §11 PBKDF2-HMAC-SHA256 test vector (P="passwd", S="salt", c=1, dkLen=64),
        // checked through the internal derivation (the public API refuses so few iterations).
        let derived = PasswordHash.derive(password: "passwd", salt: Array("salt".utf8), iterations: 1, length: 64)
        let hex = derived.map { String(format: "%02x", $0) }.joined()
        #expect(hex.hasPrefix("55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc"))
    }

    @Test func defaultsToStrongIterationsAndClampsWeakOnes() {
        #expect(PasswordHash.defaultIterations == 600_000)
        let clamped = PasswordHash.make(password: "x", iterations: 5)
        #expect(clamped.split(separator: "$")[1] == "\(PasswordHash.minimumIterations)")
    }

    @Test(arguments: [
        ("hunter2", "not a password hash"),
        ("bcrypt$10$abc$def", "unknown hash scheme 'bcrypt'"),
        ("pbkdf2-sha256$600000$c2FsdHNhbHRzYWx0", "4 '$'-separated fields"),
        ("pbkdf2-sha256$lots$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "is not a number"),
        ("pbkdf2-sha256$1000$c2FsdHNhbHRzYWx0$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "too few"),
        ("pbkdf2-sha256$600000$%%%$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "salt is not valid base64"),
        ("pbkdf2-sha256$600000$c2FsdA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", "salt has 4 bytes"),
        ("pbkdf2-sha256$600000$c2FsdHNhbHRzYWx0$AAAA", "hash has 3 bytes"),
    ])
    func malformed(encoded: String, expected: String) {
        #expect(!PasswordHash.verify(password: "hunter2", encoded: encoded))
        do {
            try PasswordHash.validate(encoded: encoded)
            Issue.record("\(encoded) was accepted")
        } catch let error as PasswordHashError {
            #expect(error.reason.contains(expected), "\(error.reason)")
            #expect(!error.reason.contains("hunter2"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }
}

@Suite struct SQLLoginStoreTests {
    static let iterations = PasswordHash.minimumIterations

    static func store() throws -> SQLLoginStore {
        try SQLLoginStore(hashes: [
            "app": PasswordHash.make(password: "app-password", iterations: iterations),
            "Reporting": PasswordHash.make(password: "report-password", iterations: iterations),
        ])
    }

    @Test func authenticates() throws {
        let store = try Self.store()
        #expect(store.users == ["Reporting", "app"])
        let principal = try #require(store.authenticate(user: "app", password: "app-password"))
        #expect(principal.method == .sqlLogin)
        #expect(principal.name == "app")
        // Login names are case-insensitive, passwords are not.
        #expect(store.authenticate(user: "REPORTING", password: "report-password")?.name == "Reporting")
        #expect(store.authenticate(user: "reporting", password: "REPORT-PASSWORD") == nil)
        #expect(store.authenticate(user: "app", password: "wrong") == nil)
    }

    @Test func unknownUserStillRunsPBKDF2() throws {
        let store = try Self.store()
        #expect(store.decoyIterations == Self.iterations)
        let before = store.derivationCount
        #expect(store.authenticate(user: "nobody", password: "app-password") == nil)
        #expect(store.derivationCount == before + 1)
        #expect(store.authenticate(user: "app", password: "wrong") == nil)
        #expect(store.derivationCount == before + 2)
    }

    /// A verified password is remembered: the user's next logins with it skip PBKDF2; a wrong
    /// password or an unknown user still pays it, and nothing is remembered for them.
    @Test func verifiedCacheSkipsPBKDF2OnlyForTheRightPassword() throws {
        let store = try SQLLoginStore(hashes: ["app": PasswordHash.make(password: "app-password", iterations: Self.iterations)],
                                      verifiedCacheSeconds: 60)
        #expect(store.authenticate(user: "app", password: "app-password")?.name == "app")
        let afterFirst = store.derivationCount
        #expect(store.authenticate(user: "APP", password: "app-password")?.name == "app")
        #expect(store.derivationCount == afterFirst, "a remembered password needs no derivation")
        #expect(store.authenticate(user: "app", password: "app-passwordX") == nil)
        #expect(store.authenticate(user: "app", password: "") == nil)
        #expect(store.authenticate(user: "nobody", password: "app-password") == nil)
        #expect(store.derivationCount == afterFirst + 3)

        let uncached = try SQLLoginStore(hashes: ["app": PasswordHash.make(password: "app-password", iterations: Self.iterations)])
        _ = uncached.authenticate(user: "app", password: "app-password")
        _ = uncached.authenticate(user: "app", password: "app-password")
        #expect(uncached.derivationCount == 2)
    }

    @Test func verifiedCacheEntriesExpireAndStayBounded() {
        let cache = VerifiedLoginCache(ttl: 10, maxEntries: 3)
        let t0 = Date(timeIntervalSince1970: 1_000)
        cache.remember(user: "a", password: "pw", now: t0)
        #expect(cache.contains(user: "a", password: "pw", now: t0.addingTimeInterval(9)))
        #expect(!cache.contains(user: "a", password: "pw", now: t0.addingTimeInterval(11)))
        #expect(!cache.contains(user: "a", password: "pW", now: t0))
        #expect(!cache.contains(user: "b", password: "pw", now: t0))
        for user in ["b", "c", "d", "e"] { cache.remember(user: user, password: "pw", now: t0) }
        let live = ["a", "b", "c", "d", "e"].filter { cache.contains(user: $0, password: "pw", now: t0) }
        #expect(live.count == 3 && live.contains("e"))
    }

    @Test func decoyUsesTheCommonIterationCount() throws {
        let store = try SQLLoginStore(hashes: [
            "a": PasswordHash.make(password: "a", iterations: 20_000),
            "b": PasswordHash.make(password: "b", iterations: 20_000),
            "c": PasswordHash.make(password: "c", iterations: 10_000),
        ])
        #expect(store.decoyIterations == 20_000)
        #expect(try SQLLoginStore(hashes: [:]).decoyIterations == PasswordHash.defaultIterations)
    }

    @Test func refusesBadConfiguration() {
        #expect(throws: PasswordHashError.self) { try SQLLoginStore(hashes: ["app": "plain-password"]) }
        do {
            _ = try SQLLoginStore(hashes: ["app": "plain-password"])
        } catch let error as PasswordHashError {
            #expect(error.reason.hasPrefix("SQL login 'app':"))
            #expect(!error.reason.contains("plain-password"))
        } catch {
            Issue.record("unexpected \(error)")
        }
        let hash = PasswordHash.make(password: "x", iterations: Self.iterations)
        #expect(throws: PasswordHashError.self) { try SQLLoginStore(hashes: ["App": hash, "app": hash]) }
        #expect(throws: PasswordHashError.self) { try SQLLoginStore(hashes: [" ": hash]) }
    }
}
