import Crypto
import Foundation
import GateSupport
import _CryptoExtras
import HTTPServerKit

/// Why an access token was refused. Each case has a human ``message``.
public enum EntraTokenError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Not a compact JWS, bad base64url, bad JSON, or a required claim missing or of the wrong type.
    case malformed(String)
    /// `alg` other than RS256 (including `none` and HS256).
    case unsupportedAlgorithm(String)
    /// No key in the JWKS has the token's `kid` (or `x5t`).
    case unknownKeyID(String)
    /// The RS256 signature does not verify with the key named by `kid`.
    case badSignature
    /// `iss` is not this tenant's v1 or v2 issuer.
    case wrongIssuer(String)
    /// `tid` names another tenant.
    case wrongTenant(String)
    /// `aud` is not the expected resource.
    case wrongAudience(String)
    /// `exp` (plus the allowed clock skew) is in the past.
    case expired(Date)
    /// `nbf` (minus the allowed clock skew) is in the future.
    case notYetValid(Date)

    public var message: String {
        switch self {
        case .malformed(let detail):
            return "The access token is malformed: \(detail)."
        case .unsupportedAlgorithm(let alg):
            return "The access token is signed with algorithm '\(alg)'; only RS256 is accepted."
        case .unknownKeyID(let kid):
            return "The access token's signing key '\(kid)' is not in the tenant's key set (JWKS)."
        case .badSignature:
            return "The access token's signature is invalid."
        case .wrongIssuer(let issuer):
            return "The access token was issued by '\(issuer)', which is not this tenant's issuer."
        case .wrongTenant(let tenant):
            return "The access token belongs to tenant '\(tenant)', not this server's tenant."
        case .wrongAudience(let audience):
            return "The access token's audience '\(audience)' is not this resource."
        case .expired(let date):
            return "The access token expired at \(TimeFormat.iso(date))."
        case .notYetValid(let date):
            return "The access token is not valid before \(TimeFormat.iso(date))."
        }
    }

    public var description: String { self.message }
}

/// A token that passed ``EntraTokenVerifier/verify(_:now:)``.
public struct VerifiedToken: Sendable, Hashable {
    public var header: [String: JSONValue]
    public var claims: [String: JSONValue]
    public var issuer: String
    /// The `aud` value that matched.
    public var audience: String
    public var oid: String?
    public var tid: String
    /// `appid` (v1) or `azp` (v2).
    public var appid: String?
    public var upn: String?
    public var name: String?
    /// `idtyp`: "app" or "user" when present.
    public var identityType: String?
    public var groups: [String]
    public var roles: [String]
    public var expiresOn: Date
    public var notBefore: Date?
    public var issuedAt: Date?

    /// True for app-only tokens (managed identities, service principals).
    public var isApplication: Bool {
        if let identityType { return identityType == "app" }
        return self.upn == nil && self.claims["scp"] == nil && self.claims["unique_name"] == nil
            && self.claims["preferred_username"] == nil
    }

    /// What Azure SQL's `SUSER_SNAME()` would show for this token.
    public var sqlPrincipalName: String {
        EntraTokenVerifier.sqlPrincipalName(claims: self.claims, tenantID: self.tid)
    }
}

/// Verifies Entra access tokens the way an Azure SQL node does at login (FEDAUTH token):
/// RS256 signature against the tenant's JWKS, issuer, tenant, audience, `exp`/`nbf`.
///
/// - Issuers accepted: `https://sts.windows.net/{tenant}/` (v1 tokens, what Azure SQL gets) and
///   `https://login.microsoftonline.com/{tenant}/v2.0` (v2 tokens).
/// - Audience: compared without a trailing slash, so `https://database.windows.net/` and
///   `https://database.windows.net` are the same resource, as Azure SQL treats them.
///   `aud` may be a string or an array (any element may match).
/// - Clock skew: 300 s by default, the default `ClockSkew` of Microsoft.IdentityModel's
///   `TokenValidationParameters` that Microsoft services validate Entra tokens with.
///   Entra itself back-dates `nbf` by 5 minutes, so a fresh token is never "not yet valid".
public struct EntraTokenVerifier: Sendable {
    public let tenantID: String
    public let audience: String
    public let clockSkew: TimeInterval
    private let keys: [String: _RSA.Signing.PublicKey]

    public static let azureSQLAudience = "https://database.windows.net/"

    public init(
        jwks: EntraJWKS,
        tenantID: String,
        audience: String = EntraTokenVerifier.azureSQLAudience,
        clockSkew: TimeInterval = 300
    ) {
        self.tenantID = tenantID
        self.audience = audience
        self.clockSkew = clockSkew
        var keys: [String: _RSA.Signing.PublicKey] = [:]
        for jwk in jwks.keys where jwk.kty == "RSA" && (jwk.use == nil || jwk.use == "sig") {
            guard let n = jwk.n.flatMap({ Base64URL.decode($0) }),
                let e = jwk.e.flatMap({ Base64URL.decode($0) }),
                let key = try? _RSA.Signing.PublicKey(n: n, e: e)
            else { continue }
            if let kid = jwk.kid { keys[kid] = key }
            if let x5t = jwk.x5t, keys[x5t] == nil { keys[x5t] = key }
        }
        self.keys = keys
    }

    /// Parses the JWKS JSON document first.
    public init(
        jwksJSON: String,
        tenantID: String,
        audience: String = EntraTokenVerifier.azureSQLAudience,
        clockSkew: TimeInterval = 300
    ) throws {
        self.init(jwks: try EntraJWKS(json: jwksJSON), tenantID: tenantID, audience: audience, clockSkew: clockSkew)
    }

