import AsyncHTTPClient
import Foundation

/// VM / VMSS / AKS node IMDS:
/// `GET {endpoint}?api-version=2018-02-01&resource=...[&client_id|object_id|msi_res_id=...]`
/// with `Metadata: true`. Retries 404, 410, 429 and 5xx; never other 4xx.
///
/// IMDS must not be reached through an HTTP proxy: give it an `HTTPClient` without one
/// (AsyncHTTPClient does not read proxy environment variables by itself).
struct IMDSTokenProvider: AccessTokenProvider {
    static let defaultEndpoint = "http://169.254.169.254/metadata/identity/oauth2/token"
    static let apiVersion = "2018-02-01"

    let name: String
    let endpoint: String
    /// (query name, value) of the user-assigned identity selector, if any.
    let selector: (String, String)?
    let client: HTTPClient
    let retry: RetryPolicy
    let labelPrefix: String

    init(spec: BackendIdentitySpec, client: HTTPClient, labelPrefix: String = "") throws {
        self.name = spec.name
        self.endpoint = spec.endpoint ?? Self.defaultEndpoint
        self.client = client
        self.retry = spec.retry
        self.labelPrefix = labelPrefix
        self.selector = try ManagedIdentitySelector.pick(
            spec: spec,
            names: (clientID: "client_id", objectID: "object_id", resourceID: "msi_res_id"),
            kind: "imds"
        )
    }

    var label: String {
        let what = self.selector.map { "\($0.0)=\($0.1)" } ?? "system-assigned"
        return "\(self.labelPrefix)imds(\(what))"
    }

    static func isRetryable(_ status: Int) -> Bool {
        status == 404 || status == 410 || status == 429 || (500...599).contains(status)
    }

    func fetchToken(resource: String) async throws -> AccessToken {
        let context = ProviderContext(identity: self.name, label: self.label, client: self.client, retry: self.retry, service: "IMDS")
        var query = [("api-version", Self.apiVersion), ("resource", resource)]
        if let selector = self.selector { query.append(selector) }
        let url = FormEncoding.url(self.endpoint, adding: query)
        let reply = try await context.sendWithRetries(retryable: Self.isRetryable) {
            TokenRequest(url: url, headers: [("Metadata", "true")])
        }
        guard reply.isSuccess else { throw context.failure(reply) }
        return try TokenReplyParser.accessToken(from: reply, context: context)
    }
}

/// App Service / Functions / Container Apps:
/// `GET $IDENTITY_ENDPOINT?api-version=2019-08-01&resource=...` with
/// `X-IDENTITY-HEADER: $IDENTITY_HEADER`; selectors `client_id`, `principal_id`, `mi_res_id`.
struct AppServiceTokenProvider: AccessTokenProvider {
    static let apiVersion = "2019-08-01"

    let name: String
    let endpoint: String
    let identityHeader: String
    let selector: (String, String)?
    let client: HTTPClient
    let retry: RetryPolicy
    let labelPrefix: String

    init(spec: BackendIdentitySpec, client: HTTPClient, environment: [String: String], labelPrefix: String = "") throws {
        self.name = spec.name
        guard let endpoint = spec.endpoint ?? environment["IDENTITY_ENDPOINT"], !endpoint.isEmpty else {
            throw TokenError(
                identity: spec.name,
                label: "app_service",
                reason: "no endpoint: set `endpoint` or the IDENTITY_ENDPOINT environment variable"
            )
        }
        guard let header = spec.identityHeader ?? environment["IDENTITY_HEADER"], !header.isEmpty else {
            throw TokenError(
                identity: spec.name,
                label: "app_service",
                reason: "no identity header: set `identity_header` or the IDENTITY_HEADER environment variable"
            )
        }
        self.endpoint = endpoint
        self.identityHeader = header
        self.client = client
        self.retry = spec.retry
        self.labelPrefix = labelPrefix
        self.selector = try ManagedIdentitySelector.pick(
            spec: spec,
            names: (clientID: "client_id", objectID: "principal_id", resourceID: "mi_res_id"),
            kind: "app_service"
        )
    }

