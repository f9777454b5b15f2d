import Crypto
import Foundation
import GateSupport
import X509
import _CryptoExtras
import HTTPServerKit

/// How ``EntraTokenIssuer/issueCustom(claims:header:signing:)`` signs a token.
public enum EntraTokenSigning: Sendable, Hashable {
    /// RS256 with the issuer's key (a good token, as far as the signature goes).
    case issuerKey
    /// RS256 with a fresh RSA key that is in no JWKS, under the issuer's `kid`: a bad signature.
    case foreignKey
    /// `alg: none` with an empty signature.
    case algNone
    /// HS256 with the given secret.
    case hs256(secret: [UInt8])
    /// HS256 keyed with the issuer's public key PEM: the classic RS256→HS256 confusion attack.
    case hs256WithIssuerPublicKey
}

/// Kinds of deliberately bad tokens, for tests of verifiers and of the proxy.
public enum EntraBadTokenKind: String, Sendable, Hashable, CaseIterable {
    case wrongAudience = "wrong_audience"
    case wrongIssuer = "wrong_issuer"
    case wrongTenant = "wrong_tenant"
    case expired
    case notYetValid = "not_yet_valid"
    case foreignKey = "foreign_key"
    case unknownKeyID = "unknown_kid"
    case algNone = "alg_none"
    case hs256
    case hs256WithPublicKey = "hs256_public_key"
    case tamperedPayload = "tampered_payload"
    case malformed
    case missingExpiry = "missing_exp"
}

public enum EntraTokenIssuerError: Error, Sendable, CustomStringConvertible {
    case keyTooSmall(Int)

    public var description: String {
        switch self {
        case .keyTooSmall(let bits): return "the signing key has \(bits) bits; Entra keys have at least 2048"
        }
    }
}

/// Issues Entra-style v1 access tokens (RS256) for the emulated tenant and serves the matching JWKS.
///
/// The key ID follows Entra's convention: `kid` = `x5t` = base64url(SHA-1) of the DER of a
/// self-signed certificate that wraps the signing key (published in `x5c`). The certificate is
/// built deterministically from the key, so the same `signingKeyPEM` always gives the same `kid`.
public final class EntraTokenIssuer: Sendable {
    public let tenantID: String
    /// Lifetime of issued tokens, in seconds.
    public let tokenLifetime: TimeInterval
    /// `kid` (and `x5t`) of the signing key.
    public let keyID: String
    /// The signing key, PKCS#8 PEM (pass it back to `init` to keep the same key across restarts).
    public let signingKeyPEM: String
    /// The self-signed certificate published as `x5c`.
    public let signingCertificatePEM: String
    public let jwks: EntraJWKS
    private let privateKey: _RSA.Signing.PrivateKey

    /// The client ID put in `appid` of user tokens when none is given: the Azure CLI's public client.
    public static let defaultPublicClientID = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"
    /// How far Entra back-dates `iat`/`nbf` of a new token.
    public static let backdating: TimeInterval = 300

    public init(tenantID: String, tokenLifetime: TimeInterval = 3600, signingKeyPEM: String? = nil) throws {
        let key: _RSA.Signing.PrivateKey
        if let signingKeyPEM {
            key = try _RSA.Signing.PrivateKey(pemRepresentation: signingKeyPEM)
        } else {
            key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        }
        guard key.keySizeInBits >= 2048 else { throw EntraTokenIssuerError.keyTooSmall(key.keySizeInBits) }

        let certificateDER = try EntraTokenIssuer.makeSigningCertificate(key: key)
        let thumbprint = Base64URL.encode(Array(Insecure.SHA1.hash(data: certificateDER)))
        let primitives = try key.publicKey.getKeyPrimitives()

        self.tenantID = tenantID
        self.tokenLifetime = tokenLifetime
        self.privateKey = key
        self.keyID = thumbprint
        self.signingKeyPEM = key.pkcs8PEMRepresentation
        self.signingCertificatePEM = try Certificate(derEncoded: certificateDER).serializeAsPEM().pemString
        self.jwks = EntraJWKS(keys: [
            EntraJWK(
                kid: thumbprint,
                x5t: thumbprint,
                n: Base64URL.encode(primitives.modulus),
                e: Base64URL.encode(primitives.publicExponent),
                x5c: [Data(certificateDER).base64EncodedString()],
                issuer: "https://login.microsoftonline.com/\(tenantID)/v2.0"
            )
        ])
    }

