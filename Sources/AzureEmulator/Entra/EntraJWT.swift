import Foundation
import GateSupport
import HTTPServerKit

/// A decoded (not yet verified) compact JWS: `base64url(header).base64url(payload).base64url(signature)`.
struct EntraJWT: Sendable {
    var header: [String: JSONValue]
    var claims: [String: JSONValue]
    /// The ASCII bytes `header.payload` that the signature covers.
    var signingInput: [UInt8]
    var signature: [UInt8]

    static func parse(_ token: String) throws(EntraTokenError) -> EntraJWT {
        let trimmed = token.trimmingCharacters(in: .whitespacesAndNewlines)
        let parts = trimmed.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3 else {
            if parts.count == 5 {
                throw .malformed("the token is a JWE (5 parts); Entra access tokens for Azure SQL are signed JWTs")
            }
            throw .malformed("a JWT has 3 dot-separated parts, this token has \(parts.count)")
        }
        guard let headerBytes = Base64URL.decode(parts[0]) else {
            throw .malformed("the header is not base64url")
        }
        guard let payloadBytes = Base64URL.decode(parts[1]) else {
            throw .malformed("the payload is not base64url")
        }
        guard let signature = Base64URL.decode(parts[2]) else {
            throw .malformed("the signature is not base64url")
        }
        guard let header = (try? JSONValue(parsing: headerBytes))?.objectValue else {
            throw .malformed("the header is not a JSON object")
        }
        guard let claims = (try? JSONValue(parsing: payloadBytes))?.objectValue else {
            throw .malformed("the payload is not a JSON object")
        }
        return EntraJWT(
            header: header,
            claims: claims,
            signingInput: Array(parts[0].utf8) + [UInt8(ascii: ".")] + Array(parts[1].utf8),
            signature: signature
        )
    }

    /// Serialises header and claims and appends `sign(signingInput)` (empty for `alg: none`).
    static func compose(
        header: [String: JSONValue],
        claims: [String: JSONValue],
        sign: ([UInt8]) throws -> [UInt8]
    ) rethrows -> String {
        let encodedHeader = Base64URL.encode(JSONValue.object(header).serialized())
        let encodedPayload = Base64URL.encode(JSONValue.object(claims).serialized())
        let signingInput = "\(encodedHeader).\(encodedPayload)"
        let signature = try sign(Array(signingInput.utf8))
        return "\(signingInput).\(Base64URL.encode(signature))"
    }
}
