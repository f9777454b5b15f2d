import Foundation
import GateSupport

/// A bearer token for a backend resource. ``description`` never shows the token.
public struct AccessToken: Sendable, Hashable, CustomStringConvertible, CustomDebugStringConvertible {
    public var token: String
    public var expiresOn: Date
    public var obtainedAt: Date

    public init(token: String, expiresOn: Date, obtainedAt: Date = Date()) {
        self.token = token
        self.expiresOn = expiresOn
        self.obtainedAt = obtainedAt
    }

    /// Seconds between ``obtainedAt`` and ``expiresOn``.
    public var lifetime: TimeInterval {
        self.expiresOn.timeIntervalSince(self.obtainedAt)
    }

    public var description: String {
        "<access token, \(self.token.utf8.count) chars, expires \(TimeFormat.iso(self.expiresOn))>"
    }

    public var debugDescription: String { self.description }
}

/// Something that obtains access tokens for one backend identity.
public protocol AccessTokenProvider: Sendable {
    /// What the provider is, for logs and errors, e.g. `imds(client_id=...)`. Never a secret.
    var label: String { get }
    /// A fresh token for `resource` (e.g. `https://database.windows.net/`). Throws ``TokenError``.
    func fetchToken(resource: String) async throws -> AccessToken
}

/// Why a token could not be had. Never holds a token or a secret.
public struct TokenError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The backend identity's name (``BackendIdentitySpec/name``).
    public var identity: String
    /// The provider's label, e.g. `imds(client_id=...)`.
    public var label: String?
    public var reason: String
    /// The HTTP status of the last reply, if there was one.
    public var status: Int?

    public init(identity: String, label: String? = nil, reason: String, status: Int? = nil) {
        self.identity = identity
        self.label = label
        self.reason = reason
        self.status = status
    }

    /// e.g. `managed identity 'proxy-mi' via imds(client_id=...): IMDS answered 400: Identity not found`.
    public var description: String {
        guard let label = self.label else { return "backend identity '\(self.identity)': \(self.reason)" }
        let bare = label.hasPrefix("auto:") ? String(label.dropFirst(5)) : label
        let managed = ["imds", "app_service", "arc"].contains { bare.hasPrefix($0) }
        return "\(managed ? "managed identity" : "backend identity") '\(self.identity)' via \(label): \(self.reason)"
    }
}

/// How a backend identity obtains tokens.
public enum BackendIdentityKind: String, Sendable, Hashable, CaseIterable {
    /// VM / VMSS / AKS node Instance Metadata Service.
    case imds
    /// App Service, Functions, Container Apps (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`).
    case appService = "app_service"
    /// Azure Arc-enabled servers (401 challenge with a key file).
    case arc
    /// AKS workload identity (federated token file → Entra token endpoint).
    case workloadIdentity = "workload_identity"
    /// An app registration with a client secret or a certificate.
    case servicePrincipal = "service_principal"
    /// A file holding a raw token (development only).
    case staticFile = "static_file"
    /// Chosen from the environment, in DefaultAzureCredential's order.
    case auto
}

/// Retries of one token request: exponential backoff with jitter, bounded by a count and a
/// deadline. Which statuses are retried depends on the endpoint (IMDS: 404, 410, 429, 5xx;
/// others: 408, 429, 5xx); other 4xx never are. IMDS 410 ("being updated, back within
/// 70 s") is retried until the deadline even past ``maxRetries``.
public struct RetryPolicy: Sendable, Hashable {
    public var maxRetries: Int
    /// First backoff; doubles on every retry.
    public var initialDelay: TimeInterval
    public var maxDelay: TimeInterval
    /// Total time one fetch may take, retries included.
    public var deadline: TimeInterval
    /// Time one HTTP request may take.
    public var requestTimeout: TimeInterval
    /// Fraction of each delay that is randomised (0...1).
    public var jitter: Double

    public init(
        maxRetries: Int = 5,
        initialDelay: TimeInterval = 0.8,
        maxDelay: TimeInterval = 15,
        deadline: TimeInterval = 70,
        requestTimeout: TimeInterval = 15,
        jitter: Double = 0.25
    ) {
        self.maxRetries = max(0, maxRetries)
        self.initialDelay = max(0, initialDelay)
        self.maxDelay = max(0, maxDelay)
        self.deadline = max(0, deadline)
        self.requestTimeout = max(0.1, requestTimeout)
        self.jitter = min(max(jitter, 0), 1)
    }