    public convenience init(tenant: EmulatedTenant, signingKeyPEM: String? = nil) throws {
        try self.init(tenantID: tenant.tenantID, tokenLifetime: tenant.tokenLifetime, signingKeyPEM: signingKeyPEM)
    }

    /// The v1 issuer, `https://sts.windows.net/{tenant}/`.
    public var issuerURL: String {
        "https://sts.windows.net/\(self.tenantID)/"
    }

    public var jwksJSON: String {
        self.jwks.json
    }

    /// A verifier that trusts this issuer's key.
    public func verifier(
        audience: String = EntraTokenVerifier.azureSQLAudience,
        clockSkew: TimeInterval = 300
    ) -> EntraTokenVerifier {
        EntraTokenVerifier(jwks: self.jwks, tenantID: self.tenantID, audience: audience, clockSkew: clockSkew)
    }

    /// The claims of a v1 access token for `identity`, the way Entra writes them:
    /// `aud`, `iss`, `iat`/`nbf` (back-dated 5 min), `exp`, `aio`, `appid`, `appidacr`, `idp`,
    /// `idtyp`, `oid`, `rh`, `sub`, `tid`, `uti`, `ver`; `xms_mirid` for managed identities;
    /// `upn`, `unique_name`, `name`, `scp`, `amr` for users; `groups`/`roles` when set.
    ///
    /// - Parameters:
    ///   - clientApplicationID: for users, the app that signed them in (default: Azure CLI).
    ///   - appIDACR: how the app authenticated: "0" public client, "1" secret, "2" certificate,
    ///     assertion or managed identity. Default: "0" users, "1" service principals, "2" managed identities.
    public func claims(
        for identity: EmulatedIdentity,
        audience: String,
        now: Date = Date(),
        clientApplicationID: String? = nil,
        appIDACR: String? = nil
    ) -> [String: JSONValue] {
        let issuedAt = EntraIDs.epochSeconds(now) - Int(EntraTokenIssuer.backdating)
        let expiresAt = EntraIDs.epochSeconds(now) + Int(self.tokenLifetime)
        var claims: [String: JSONValue] = [
            "aud": .string(audience),
            "iss": .string(self.issuerURL),
            "iat": .int(issuedAt),
            "nbf": .int(issuedAt),
            "exp": .int(expiresAt),
            "aio": .string(Base64URL.encode(EntraIDs.randomBytes(45))),
            "oid": .string(identity.objectID),
            "rh": .string("0.A" + Base64URL.encode(EntraIDs.randomBytes(42))),
            "tid": .string(self.tenantID),
            "uti": .string(Base64URL.encode(EntraIDs.randomBytes(16))),
            "ver": "1.0",
            "idtyp": .string(identity.identityType),
        ]
        switch identity.kind {
        case .user:
            let appID = clientApplicationID ?? EntraTokenIssuer.defaultPublicClientID
            claims["appid"] = .string(appID)
            claims["appidacr"] = .string(appIDACR ?? "0")
            claims["amr"] = ["pwd"]
            claims["name"] = .string(identity.name)
            claims["scp"] = "user_impersonation"
            claims["ipaddr"] = "127.0.0.1"
            // Entra's `sub` is pairwise: stable per user and app, unlike `oid`.
            let pairwise = SHA256.hash(data: Array("sub|\(identity.objectID)|\(appID)".utf8))
            claims["sub"] = .string(Base64URL.encode(Array(pairwise)))
            if let upn = identity.upn {
                claims["upn"] = .string(upn)
                claims["unique_name"] = .string(upn)
            }
        case .servicePrincipal, .systemAssigned, .userAssigned:
            claims["appid"] = .string(identity.clientID)
            claims["appidacr"] = .string(appIDACR ?? (identity.isManagedIdentity ? "2" : "1"))
            claims["idp"] = .string(self.issuerURL)
            claims["sub"] = .string(identity.objectID)
            if identity.isManagedIdentity {
                let resourceID =
                    identity.resourceID
                    ?? EmulatedIdentity.defaultResourceID(
                        kind: identity.kind,
                        name: identity.name,
                        subscriptionID: EmulatedTenant.defaultSubscriptionID,
                        resourceGroup: "rg"
                    )
                if let resourceID { claims["xms_mirid"] = .string(resourceID) }
            }
        }
        if !identity.groups.isEmpty { claims["groups"] = .strings(identity.groups) }
        if !identity.roles.isEmpty { claims["roles"] = .strings(identity.roles) }
        return claims
    }

