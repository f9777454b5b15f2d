import AsyncHTTPClient
import Crypto
import Foundation
import Identity
import _CryptoExtras

/// Entra access tokens as a client presents them. Odd first byte: the rest is the token
/// text. Even first byte: the rest is the claims JSON of a token signed with the key the
/// validator trusts (the second byte picks the header), so the claim checks are reached.
enum JWTFuzz {
    static let tenant = "7e1f5a3c-0000-4000-8000-00000000f022"
    static let keyID = "fuzz-key"
    static let now = Date(timeIntervalSince1970: 1_750_000_000)

    struct Setup: @unchecked Sendable {
        let key: _RSA.Signing.PrivateKey
        let validator: EntraTokenValidator
    }

    static let setup: Setup = {
        let key = try! _RSA.Signing.PrivateKey(keySize: .bits2048)
        let primitives = try! key.publicKey.getKeyPrimitives()
        let jwk = #"{"keys":[{"kty":"RSA","use":"sig","alg":"RS256","kid":"\#(keyID)","n":"\#(base64url(primitives.modulus))","e":"\#(base64url(primitives.publicExponent))"}]}"#
        let path = NSTemporaryDirectory() + "tdsgate-fuzz-jwks-\(getpid()).json"
        guard FileManager.default.createFile(atPath: path, contents: Data(jwk.utf8)) else { fuzzFail("cannot write \(path)") }
        let settings = EntraValidationSettings(tenantID: tenant, audiences: ["https://database.windows.net/"], jwksFile: path)
        return Setup(key: key, validator: EntraTokenValidator(settings: settings, httpClient: HTTPClient.shared))
    }()

    static let headers = [
        #"{"typ":"JWT","alg":"RS256","kid":"\#(keyID)"}"#,
        #"{"alg":"RS256","kid":"other-key"}"#,
        #"{"alg":"none","kid":"\#(keyID)"}"#,
        #"{"alg":"HS256","kid":"\#(keyID)"}"#,
        #"{"alg":"RS256"}"#,
    ]

    static func base64url<D: DataProtocol>(_ bytes: D) -> String {
        Data(bytes).base64EncodedString().replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }

    static func run(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let token: String
        if first & 1 == 1 {
            token = String(decoding: bytes.dropFirst(), as: UTF8.self)
        } else {
            let header = headers[Int(bytes.dropFirst().first ?? 0) % headers.count]
            let input = base64url(Array(header.utf8)) + "." + base64url(bytes.dropFirst(2))
            guard let signature = try? setup.key.signature(for: SHA256.hash(data: Array(input.utf8)), padding: .insecurePKCS1v1_5) else {
                fuzzFail("cannot sign")
            }
            token = input + "." + base64url(signature.rawRepresentation)
        }
        let outcome = Outcome()
        let done = DispatchSemaphore(value: 0)
        let validator = setup.validator
        Task {
            do {
                let principal = try await validator.validate(token, now: now)
                outcome.set(principal.name.isEmpty ? "empty principal name" : nil)
            } catch is EntraValidationError {
                outcome.set(nil)
            } catch {
                outcome.set("validate threw \(type(of: error)): \(error)")
            }
            done.signal()
        }
        done.wait()
        if let problem = outcome.problem { fuzzFail(problem) }
    }

    final class Outcome: @unchecked Sendable {
        private let lock = NSLock()
        private var value: String?
        func set(_ problem: String?) { lock.withLock { value = problem } }
        var problem: String? { lock.withLock { value } }
    }
}
