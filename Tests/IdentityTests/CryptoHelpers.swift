import Crypto
import Foundation
import GateSupport
import X509
import _CryptoExtras

@testable import Identity

/// Independent checks of a certificate credential, computed here rather than by the code under test.
enum ExpectedThumbprint {
    /// base64url(SHA-1(DER)).
    static func of(pem: String) -> String {
        let der = (try? Certificate(pemEncoded: pem).serializeAsPEM().derBytes) ?? []
        return Base64URL.encode(Array(Insecure.SHA1.hash(data: der)))
    }

    /// True when the JWT's RS256 signature verifies with the certificate's public key.
    static func signatureVerifies(_ jwt: String, certificatePEM: String) throws -> Bool {
        let certificate = try Certificate(pemEncoded: certificatePEM)
        guard let key = _RSA.Signing.PublicKey(certificate.publicKey) else { return false }
        let parts = jwt.split(separator: ".")
        guard parts.count == 3, let signature = Base64URL.decode(parts[2]) else { return false }
        let signingInput = Array("\(parts[0]).\(parts[1])".utf8)
        return key.isValidSignature(
            _RSA.Signing.RSASignature(rawRepresentation: signature),
            for: SHA256.hash(data: signingInput),
            padding: .insecurePKCS1v1_5
        )
    }
}