    /// Issues an access token for `identity` with audience `audience` (the resource, e.g.
    /// `https://database.windows.net/`).
    public func issueAccessToken(
        for identity: EmulatedIdentity,
        audience: String,
        now: Date = Date(),
        clientApplicationID: String? = nil,
        appIDACR: String? = nil
    ) throws -> (token: String, expiresOn: Date, notBefore: Date) {
        let claims = self.claims(
            for: identity,
            audience: audience,
            now: now,
            clientApplicationID: clientApplicationID,
            appIDACR: appIDACR
        )
        let token = try self.issueCustom(claims: claims)
        return (
            token: token,
            expiresOn: Date(timeIntervalSince1970: TimeInterval(claims["exp"]?.intValue ?? 0)),
            notBefore: Date(timeIntervalSince1970: TimeInterval(claims["nbf"]?.intValue ?? 0))
        )
    }

    /// Signs arbitrary claims. The header starts as `{"typ":"JWT","alg":...,"kid":...,"x5t":...}`
    /// (per `signing`), then `header` entries are applied on top (`.null` removes a field).
    public func issueCustom(
        claims: [String: JSONValue],
        header: [String: JSONValue] = [:],
        signing: EntraTokenSigning = .issuerKey
    ) throws -> String {
        var fields: [String: JSONValue] = ["typ": "JWT"]
        let sign: ([UInt8]) throws -> [UInt8]
        switch signing {
        case .issuerKey:
            fields["alg"] = "RS256"
            fields["kid"] = .string(self.keyID)
            fields["x5t"] = .string(self.keyID)
            let key = self.privateKey
            sign = { input in
                Array(try key.signature(for: SHA256.hash(data: input), padding: .insecurePKCS1v1_5).rawRepresentation)
            }
        case .foreignKey:
            fields["alg"] = "RS256"
            fields["kid"] = .string(self.keyID)
            fields["x5t"] = .string(self.keyID)
            let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
            sign = { input in
                Array(try key.signature(for: SHA256.hash(data: input), padding: .insecurePKCS1v1_5).rawRepresentation)
            }
        case .algNone:
            fields["alg"] = "none"
            sign = { _ in [] }
        case .hs256(let secret):
            fields["alg"] = "HS256"
            fields["kid"] = .string(self.keyID)
            sign = { input in Self.hmacSHA256(input, key: secret) }
        case .hs256WithIssuerPublicKey:
            fields["alg"] = "HS256"
            fields["kid"] = .string(self.keyID)
            let secret = Array(self.privateKey.publicKey.pemRepresentation.utf8)
            sign = { input in Self.hmacSHA256(input, key: secret) }
        }
        for (name, value) in header {
            if value == .null { fields.removeValue(forKey: name) } else { fields[name] = value }
        }
        return try EntraJWT.compose(header: fields, claims: claims, sign: sign)
    }

