import AsyncHTTPClient
import Crypto
import Foundation
import GateSupport
import JWTKit
import X509
import _CryptoExtras

/// The Entra token endpoint (`POST {authority}/{tenant}/oauth2/v2.0/token`, client credentials).
struct EntraTokenEndpoint: Sendable {
    static let defaultAuthority = "https://login.microsoftonline.com"
    static let assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

    var url: String

    init(spec: BackendIdentitySpec, authority: String?, tenantID: String) {
        if let endpoint = spec.endpoint, !endpoint.isEmpty {
            self.url = endpoint
        } else {
            var base = authority ?? Self.defaultAuthority
            if !base.contains("://") { base = "https://" + base }
            while base.hasSuffix("/") { base.removeLast() }
            self.url = "\(base)/\(tenantID)/oauth2/v2.0/token"
        }
    }

    /// `https://database.windows.net/` → `https://database.windows.net/.default`.
    static func scope(for resource: String) -> String {
        if resource.hasSuffix("/.default") { return resource }
        return resource.hasSuffix("/") ? resource + ".default" : resource + "/.default"
    }

    static func isRetryable(_ status: Int) -> Bool {
        status == 408 || status == 429 || (500...599).contains(status)
    }

    /// Posts a client-credentials request (the form built anew for each attempt) and reads the token.
    func requestToken(context: ProviderContext, form: @escaping () throws -> [(String, String)]) async throws -> AccessToken {
        let url = self.url
        let reply = try await context.sendWithRetries(retryable: Self.isRetryable) {
            TokenRequest(url: url, method: .post, form: try form())
        }
        guard reply.isSuccess else { throw context.failure(reply) }
        return try TokenReplyParser.accessToken(from: reply, context: context)
    }
}

/// Reads small secret files (federated tokens, client secrets).
enum SecretFile {
    static let maxSize = 64 * 1024

    static func read(_ path: String, what: String, identity: String, label: String) throws -> String {
        let url = URL(fileURLWithPath: path)
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            throw TokenError(identity: identity, label: label, reason: "cannot read the \(what) '\(path)': \(error.localizedDescription)")
        }
        guard data.count <= maxSize else {
            throw TokenError(identity: identity, label: label, reason: "the \(what) '\(path)' is larger than \(maxSize) bytes")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !text.isEmpty else {
            throw TokenError(identity: identity, label: label, reason: "the \(what) '\(path)' is empty")
        }
        return text
    }
}

/// AKS workload identity: the federated token in `AZURE_FEDERATED_TOKEN_FILE` (re-read for every
/// request: the kubelet rotates it) is the client assertion of a client-credentials request.
struct WorkloadIdentityTokenProvider: AccessTokenProvider {
    let name: String
    let clientID: String
    let tenantID: String
    let tokenFile: String
    let endpoint: EntraTokenEndpoint
    let client: HTTPClient
    let retry: RetryPolicy
    let labelPrefix: String

    init(spec: BackendIdentitySpec, client: HTTPClient, environment: [String: String], labelPrefix: String = "") throws {
        func required(_ value: String?, _ what: String, _ variable: String) throws -> String {
            guard let value, !value.isEmpty else {
                throw TokenError(
                    identity: spec.name,
                    label: "workload_identity",
                    reason: "no \(what): set `\(what)` or the \(variable) environment variable"
                )
            }
            return value
        }
        self.name = spec.name
        self.clientID = try required(spec.clientID ?? environment["AZURE_CLIENT_ID"], "client_id", "AZURE_CLIENT_ID")
        self.tenantID = try required(spec.tenantID ?? environment["AZURE_TENANT_ID"], "tenant_id", "AZURE_TENANT_ID")
        self.tokenFile = try required(
            spec.tokenFile ?? environment["AZURE_FEDERATED_TOKEN_FILE"],
            "token_file",
            "AZURE_FEDERATED_TOKEN_FILE"
        )
        self.endpoint = EntraTokenEndpoint(
            spec: spec,
            authority: spec.authorityHost ?? environment["AZURE_AUTHORITY_HOST"],
            tenantID: self.tenantID
        )
        self.client = client
        self.retry = spec.retry
        self.labelPrefix = labelPrefix
    }

