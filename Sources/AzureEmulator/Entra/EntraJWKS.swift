import Foundation

/// One key of a JSON Web Key Set in Entra's shape
/// (`{"kty":"RSA","use":"sig","kid":...,"x5t":...,"n":...,"e":...,"x5c":[...],"issuer":...}`).
public struct EntraJWK: Sendable, Hashable, Codable {
    public var kty: String
    public var use: String?
    public var kid: String?
    public var x5t: String?
    /// RSA modulus, base64url.
    public var n: String?
    /// RSA public exponent, base64url.
    public var e: String?
    /// The key's certificate chain, standard base64 DER.
    public var x5c: [String]?
    public var issuer: String?
    public var alg: String?

    public init(
        kty: String = "RSA",
        use: String? = "sig",
        kid: String?,
        x5t: String? = nil,
        n: String?,
        e: String?,
        x5c: [String]? = nil,
        issuer: String? = nil,
        alg: String? = nil
    ) {
        self.kty = kty
        self.use = use
        self.kid = kid
        self.x5t = x5t
        self.n = n
        self.e = e
        self.x5c = x5c
        self.issuer = issuer
        self.alg = alg
    }
}

/// A JSON Web Key Set as served by `/{tenant}/discovery/v2.0/keys`.
public struct EntraJWKS: Sendable, Hashable, Codable {
    public var keys: [EntraJWK]

    public init(keys: [EntraJWK]) {
        self.keys = keys
    }

    /// Parses a JWKS document (unknown members are ignored).
    public init(json: some DataProtocol) throws {
        self = try JSONDecoder().decode(EntraJWKS.self, from: Data(json))
    }

    public init(json: String) throws {
        try self.init(json: Array(json.utf8))
    }

    /// The JWKS as compact JSON.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? #"{"keys":[]}"#
    }

    /// Another key set with the keys of both (for key rollover tests).
    public func merging(_ other: EntraJWKS) -> EntraJWKS {
        EntraJWKS(keys: self.keys + other.keys)
    }
}