    /// Key IDs this verifier knows.
    public var keyIDs: [String] {
        self.keys.keys.sorted()
    }

    public func verify(_ token: String, now: Date = Date()) throws(EntraTokenError) -> VerifiedToken {
        let jwt = try EntraJWT.parse(token)
        try self.verifySignature(jwt)
        let claims = jwt.claims

        guard let issuer = claims["iss"]?.stringValue else { throw .malformed("the 'iss' claim is missing") }
        let acceptedIssuers = [
            "https://sts.windows.net/\(self.tenantID)/",
            "https://login.microsoftonline.com/\(self.tenantID)/v2.0",
        ]
        guard acceptedIssuers.contains(where: { $0.caseInsensitiveCompare(issuer) == .orderedSame }) else {
            throw .wrongIssuer(issuer)
        }
        let tid = claims["tid"]?.stringValue ?? self.tenantID
        guard tid.caseInsensitiveCompare(self.tenantID) == .orderedSame else { throw .wrongTenant(tid) }

        guard let audiences = claims["aud"]?.stringArrayValue, !audiences.isEmpty else {
            throw .malformed("the 'aud' claim is missing")
        }
        let expected = EntraTokenVerifier.normalizedAudience(self.audience)
        guard let audience = audiences.first(where: { EntraTokenVerifier.normalizedAudience($0) == expected }) else {
            throw .wrongAudience(audiences.joined(separator: ", "))
        }

        let expiresOn = try Self.date(claims, "exp", required: true)!
        let notBefore = try Self.date(claims, "nbf", required: false)
        let issuedAt = try Self.date(claims, "iat", required: false)
        if now.timeIntervalSince(expiresOn) >= self.clockSkew {
            throw .expired(expiresOn)
        }
        if let notBefore, notBefore.timeIntervalSince(now) > self.clockSkew {
            throw .notYetValid(notBefore)
        }

        return VerifiedToken(
            header: jwt.header,
            claims: claims,
            issuer: issuer,
            audience: audience,
            oid: claims["oid"]?.stringValue,
            tid: tid,
            appid: claims["appid"]?.stringValue ?? claims["azp"]?.stringValue,
            upn: claims["upn"]?.stringValue,
            name: claims["name"]?.stringValue,
            identityType: claims["idtyp"]?.stringValue,
            groups: claims["groups"]?.stringArrayValue ?? [],
            roles: claims["roles"]?.stringArrayValue ?? [],
            expiresOn: expiresOn,
            notBefore: notBefore,
            issuedAt: issuedAt
        )
    }

    /// Checks only `alg`, `kid` and the signature.
    func verifySignature(_ jwt: EntraJWT) throws(EntraTokenError) {
        guard let alg = jwt.header["alg"]?.stringValue else { throw .malformed("the header has no 'alg'") }
        guard alg == "RS256" else { throw .unsupportedAlgorithm(alg) }
        guard let kid = jwt.header["kid"]?.stringValue ?? jwt.header["x5t"]?.stringValue else {
            throw .malformed("the header names no key ('kid' or 'x5t')")
        }
        guard let key = self.keys[kid] else { throw .unknownKeyID(kid) }
        let signature = _RSA.Signing.RSASignature(rawRepresentation: jwt.signature)
        let digest = SHA256.hash(data: jwt.signingInput)
        guard key.isValidSignature(signature, for: digest, padding: .insecurePKCS1v1_5) else {
            throw .badSignature
        }
    }

    static func date(_ claims: [String: JSONValue], _ name: String, required: Bool) throws(EntraTokenError) -> Date? {
        guard let value = claims[name] else {
            if required { throw .malformed("the '\(name)' claim is missing") }
            return nil
        }
        guard let seconds = value.doubleValue else {
            throw .malformed("the '\(name)' claim is not a number")
        }
        return Date(timeIntervalSince1970: seconds)
    }

    /// The audience compared case-insensitively and without trailing slashes.
    public static func normalizedAudience(_ audience: String) -> String {
        var value = audience.lowercased()
        while value.hasSuffix("/") { value.removeLast() }
        return value
    }

    /// What Azure SQL's `SUSER_SNAME()` / `SYSTEM_USER` shows for a token's principal.
    ///
    /// - Users: the UPN (`upn`; guests and v2 tokens fall back to `unique_name`, then
    ///   `preferred_username`).
    /// - Applications (managed identities, service principals; `idtyp` "app" or no user
    ///   claims): `<appid>@<tid>`. This is what Azure SQL really shows for them (two GUIDs
    ///   joined by `@`, as reported in sp_whoisactive issue #55 and MicrosoftDocs/sql-docs
    ///   issue #9584); the `appid` alone is what the database stores as the user's SID.
    ///   A token without `tid` uses `tenantID` if given, else the bare `appid`.
    /// - Otherwise (a user token without any name claim): the `oid`.
    public static func sqlPrincipalName(claims: [String: JSONValue], tenantID: String? = nil) -> String {
        let identityType = claims["idtyp"]?.stringValue
        if identityType != "app" {
            for key in ["upn", "unique_name", "preferred_username"] {
                if let value = claims[key]?.stringValue, !value.isEmpty { return value }
            }
        }
        if identityType != "user", let appid = claims["appid"]?.stringValue ?? claims["azp"]?.stringValue,
            !appid.isEmpty
        {
            if let tid = claims["tid"]?.stringValue ?? tenantID { return "\(appid)@\(tid)" }
            return appid
        }
        return claims["oid"]?.stringValue ?? claims["sub"]?.stringValue ?? ""
    }
}