    var label: String {
        "\(self.labelPrefix)workload_identity(client_id=\(self.clientID), tenant=\(self.tenantID))"
    }

    func fetchToken(resource: String) async throws -> AccessToken {
        let context = ProviderContext(
            identity: self.name,
            label: self.label,
            client: self.client,
            retry: self.retry,
            service: "the Entra token endpoint"
        )
        let (clientID, tokenFile, name, label) = (self.clientID, self.tokenFile, self.name, self.label)
        return try await self.endpoint.requestToken(context: context) {
            let assertion = try SecretFile.read(tokenFile, what: "federated token file", identity: name, label: label)
            return [
                ("grant_type", "client_credentials"),
                ("client_id", clientID),
                ("scope", EntraTokenEndpoint.scope(for: resource)),
                ("client_assertion_type", EntraTokenEndpoint.assertionType),
                ("client_assertion", assertion),
            ]
        }
    }
}

/// PEM blocks (`-----BEGIN X-----` ... `-----END X-----`) of a text, in order.
enum PEMBlocks {
    struct Block: Sendable {
        var label: String
        /// The whole block, markers included.
        var text: String
    }

    static func split(_ text: String) -> [Block] {
        var blocks: [Block] = []
        var rest = Substring(text)
        while let begin = rest.range(of: "-----BEGIN ") {
            guard let labelEnd = rest[begin.upperBound...].range(of: "-----") else { break }
            let label = String(rest[begin.upperBound..<labelEnd.lowerBound])
            let endMarker = "-----END \(label)-----"
            guard let end = rest[labelEnd.upperBound...].range(of: endMarker) else { break }
            blocks.append(Block(label: label, text: String(rest[begin.lowerBound..<end.upperBound])))
            rest = rest[end.upperBound...]
        }
        return blocks
    }
}

/// A certificate credential: the DER certificate's SHA-1 thumbprint (`x5t`) and its RSA key.
struct ClientCertificate: Sendable {
    let key: _RSA.Signing.PrivateKey
    let thumbprint: String
    let notValidAfter: Date

    /// Reads PEM certificate(s) and the RSA private key (from `keyFile`, or from `certificateFile`
    /// when both are in one file). The first certificate whose public key matches the key is used.
    init(certificateFile: String, keyFile: String?, identity: String, label: String) throws {
        func fail(_ reason: String) -> TokenError {
            TokenError(identity: identity, label: label, reason: reason)
        }
        let certificateText = try Self.readPEM(certificateFile, identity: identity, label: label)
        let keyText = try keyFile.map { try Self.readPEM($0, identity: identity, label: label) } ?? certificateText
        let certificates: [Certificate]
        do {
            certificates = try PEMBlocks.split(certificateText)
                .filter { $0.label == "CERTIFICATE" }
                .map { try Certificate(pemEncoded: $0.text) }
        } catch {
            throw fail("the certificate file '\(certificateFile)' holds an unreadable certificate: \(error)")
        }
        guard !certificates.isEmpty else {
            throw fail("the certificate file '\(certificateFile)' holds no PEM certificate")
        }
        guard let keyBlock = PEMBlocks.split(keyText).first(where: { $0.label.hasSuffix("PRIVATE KEY") }) else {
            throw fail("no PEM private key in '\(keyFile ?? certificateFile)'")
        }
        let key: _RSA.Signing.PrivateKey
        do {
            key = try _RSA.Signing.PrivateKey(pemRepresentation: keyBlock.text)
        } catch {
            throw fail(
                "the private key in '\(keyFile ?? certificateFile)' is not a usable RSA key (Entra certificate credentials are RSA, at least 2048 bits)"
            )
        }
        let publicKey = Certificate.PublicKey(key.publicKey)
        guard let certificate = certificates.first(where: { $0.publicKey == publicKey }) else {
            throw fail("the private key does not belong to the certificate in '\(certificateFile)'")
        }
        let der: [UInt8]
        do {
            der = try certificate.serializeAsPEM().derBytes
        } catch {
            throw fail("cannot encode the certificate: \(error)")
        }
        self.key = key
        self.thumbprint = Base64URL.encode(Array(Insecure.SHA1.hash(data: der)))
        self.notValidAfter = certificate.notValidAfter
    }