    /// A deliberately bad token for `identity`; every kind is refused by ``EntraTokenVerifier``
    /// (configured for this issuer and `audience`) with a matching ``EntraTokenError``.
    public func issueBadToken(
        _ kind: EntraBadTokenKind,
        for identity: EmulatedIdentity,
        audience: String = EntraTokenVerifier.azureSQLAudience,
        now: Date = Date()
    ) throws -> String {
        var claims = self.claims(for: identity, audience: audience, now: now)
        let epoch = EntraIDs.epochSeconds(now)
        switch kind {
        case .wrongAudience:
            claims["aud"] = "https://management.azure.com/"
            return try self.issueCustom(claims: claims)
        case .wrongIssuer:
            claims["iss"] = "https://sts.windows.net/00000000-dead-beef-0000-000000000000/"
            return try self.issueCustom(claims: claims)
        case .wrongTenant:
            claims["tid"] = "00000000-dead-beef-0000-000000000000"
            return try self.issueCustom(claims: claims)
        case .expired:
            claims["iat"] = .int(epoch - 7200 - 3600)
            claims["nbf"] = .int(epoch - 7200 - 3600)
            claims["exp"] = .int(epoch - 3600)
            return try self.issueCustom(claims: claims)
        case .notYetValid:
            claims["iat"] = .int(epoch + 3600)
            claims["nbf"] = .int(epoch + 3600)
            claims["exp"] = .int(epoch + 7200)
            return try self.issueCustom(claims: claims)
        case .foreignKey:
            return try self.issueCustom(claims: claims, signing: .foreignKey)
        case .unknownKeyID:
            return try self.issueCustom(claims: claims, header: ["kid": "unknown-key-id", "x5t": "unknown-key-id"])
        case .algNone:
            return try self.issueCustom(claims: claims, signing: .algNone)
        case .hs256:
            return try self.issueCustom(claims: claims, signing: .hs256(secret: Array("not-a-real-secret".utf8)))
        case .hs256WithPublicKey:
            return try self.issueCustom(claims: claims, signing: .hs256WithIssuerPublicKey)
        case .tamperedPayload:
            // Sign the real claims, then swap in a payload that names someone else.
            let token = try self.issueCustom(claims: claims)
            var tampered = claims
            tampered["oid"] = .string(EntraIDs.randomUUID())
            tampered["upn"] = "mallory@contoso.example"
            let parts = token.split(separator: ".")
            let payload = Base64URL.encode(JSONValue.object(tampered).serialized())
            return "\(parts[0]).\(payload).\(parts[2])"
        case .malformed:
            return "not-a-jwt"
        case .missingExpiry:
            claims.removeValue(forKey: "exp")
            return try self.issueCustom(claims: claims)
        }
    }

    /// A federated credential for the token endpoint's `client_assertion`: what an AKS cluster's
    /// OIDC issuer puts in `AZURE_FEDERATED_TOKEN_FILE` (`sub` e.g. `system:serviceaccount:ns:sa`,
    /// `aud` `api://AzureADTokenExchange`), signed with this issuer's key.
    public func issueWorkloadIdentityToken(
        subject: String,
        audience: String = EntraEmulator.workloadIdentityAudience,
        issuer: String? = nil,
        now: Date = Date(),
        lifetime: TimeInterval = 3600
    ) throws -> String {
        let epoch = EntraIDs.epochSeconds(now)
        let claims: [String: JSONValue] = [
            "aud": .strings([audience]),
            "iss": .string(issuer ?? "https://oidc.tdsgate.invalid/\(self.tenantID)/"),
            "sub": .string(subject),
            "iat": .int(epoch),
            "nbf": .int(epoch),
            "exp": .int(epoch + Int(lifetime)),
            "jti": .string(EntraIDs.randomUUID()),
        ]
        return try self.issueCustom(claims: claims)
    }

    /// Verifies only the signature (RS256 with this issuer's key) and decodes the claims.
    func verifiedClaims(of token: String) throws(EntraTokenError) -> [String: JSONValue] {
        let jwt = try EntraJWT.parse(token)
        try self.verifier().verifySignature(jwt)
        return jwt.claims
    }

    static func hmacSHA256(_ input: [UInt8], key: [UInt8]) -> [UInt8] {
        Array(HMAC<SHA256>.authenticationCode(for: input, using: SymmetricKey(data: key)))
    }

    /// A self-signed certificate for the signing key with fixed dates and a serial derived from
    /// the key, so it (and the `kid`) depends on the key only.
    static func makeSigningCertificate(key: _RSA.Signing.PrivateKey) throws -> [UInt8] {
        let certificateKey = Certificate.PrivateKey(key)
        var serial = Array(SHA256.hash(data: key.publicKey.derRepresentation).prefix(16))
        serial[0] &= 0x7F
        if serial[0] == 0 { serial[0] = 0x01 }
        let name = try DistinguishedName {
            CommonName("accounts.accesscontrol.windows.net")
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(bytes: serial),
            publicKey: certificateKey.publicKey,
            notValidBefore: Date(timeIntervalSince1970: 1_704_067_200),  // 2024-01-01
            notValidAfter: Date(timeIntervalSince1970: 2_524_521_600),  // 2049-12-31
            issuer: name,
            subject: name,
            signatureAlgorithm: .sha256WithRSAEncryption,
            extensions: Certificate.Extensions {},
            issuerPrivateKey: certificateKey
        )
        return try certificate.serializeAsPEM().derBytes
    }
}