    var label: String {
        let what = self.selector.map { "\($0.0)=\($0.1)" } ?? "system-assigned"
        return "\(self.labelPrefix)app_service(\(what))"
    }

    static func isRetryable(_ status: Int) -> Bool {
        status == 408 || status == 429 || (500...599).contains(status)
    }

    func fetchToken(resource: String) async throws -> AccessToken {
        let context = ProviderContext(
            identity: self.name,
            label: self.label,
            client: self.client,
            retry: self.retry,
            service: "the App Service identity endpoint"
        )
        var query = [("api-version", Self.apiVersion), ("resource", resource)]
        if let selector = self.selector { query.append(selector) }
        let url = FormEncoding.url(self.endpoint, adding: query)
        let header = self.identityHeader
        let reply = try await context.sendWithRetries(retryable: Self.isRetryable) {
            TokenRequest(url: url, headers: [("X-IDENTITY-HEADER", header)])
        }
        guard reply.isSuccess else { throw context.failure(reply) }
        return try TokenReplyParser.accessToken(from: reply, context: context)
    }
}

/// Azure Arc: the first call answers 401 with `WWW-Authenticate: Basic realm=<key file>`; the
/// file (a `.key` file of at most 4096 bytes inside the agent's tokens folder) is read and the
/// call repeated with `Authorization: Basic <contents>`. System-assigned identity only.
struct ArcTokenProvider: AccessTokenProvider {
    static let defaultEndpoint = "http://127.0.0.1:40342/metadata/identity/oauth2/token"
    static let apiVersion = "2020-06-01"
    #if os(Windows)
    static let defaultTokensDirectory = "C:\\ProgramData\\AzureConnectedMachineAgent\\Tokens"
    #else
    static let defaultTokensDirectory = "/var/opt/azcmagent/tokens"
    #endif
    static let maxKeyFileSize = 4096

    let name: String
    let endpoint: String
    let tokensDirectory: String
    let client: HTTPClient
    let retry: RetryPolicy
    let labelPrefix: String

    init(spec: BackendIdentitySpec, client: HTTPClient, environment: [String: String], labelPrefix: String = "") throws {
        self.name = spec.name
        if spec.clientID != nil || spec.objectID != nil || spec.resourceID != nil {
            throw TokenError(
                identity: spec.name,
                label: "arc",
                reason: "Azure Arc offers only the machine's system-assigned identity; remove client_id / object_id / resource_id"
            )
        }
        self.endpoint = spec.endpoint ?? environment["IDENTITY_ENDPOINT"] ?? Self.defaultEndpoint
        self.tokensDirectory =
            spec.arcTokensDirectory ?? environment["TDSGATE_ARC_TOKENS_DIR"] ?? Self.defaultTokensDirectory
        self.client = client
        self.retry = spec.retry
        self.labelPrefix = labelPrefix
    }

    var label: String { "\(self.labelPrefix)arc(system-assigned)" }

    static func isRetryable(_ status: Int) -> Bool {
        status == 408 || status == 429 || (500...599).contains(status)
    }

    func fetchToken(resource: String) async throws -> AccessToken {
        let context = ProviderContext(
            identity: self.name,
            label: self.label,
            client: self.client,
            retry: self.retry,
            service: "the Arc identity endpoint"
        )
        let url = FormEncoding.url(self.endpoint, adding: [("api-version", Self.apiVersion), ("resource", resource)])
        let challenge = try await context.sendWithRetries(retryable: Self.isRetryable) {
            TokenRequest(url: url, headers: [("Metadata", "true")])
        }
        if challenge.isSuccess {
            throw context.error("the Arc identity endpoint answered without the expected 401 challenge")
        }
        guard challenge.status == 401 else { throw context.failure(challenge) }
        guard let authenticate = challenge.header("www-authenticate") else {
            throw context.error("the Arc identity endpoint answered 401 without a WWW-Authenticate header")
        }
        let keyFile = try self.keyFilePath(fromChallenge: authenticate, context: context)
        let secret = try self.readKeyFile(keyFile, context: context)
        let reply = try await context.sendWithRetries(retryable: Self.isRetryable) {
            TokenRequest(url: url, headers: [("Metadata", "true"), ("Authorization", "Basic \(secret)")])
        }
        guard reply.isSuccess else { throw context.failure(reply) }
        return try TokenReplyParser.accessToken(from: reply, context: context)
    }