    static func readPEM(_ path: String, identity: String, label: String) throws -> String {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TokenError(identity: identity, label: label, reason: "cannot read '\(path)'")
        }
        guard data.count <= 1 << 20 else {
            throw TokenError(identity: identity, label: label, reason: "'\(path)' is larger than 1 MiB")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// The client assertion: RS256, header `x5t`, `aud` = the token endpoint, `iss` = `sub` =
    /// the client ID, fresh `jti`, valid from now for 10 minutes.
    func assertion(clientID: String, audience: String, now: Date = Date()) async throws -> String {
        let keys = JWTKeyCollection()
        await keys.add(rsa: try Insecure.RSA.PrivateKey(backing: self.key), digestAlgorithm: .sha256)
        var header = JWTHeader()
        header.alg = "RS256"
        header.typ = "JWT"
        header.x5t = self.thumbprint
        let epoch = Int(now.timeIntervalSince1970)
        let claims = ClientAssertionClaims(
            aud: audience,
            iss: clientID,
            sub: clientID,
            jti: UUID().uuidString.lowercased(),
            nbf: epoch,
            iat: epoch,
            exp: epoch + 600
        )
        return try await keys.sign(claims, header: header)
    }
}

struct ClientAssertionClaims: JWTPayload {
    var aud: String
    var iss: String
    var sub: String
    var jti: String
    var nbf: Int
    var iat: Int
    var exp: Int

    func verify(using algorithm: some JWTAlgorithm) async throws {}
}

/// An app registration: client secret (inline or from a file read for every request) or a
/// certificate (client assertion JWT).
struct ServicePrincipalTokenProvider: AccessTokenProvider {
    enum Credential: Sendable {
        case secret(String)
        case secretFile(String)
        case certificate(ClientCertificate)
    }

    let name: String
    let clientID: String
    let tenantID: String
    let credential: Credential
    let endpoint: EntraTokenEndpoint
    let client: HTTPClient
    let retry: RetryPolicy
    let labelPrefix: String

    init(spec: BackendIdentitySpec, client: HTTPClient, environment: [String: String], useEnvironment: Bool, labelPrefix: String = "") throws {
        func env(_ name: String) -> String? {
            useEnvironment ? environment[name].flatMap { $0.isEmpty ? nil : $0 } : nil
        }
        func missing(_ what: String, _ variable: String) -> TokenError {
            TokenError(
                identity: spec.name,
                label: "service_principal",
                reason: "no \(what): set `\(what)`" + (useEnvironment ? " or the \(variable) environment variable" : "")
            )
        }
        self.name = spec.name
        guard let clientID = spec.clientID ?? env("AZURE_CLIENT_ID"), !clientID.isEmpty else {
            throw missing("client_id", "AZURE_CLIENT_ID")
        }
        guard let tenantID = spec.tenantID ?? env("AZURE_TENANT_ID"), !tenantID.isEmpty else {
            throw missing("tenant_id", "AZURE_TENANT_ID")
        }
        self.clientID = clientID
        self.tenantID = tenantID
        let label = "service_principal(client_id=\(clientID), tenant=\(tenantID))"
        // The spec's own credential wins; the environment's only fills in when it has none.
        let specHasCredential = spec.clientSecret != nil || spec.clientSecretFile != nil || spec.certificateFile != nil
        let secret = specHasCredential ? spec.clientSecret : env("AZURE_CLIENT_SECRET")
        let certificatePath = specHasCredential ? spec.certificateFile : env("AZURE_CLIENT_CERTIFICATE_PATH")
        if let secret, !secret.isEmpty {
            self.credential = .secret(secret)
        } else if let file = spec.clientSecretFile {
            _ = try SecretFile.read(file, what: "client secret file", identity: spec.name, label: label)
            self.credential = .secretFile(file)
        } else if let certificateFile = certificatePath {
            self.credential = .certificate(
                try ClientCertificate(
                    certificateFile: certificateFile,
                    keyFile: spec.privateKeyFile,
                    identity: spec.name,
                    label: label
                )
            )
        } else {
            throw TokenError(
                identity: spec.name,
                label: label,
                reason: "no credential: set `client_secret`, `client_secret_file` or `certificate_file`"
                    + (useEnvironment ? " (or AZURE_CLIENT_SECRET / AZURE_CLIENT_CERTIFICATE_PATH)" : "")
            )
        }
        self.endpoint = EntraTokenEndpoint(
            spec: spec,
            authority: spec.authorityHost ?? env("AZURE_AUTHORITY_HOST"),
            tenantID: tenantID
        )
        self.client = client
        self.retry = spec.retry
        self.labelPrefix = labelPrefix
    }

