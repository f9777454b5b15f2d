import AsyncHTTPClient
import Foundation
import GateSupport
import JWTKit
import NIOCore

/// How client Entra access tokens are checked.
public struct EntraValidationSettings: Sendable, Hashable {
    /// The tenant tokens must come from (`tid`). Also gives the default issuers and JWKS URL.
    public var tenantID: String?
    /// Accepted `iss` values. Empty with a ``tenantID``: the v1 form
    /// `https://sts.windows.net/{tid}/` and the v2 form `https://login.microsoftonline.com/{tid}/v2.0`.
    public var issuers: [String]
    /// Accepted `aud` values (compared case-insensitively, without trailing slashes).
    public var audiences: [String]
    /// JWKS URL. Default with a ``tenantID`` and no ``jwksFile``:
    /// `https://login.microsoftonline.com/{tid}/discovery/v2.0/keys`.
    public var jwksURL: String?
    /// A JWKS document on disk (re-read when an unknown key ID appears).
    public var jwksFile: String?
    /// Allowed clock difference for `exp` and `nbf`, seconds.
    public var clockSkew: TimeInterval
    /// Minimum time between two JWKS fetches triggered by unknown key IDs.
    public var jwksRefetchInterval: TimeInterval
    /// The JWKS is fetched again after this long even without an unknown key ID.
    public var jwksMaxAge: TimeInterval

    public init(
        tenantID: String? = nil,
        issuers: [String] = [],
        audiences: [String] = [],
        jwksURL: String? = nil,
        jwksFile: String? = nil,
        clockSkew: TimeInterval = 300,
        jwksRefetchInterval: TimeInterval = 30,
        jwksMaxAge: TimeInterval = 24 * 3600
    ) {
        self.tenantID = tenantID
        self.issuers = issuers
        self.audiences = audiences
        self.jwksURL = jwksURL
        self.jwksFile = jwksFile
        self.clockSkew = clockSkew
        self.jwksRefetchInterval = jwksRefetchInterval
        self.jwksMaxAge = jwksMaxAge
    }

    /// The issuers actually accepted.
    public var effectiveIssuers: [String] {
        if !self.issuers.isEmpty { return self.issuers }
        guard let tenantID = self.tenantID else { return [] }
        return ["https://sts.windows.net/\(tenantID)/", "https://login.microsoftonline.com/\(tenantID)/v2.0"]
    }

    /// Where keys come from: a file, a URL, or nil when neither is known.
    public var effectiveJWKSSource: String? {
        if let jwksFile = self.jwksFile { return jwksFile }
        if let jwksURL = self.jwksURL { return jwksURL }
        return self.tenantID.map { "https://login.microsoftonline.com/\($0)/discovery/v2.0/keys" }
    }

    /// Problems that make every token fail (for config checking); empty when fine.
    public var problems: [String] {
        var problems: [String] = []
        if self.audiences.isEmpty { problems.append("no audiences are configured") }
        if self.effectiveIssuers.isEmpty { problems.append("no issuers are configured and no tenant_id to derive them from") }
        if self.effectiveJWKSSource == nil { problems.append("no jwks_url, jwks_file or tenant_id to find the signing keys") }
        return problems
    }
}

/// Why a client token was refused. Never contains the token.
public struct EntraValidationError: Error, Sendable, Hashable, CustomStringConvertible {
    public var reason: String

    public init(reason: String) {
        self.reason = reason
    }

    public var description: String { self.reason }
}