    /// The path in `Basic realm=<path>`.
    func keyFilePath(fromChallenge header: String, context: ProviderContext) throws -> String {
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard let range = trimmed.range(of: "realm=", options: .caseInsensitive),
            trimmed.lowercased().hasPrefix("basic")
        else {
            throw context.error("the Arc challenge '\(trimmed.clipped(120))' is not 'Basic realm=<key file>'")
        }
        var path = String(trimmed[range.upperBound...]).trimmingCharacters(in: .whitespaces)
        if path.hasPrefix("\""), path.hasSuffix("\""), path.count >= 2 { path = String(path.dropFirst().dropLast()) }
        guard !path.isEmpty else { throw context.error("the Arc challenge names no key file") }
        return path
    }

    /// Reads the key file after checking that it is a `.key` regular file of at most 4096 bytes
    /// inside the tokens folder (symbolic links resolved).
    func readKeyFile(_ path: String, context: ProviderContext) throws -> String {
        let fileManager = FileManager.default
        guard path.hasPrefix("/") || path.contains(":\\") else {
            throw context.error("the Arc key file '\(path.clipped(200))' is not an absolute path")
        }
        let resolved = URL(fileURLWithPath: path).resolvingSymlinksInPath().standardizedFileURL.path
        let folder = URL(fileURLWithPath: self.tokensDirectory, isDirectory: true).resolvingSymlinksInPath()
            .standardizedFileURL.path
        let folderPrefix = folder.hasSuffix("/") ? folder : folder + "/"
        guard resolved.hasPrefix(folderPrefix) else {
            throw context.error(
                "the Arc key file '\(path.clipped(200))' is not inside the allowed folder '\(self.tokensDirectory)'"
            )
        }
        guard resolved.hasSuffix(".key") else {
            throw context.error("the Arc key file '\(path.clipped(200))' does not end in .key")
        }
        let attributes: [FileAttributeKey: Any]
        do {
            attributes = try fileManager.attributesOfItem(atPath: resolved)
        } catch {
            throw context.error("cannot read the Arc key file '\(path.clipped(200))': \(error.localizedDescription)")
        }
        guard (attributes[.type] as? FileAttributeType) == .typeRegular else {
            throw context.error("the Arc key file '\(path.clipped(200))' is not a regular file")
        }
        let size = (attributes[.size] as? NSNumber)?.intValue ?? Int.max
        guard size <= Self.maxKeyFileSize else {
            throw context.error("the Arc key file '\(path.clipped(200))' has \(size) bytes; at most \(Self.maxKeyFileSize) are allowed")
        }
        guard let data = fileManager.contents(atPath: resolved), data.count <= Self.maxKeyFileSize else {
            throw context.error("cannot read the Arc key file '\(path.clipped(200))'")
        }
        let secret = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard !secret.isEmpty else { throw context.error("the Arc key file '\(path.clipped(200))' is empty") }
        return secret
    }
}

/// Picks at most one user-assigned identity selector from a spec.
enum ManagedIdentitySelector {
    static func pick(
        spec: BackendIdentitySpec,
        names: (clientID: String, objectID: String, resourceID: String),
        kind: String
    ) throws -> (String, String)? {
        let given = [
            (names.clientID, spec.clientID),
            (names.objectID, spec.objectID),
            (names.resourceID, spec.resourceID),
        ].compactMap { name, value -> (String, String)? in
            guard let value, !value.isEmpty else { return nil }
            return (name, value)
        }
        guard given.count <= 1 else {
            throw TokenError(
                identity: spec.name,
                label: kind,
                reason: "give only one of client_id, object_id or resource_id (got \(given.map(\.0).joined(separator: ", ")))"
            )
        }
        return given.first
    }
}