    var label: String {
        let how: String
        switch self.credential {
        case .secret: how = "secret"
        case .secretFile: how = "secret file"
        case .certificate(let certificate): how = "certificate x5t=\(certificate.thumbprint)"
        }
        return "\(self.labelPrefix)service_principal(client_id=\(self.clientID), tenant=\(self.tenantID), \(how))"
    }

    func fetchToken(resource: String) async throws -> AccessToken {
        let context = ProviderContext(
            identity: self.name,
            label: self.label,
            client: self.client,
            retry: self.retry,
            service: "the Entra token endpoint"
        )
        var base = [
            ("grant_type", "client_credentials"),
            ("client_id", self.clientID),
            ("scope", EntraTokenEndpoint.scope(for: resource)),
        ]
        switch self.credential {
        case .secret(let secret):
            base.append(("client_secret", secret))
            let form = base
            return try await self.endpoint.requestToken(context: context) { form }
        case .secretFile(let file):
            let (name, label) = (self.name, self.label)
            let form = base
            return try await self.endpoint.requestToken(context: context) {
                form + [("client_secret", try SecretFile.read(file, what: "client secret file", identity: name, label: label))]
            }
        case .certificate(let certificate):
            let assertion: String
            do {
                assertion = try await certificate.assertion(clientID: self.clientID, audience: self.endpoint.url)
            } catch {
                throw context.error("cannot sign the client assertion: \(error)")
            }
            let form = base + [("client_assertion_type", EntraTokenEndpoint.assertionType), ("client_assertion", assertion)]
            return try await self.endpoint.requestToken(context: context) { form }
        }
    }
}

/// A file holding a raw access token (development only). Read for every fetch; the expiry
/// comes from the token's `exp` claim (the token is not verified).
struct StaticFileTokenProvider: AccessTokenProvider {
    let name: String
    let path: String

    init(spec: BackendIdentitySpec) throws {
        guard let path = spec.tokenFile, !path.isEmpty else {
            throw TokenError(identity: spec.name, label: "static_file", reason: "no token_file given")
        }
        self.name = spec.name
        self.path = path
    }

    var label: String { "static_file(\(self.path))" }

    func fetchToken(resource: String) async throws -> AccessToken {
        let token = try SecretFile.read(self.path, what: "token file", identity: self.name, label: self.label)
        guard let expiry = JWTInspection.expiry(of: token) else {
            throw TokenError(
                identity: self.name,
                label: self.label,
                reason: "the token in '\(self.path)' is not a JWT with an exp claim"
            )
        }
        let now = Date()
        guard expiry > now else {
            throw TokenError(
                identity: self.name,
                label: self.label,
                reason: "the token in '\(self.path)' expired at \(TimeFormat.iso(expiry))"
            )
        }
        return AccessToken(token: token, expiresOn: expiry, obtainedAt: now)
    }
}