    public static let `default` = RetryPolicy()

    /// The backoff before retry number `retry` (0-based), without jitter.
    func baseDelay(retry: Int) -> TimeInterval {
        min(self.maxDelay, self.initialDelay * pow(2, Double(min(retry, 30))))
    }

    func delay(retry: Int, retryAfter: TimeInterval?) -> TimeInterval {
        if let retryAfter { return min(self.maxDelay, max(0, retryAfter)) }
        let base = self.baseDelay(retry: retry)
        let spread = base * self.jitter
        return max(0, base - spread + Double.random(in: 0...1) * 2 * spread)
    }
}

/// Configuration of one backend identity.
public struct BackendIdentitySpec: Sendable, Hashable {
    public var name: String
    public var kind: BackendIdentityKind
    /// Override of the well-known URL: the full token URL (IMDS, App Service, Arc, or the Entra
    /// token endpoint for workload identity / service principal), e.g. an emulator's.
    public var endpoint: String?
    /// User-assigned identity / app registration client ID.
    public var clientID: String?
    /// User-assigned identity object (principal) ID.
    public var objectID: String?
    /// User-assigned identity ARM resource ID.
    public var resourceID: String?
    public var tenantID: String?
    /// Entra authority, default `https://login.microsoftonline.com` (or `AZURE_AUTHORITY_HOST`).
    public var authorityHost: String?
    public var clientSecret: String?
    public var clientSecretFile: String?
    /// PEM certificate (may also hold the private key).
    public var certificateFile: String?
    /// PEM private key, when not in ``certificateFile``.
    public var privateKeyFile: String?
    /// Federated token file (workload identity) or raw token file (static file).
    public var tokenFile: String?
    /// App Service `X-IDENTITY-HEADER` value (default `IDENTITY_HEADER`).
    public var identityHeader: String?
    /// Arc: the folder the challenge key file must be in (default the agent's tokens folder,
    /// or `TDSGATE_ARC_TOKENS_DIR`).
    public var arcTokensDirectory: String?
    public var resource: String
    public var retry: RetryPolicy

    public init(
        name: String,
        kind: BackendIdentityKind,
        endpoint: String? = nil,
        clientID: String? = nil,
        objectID: String? = nil,
        resourceID: String? = nil,
        tenantID: String? = nil,
        authorityHost: String? = nil,
        clientSecret: String? = nil,
        clientSecretFile: String? = nil,
        certificateFile: String? = nil,
        privateKeyFile: String? = nil,
        tokenFile: String? = nil,
        identityHeader: String? = nil,
        arcTokensDirectory: String? = nil,
        resource: String = "https://database.windows.net/",
        retry: RetryPolicy = .default
    ) {
        self.name = name
        self.kind = kind
        self.endpoint = endpoint
        self.clientID = clientID
        self.objectID = objectID
        self.resourceID = resourceID
        self.tenantID = tenantID
        self.authorityHost = authorityHost
        self.clientSecret = clientSecret
        self.clientSecretFile = clientSecretFile
        self.certificateFile = certificateFile
        self.privateKeyFile = privateKeyFile
        self.tokenFile = tokenFile
        self.identityHeader = identityHeader
        self.arcTokensDirectory = arcTokensDirectory
        self.resource = resource
        self.retry = retry
    }
}

extension BackendIdentitySpec: CustomStringConvertible {
    /// The spec with secrets left out (only whether a secret or header is set).
    public var description: String {
        var parts = ["name=\(self.name)", "kind=\(self.kind.rawValue)"]
        func add(_ key: String, _ value: String?) {
            if let value { parts.append("\(key)=\(value)") }
        }
        add("endpoint", self.endpoint)
        add("client_id", self.clientID)
        add("object_id", self.objectID)
        add("resource_id", self.resourceID)
        add("tenant_id", self.tenantID)
        add("authority_host", self.authorityHost)
        if self.clientSecret != nil { parts.append("client_secret=<redacted>") }
        add("client_secret_file", self.clientSecretFile)
        add("certificate_file", self.certificateFile)
        add("private_key_file", self.privateKeyFile)
        add("token_file", self.tokenFile)
        if self.identityHeader != nil { parts.append("identity_header=<redacted>") }
        add("arc_tokens_directory", self.arcTokensDirectory)
        parts.append("resource=\(self.resource)")
        return "BackendIdentitySpec(\(parts.joined(separator: ", ")))"
    }
}