/// Validates Entra access tokens presented by clients (FEDAUTH SECURITYTOKEN logins).
///
/// RS256 only (never `none` or HS*); signature against the JWKS (from the URL or file,
/// cached; fetched again when a token names an unknown `kid`, at most once per
/// ``EntraValidationSettings/jwksRefetchInterval``); `iss`, `tid`, `aud`, `exp`/`nbf` with the
/// clock skew.
public actor EntraTokenValidator {
    public let settings: EntraValidationSettings
    private let httpClient: HTTPClient
    private var keys: JWTKeyCollection?
    private var keyIDs: Set<String> = []
    private var lastFetch: Date?
    private var fetchInFlight: Task<Void, any Error>?
    private var fetches = 0
    /// Longest token accepted (LOGIN7 caps the whole message at 128 KiB).
    public static let maxTokenLength = 64 * 1024

    public init(settings: EntraValidationSettings, httpClient: HTTPClient) {
        self.settings = settings
        self.httpClient = httpClient
    }

    /// How many times the JWKS was loaded.
    public var jwksFetchCount: Int { self.fetches }

    /// Validates `token` and returns its principal: `oid`, `tid`, `upn`/`preferred_username`,
    /// `appid`/`azp`, `groups`, `roles`; name = upn ?? preferred_username ?? appid ?? oid.
    public func validate(_ token: String, now: Date = Date()) async throws -> Principal {
        let problems = self.settings.problems
        guard problems.isEmpty else {
            throw EntraValidationError(reason: "token validation is not configured: \(problems.joined(separator: "; "))")
        }
        let token = token.trimmingCharacters(in: .whitespacesAndNewlines)
        guard token.utf8.count <= Self.maxTokenLength else {
            throw EntraValidationError(reason: "the token is longer than \(Self.maxTokenLength) bytes")
        }
        let parts = token.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            if parts.count == 5 { throw EntraValidationError(reason: "the token is encrypted (JWE); only signed JWTs are accepted") }
            throw EntraValidationError(reason: "the token is not a JWT (it has \(parts.count) dot-separated parts, not 3)")
        }
        guard let headerBytes = Base64URL.decode(parts[0]),
            let header = (try? JSONSerialization.jsonObject(with: Data(headerBytes))) as? [String: Any]
        else {
            throw EntraValidationError(reason: "the token header is not base64url-encoded JSON")
        }
        guard let alg = header["alg"] as? String else {
            throw EntraValidationError(reason: "the token header has no 'alg'")
        }
        guard alg == "RS256" else {
            throw EntraValidationError(reason: "alg '\(alg.clipped(20))' is not allowed (only RS256)")
        }
        // Entra always sets `kid` (and `x5t`, the same value); JWTKit picks the key by `kid`.
        guard let kid = header["kid"] as? String, !kid.isEmpty else {
            throw EntraValidationError(reason: "the token header names no signing key ('kid')")
        }
        let keys = try await self.keys(containing: kid, now: now)

        do {
            _ = try await keys.verify(token, as: UncheckedPayload.self)
        } catch let error as JWTError where error.errorType == .signatureVerificationFailed {
            throw EntraValidationError(reason: "token signature does not verify")
        } catch {
            throw EntraValidationError(reason: "token signature does not verify (\(error))".clipped(200))
        }

        guard let payloadBytes = Base64URL.decode(parts[1]),
            let claims = (try? JSONSerialization.jsonObject(with: Data(payloadBytes))) as? [String: Any]
        else {
            throw EntraValidationError(reason: "the token payload is not base64url-encoded JSON")
        }
        return try self.check(claims: claims, now: now)
    }

    private func check(claims: [String: Any], now: Date) throws -> Principal {
        func string(_ name: String) -> String? {
            (claims[name] as? String).flatMap { $0.isEmpty ? nil : $0 }
        }
        func strings(_ name: String) -> [String] {
            if let single = claims[name] as? String { return [single] }
            return (claims[name] as? [Any])?.compactMap { $0 as? String } ?? []
        }
        func date(_ name: String) throws -> Date? {
            guard let value = claims[name] else { return nil }
            guard let seconds = TokenReplyParser.number(value) else {
                throw EntraValidationError(reason: "the '\(name)' claim is not a number")
            }
            return Date(timeIntervalSince1970: seconds)
        }

        guard let issuer = string("iss") else { throw EntraValidationError(reason: "the token has no 'iss' claim") }
        guard self.settings.effectiveIssuers.contains(where: { $0.caseInsensitiveCompare(issuer) == .orderedSame }) else {
            throw EntraValidationError(reason: "issuer '\(issuer.clipped(120))' is not accepted")
        }
        let tenantID = string("tid")
        if let expected = self.settings.tenantID {
            guard let tenantID, tenantID.caseInsensitiveCompare(expected) == .orderedSame else {
                throw EntraValidationError(reason: "tenant '\((tenantID ?? "none").clipped(60))' is not accepted (expected \(expected))")
            }
        }
        let audiences = strings("aud")
        guard !audiences.isEmpty else { throw EntraValidationError(reason: "the token has no 'aud' claim") }
        let accepted = Set(self.settings.audiences.map(Self.normalizedAudience))
        guard audiences.contains(where: { accepted.contains(Self.normalizedAudience($0)) }) else {
            throw EntraValidationError(
                reason: "audience '\(audiences.joined(separator: ", ").clipped(120))' is not accepted"
            )
        }
        guard let expiresOn = try date("exp") else {
            throw EntraValidationError(reason: "the token has no 'exp' claim")
        }
        let skew = self.settings.clockSkew
        guard now.timeIntervalSince(expiresOn) < skew else {
            throw EntraValidationError(reason: "token expired at \(TimeFormat.iso(expiresOn))")
        }
        if let notBefore = try date("nbf"), notBefore.timeIntervalSince(now) > skew {
            throw EntraValidationError(reason: "token is not valid before \(TimeFormat.iso(notBefore))")
        }

        let objectID = string("oid")
        let upn = string("upn") ?? string("preferred_username") ?? string("unique_name")
        let appID = string("appid") ?? string("azp")
        guard let name = upn ?? appID ?? objectID else {
            throw EntraValidationError(reason: "the token names nobody (no upn, preferred_username, appid, azp or oid)")
        }
        return Principal(
            method: .entraToken,
            name: name,
            objectID: objectID,
            tenantID: tenantID,
            appID: appID,
            upn: upn,
            groups: strings("groups"),
            roles: strings("roles")
        )
    }

    static func normalizedAudience(_ audience: String) -> String {
        var value = audience.lowercased()
        while value.hasSuffix("/") { value.removeLast() }
        return value
    }

    // MARK: Keys

    /// The key collection, loaded or reloaded as needed so that it has `kid` if possible.
    private func keys(containing kid: String, now: Date) async throws -> JWTKeyCollection {
        let stale = self.lastFetch.map { now.timeIntervalSince($0) >= self.settings.jwksMaxAge } ?? true
        if self.keys == nil || stale {
            do {
                try await self.load(now: now)
            } catch {
                // A stale key set still serves while the refresh fails.
                if self.keys == nil { throw error }
            }
        }
        if !self.keyIDs.contains(kid) {
            let recent = self.lastFetch.map { now.timeIntervalSince($0) < self.settings.jwksRefetchInterval } ?? false
            if !recent {
                try await self.load(now: now)
            }
        }
        guard self.keyIDs.contains(kid), let keys = self.keys else {
            throw EntraValidationError(reason: "signing key '\(kid.clipped(80))' is not in the JWKS (\(self.settings.effectiveJWKSSource ?? "none"))")
        }
        return keys
    }

    /// Loads the JWKS (one load at a time; concurrent callers share it).
    private func load(now: Date) async throws {
        if let running = self.fetchInFlight {
            try await running.value
            return
        }
        let task = Task { try await self.performLoad(now: now) }
        self.fetchInFlight = task
        defer { self.fetchInFlight = nil }
        try await task.value
    }

    private func performLoad(now: Date) async throws {
        self.lastFetch = now
        self.fetches += 1
        let document = try await self.readJWKS()
        let jwks: JWKS
        do {
            jwks = try JSONDecoder().decode(JWKS.self, from: Data(document))
        } catch {
            throw EntraValidationError(reason: "the JWKS from \(self.settings.effectiveJWKSSource ?? "?") is not a JWKS document")
        }
        let collection = JWTKeyCollection()
        var ids: Set<String> = []
        for jwk in jwks.keys where jwk.keyType == .rsa {
            guard let kid = jwk.keyIdentifier?.string else { continue }
            do {
                try await collection.add(jwk: jwk)
                ids.insert(kid)
            } catch {
                continue
            }
        }
        guard !ids.isEmpty else {
            throw EntraValidationError(reason: "the JWKS from \(self.settings.effectiveJWKSSource ?? "?") has no usable RSA key")
        }
        self.keys = collection
        self.keyIDs = ids
    }

    private func readJWKS() async throws -> [UInt8] {
        if let file = self.settings.jwksFile {
            guard let data = FileManager.default.contents(atPath: file) else {
                throw EntraValidationError(reason: "cannot read the JWKS file '\(file)'")
            }
            return Array(data)
        }
        guard let url = self.settings.effectiveJWKSSource else {
            throw EntraValidationError(reason: "no JWKS source is configured")
        }
        do {
            var request = HTTPClientRequest(url: url)
            request.headers.add(name: "Accept", value: "application/json")
            let response = try await self.httpClient.execute(request, timeout: .seconds(15))
            let body = try await response.body.collect(upTo: 1 << 20)
            guard response.status.code == 200 else {
                throw EntraValidationError(reason: "the JWKS endpoint \(url) answered \(response.status.code)")
            }
            return Array(body.readableBytesView)
        } catch let error as EntraValidationError {
            throw error
        } catch {
            throw EntraValidationError(reason: "cannot fetch the JWKS from \(url): \(error)")
        }
    }
}

/// The payload type JWTKit decodes after checking the signature; the claims are checked by
/// ``EntraTokenValidator`` itself (for its own error messages).
struct UncheckedPayload: JWTPayload {
    init() {}
    init(from decoder: any Decoder) throws {}
    func encode(to encoder: any Encoder) throws {}
    func verify(using algorithm: some JWTAlgorithm) async throws {}
}
