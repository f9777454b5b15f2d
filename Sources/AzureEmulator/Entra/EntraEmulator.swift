import Foundation
import GateSupport
import Synchronization
import NIOHTTP1
import HTTPServerKit

/// The emulator's token-related endpoints, for fault injection and counters.
public enum EntraEndpoint: String, Sendable, Hashable, CaseIterable {
    /// VM/VMSS/AKS node IMDS: `GET /metadata/identity/oauth2/token`.
    case imds
    /// App Service / Functions / Container Apps: `GET /msi/token`.
    case appService = "app_service"
    /// Azure Arc: `GET /arc/metadata/identity/oauth2/token`.
    case arc
    /// Entra token endpoint: `POST /{tenant}/oauth2/v2.0/token`.
    case token
    /// `GET /{tenant}/discovery/v2.0/keys` (and `/discovery/keys`).
    case jwks
    /// `GET /{tenant}/v2.0/.well-known/openid-configuration` (and the v1 document).
    case openIDConfiguration = "openid_configuration"

    /// The endpoints that hand out tokens (what ``EntraEmulator/failNextTokenRequests(count:status:retryAfterSeconds:endpoints:)`` targets by default).
    public static let tokenServing: Set<EntraEndpoint> = [.imds, .appService, .arc, .token]
}

/// Emulated Microsoft Entra ID and managed-identity endpoints for one tenant.
///
/// Mount ``routes`` on an ``HTTPServer``. Endpoints:
/// - IMDS `GET /metadata/identity/oauth2/token?api-version=2018-02-01&resource=...`
///   (`Metadata: true`, no `X-Forwarded-For`; selectors `client_id`, `object_id`, `msi_res_id`/`mi_res_id`).
/// - App Service `GET /msi/token?resource=...&api-version=2019-08-01` with
///   `X-IDENTITY-HEADER: ` ``appServiceIdentityHeader`` (selectors `client_id`, `principal_id`/`object_id`, `mi_res_id`).
/// - Azure Arc `GET /arc/metadata/identity/oauth2/token?api-version=2020-06-01&resource=...`:
///   401 with `WWW-Authenticate: Basic realm=<key file>`, then `Authorization: Basic <file contents>`.
///   Real SDKs insist the key file lives in the agent's folder (`/var/opt/azcmagent/tokens` on
///   Linux); pass that as `arcKeyDirectory` to drive them unmodified.
/// - Token endpoint `POST /{tenant}/oauth2/v2.0/token` (form): `client_credentials` with
///   `client_secret`, or with `client_assertion` (jwt-bearer); `password` for users.
///   A client assertion is accepted when it is signed by this emulator's key (e.g. from
///   ``EntraTokenIssuer/issueWorkloadIdentityToken(subject:audience:issuer:now:lifetime:)``),
///   is within its validity (5 min skew), has `aud` `api://AzureADTokenExchange` (or a token
///   endpoint URL), and its `sub` is one of the identity's `federated_subjects` or the
///   identity's own client ID (a service principal's self-signed assertion). The assertion's
///   `iss` is not checked.
/// - `GET /{tenant}/discovery/v2.0/keys`, `GET /{tenant}/v2.0/.well-known/openid-configuration`
///   (URLs built from the request's `Host`).
///
/// Identities reachable through IMDS, App Service and Arc are the managed identities; without a
/// selector they return the (first) system-assigned identity.
public final class EntraEmulator: Sendable {
    public static let workloadIdentityAudience = "api://AzureADTokenExchange"
    public static let clientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    public static let imdsPath = "/metadata/identity/oauth2/token"
    public static let appServicePath = "/msi/token"
    public static let arcPath = "/arc/metadata/identity/oauth2/token"
    /// Resources tokens can be requested for (compared without trailing slash).
    public static let defaultKnownResources = [
        "https://database.windows.net/",
        "https://management.azure.com/",
        "https://management.core.windows.net/",
        "https://vault.azure.net",
        "https://storage.azure.com/",
        "https://graph.microsoft.com/",
        "https://ossrdbms-aad.database.windows.net",
        "https://sql.azuresynapse.net",
    ]

    public let tenant: EmulatedTenant
    public let issuer: EntraTokenIssuer
    public let knownResources: [String]
    /// The secret App Service clients must send as `X-IDENTITY-HEADER` (`IDENTITY_HEADER` env).
    public let appServiceIdentityHeader: String
    /// Where the Arc challenge key files are written.
    public let arcKeyDirectory: URL
    /// The emulator's base URL if known (discovery documents prefer the request's `Host`).
    public let baseURL: String?
    private let ownsArcKeyDirectory: Bool
    private let clock: @Sendable () -> Date
    private let state = Mutex(EmulatorState())

    struct Fault: Sendable {
        var remaining: Int
        var status: Int
        var retryAfterSeconds: Int?
        var endpoints: Set<EntraEndpoint>
    }

    struct EmulatorState: Sendable {
        var faults: [Fault] = []
        var requests: [EntraEndpoint: Int] = [:]
        var issued: [EntraEndpoint: Int] = [:]
        /// Arc secrets handed out in challenge files and not yet used (newest last).
        var arcSecrets: [String] = []
    }

    /// - Parameters:
    ///   - issuer: defaults to an issuer for `tenant` whose key is kept in
    ///     `stateDirectory/entra-signing-key.pem` (so the `kid` survives restarts), or a fresh
    ///     key when there is no `stateDirectory`.
    ///   - baseURL: the emulator's URL, used in discovery documents when a request has no `Host`.
    ///   - stateDirectory: where the signing key and (by default) the Arc key files go.
    ///   - arcKeyDirectory: where the Arc challenge key files are written; defaults to
    ///     `stateDirectory/arc-tokens`, else a new private temporary directory (removed on deinit).
    ///   - clock: the time used for tokens and validity checks.
    public init(
        tenant: EmulatedTenant,
        issuer: EntraTokenIssuer? = nil,
        knownResources: [String] = EntraEmulator.defaultKnownResources,
        baseURL: String? = nil,
        stateDirectory: URL? = nil,
        arcKeyDirectory: URL? = nil,
        clock: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        let fileManager = FileManager.default
        if let stateDirectory {
            try fileManager.createDirectory(at: stateDirectory, withIntermediateDirectories: true)
        }
        if let issuer {
            self.issuer = issuer
        } else if let stateDirectory {
            let keyFile = stateDirectory.appendingPathComponent("entra-signing-key.pem")
            if let pem = try? String(contentsOf: keyFile, encoding: .utf8) {
                self.issuer = try EntraTokenIssuer(tenant: tenant, signingKeyPEM: pem)
            } else {
                let created = try EntraTokenIssuer(tenant: tenant)
                try Data(created.signingKeyPEM.utf8).write(to: keyFile, options: .atomic)
                try? fileManager.setAttributes([.posixPermissions: 0o600], ofItemAtPath: keyFile.path)
                self.issuer = created
            }
        } else {
            self.issuer = try EntraTokenIssuer(tenant: tenant)
        }
        self.tenant = tenant
        self.knownResources = knownResources
        self.baseURL = baseURL
        self.appServiceIdentityHeader = EntraIDs.randomUUID()
        self.clock = clock
        if let directory = arcKeyDirectory ?? stateDirectory?.appendingPathComponent("arc-tokens", isDirectory: true) {
            self.arcKeyDirectory = directory
            self.ownsArcKeyDirectory = false
            try fileManager.createDirectory(
                at: directory,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
        } else {
            let directory = fileManager.temporaryDirectory
                .appendingPathComponent("tdsgate-arc-\(EntraIDs.randomHex(8))", isDirectory: true)
            try fileManager.createDirectory(
                at: directory,
                withIntermediateDirectories: true,
                attributes: [.posixPermissions: 0o700]
            )
            self.arcKeyDirectory = directory
            self.ownsArcKeyDirectory = true
        }
    }

    deinit {
        if self.ownsArcKeyDirectory {
            try? FileManager.default.removeItem(at: self.arcKeyDirectory)
        }
    }

    /// A verifier that trusts this emulator's signing key: what an emulated Azure SQL node uses.
    public func verifier(
        audience: String = EntraTokenVerifier.azureSQLAudience,
        clockSkew: TimeInterval = 300
    ) -> EntraTokenVerifier {
        self.issuer.verifier(audience: audience, clockSkew: clockSkew)
    }

    // MARK: Faults and counters

    /// Makes the next `count` requests to `endpoints` fail with `status` before any other check.
    /// 429 (and 503) replies carry `Retry-After` (`retryAfterSeconds`, default 1 for 429).
    /// Calls queue up: `failNext(2, 410)` then `failNext(1, 500)` gives 410, 410, 500.
    public func failNextTokenRequests(
        count: Int,
        status: Int,
        retryAfterSeconds: Int? = nil,
        endpoints: Set<EntraEndpoint> = EntraEndpoint.tokenServing
    ) {
        guard count > 0 else { return }
        let retryAfter = retryAfterSeconds ?? (status == 429 ? 1 : nil)
        self.state.withLock {
            $0.faults.append(
                Fault(remaining: count, status: status, retryAfterSeconds: retryAfter, endpoints: endpoints)
            )
        }
    }

    public func clearFaults() {
        self.state.withLock { $0.faults.removeAll() }
    }

    /// Requests received by `endpoint` (every request, failed ones included).
    public func requestCount(_ endpoint: EntraEndpoint) -> Int {
        self.state.withLock { $0.requests[endpoint] ?? 0 }
    }

    /// Tokens successfully issued by `endpoint`.
    public func issuedTokenCount(_ endpoint: EntraEndpoint) -> Int {
        self.state.withLock { $0.issued[endpoint] ?? 0 }
    }

    public var requestCounts: [EntraEndpoint: Int] {
        self.state.withLock { $0.requests }
    }

    public func resetCounters() {
        self.state.withLock {
            $0.requests.removeAll()
            $0.issued.removeAll()
        }
    }

    private func begin(_ endpoint: EntraEndpoint) -> Fault? {
        self.state.withLock { state -> Fault? in
            state.requests[endpoint, default: 0] += 1
            guard let index = state.faults.firstIndex(where: { $0.endpoints.contains(endpoint) }) else { return nil }
            let fault = state.faults[index]
            state.faults[index].remaining -= 1
            if state.faults[index].remaining <= 0 { state.faults.remove(at: index) }
            return fault
        }
    }

    private func noteIssued(_ endpoint: EntraEndpoint) {
        self.state.withLock { $0.issued[endpoint, default: 0] += 1 }
    }

    // MARK: Routes

    /// The routes to mount on an ``HTTPServer``.
    public var routes: [HTTPRoute] {
        [
            HTTPRoute(.GET, EntraEmulator.imdsPath) { [self] in self.handleIMDS($0) },
            HTTPRoute(.GET, EntraEmulator.appServicePath) { [self] in self.handleAppService($0) },
            HTTPRoute(.GET, EntraEmulator.arcPath) { [self] in self.handleArc($0) },
            HTTPRoute(.POST, "/{tenant}/oauth2/v2.0/token") { [self] in self.handleTokenEndpoint($0) },
            HTTPRoute(.GET, "/{tenant}/discovery/v2.0/keys") { [self] in self.handleJWKS($0) },
            HTTPRoute(.GET, "/{tenant}/discovery/keys") { [self] in self.handleJWKS($0) },
            HTTPRoute(.GET, "/{tenant}/v2.0/.well-known/openid-configuration") { [self] in
                self.handleOpenIDConfiguration($0, v2: true)
            },
            HTTPRoute(.GET, "/{tenant}/.well-known/openid-configuration") { [self] in
                self.handleOpenIDConfiguration($0, v2: false)
            },
        ]
    }

    // MARK: IMDS

    func handleIMDS(_ request: HTTPServerRequest) -> HTTPServerResponse {
        if let fault = self.begin(.imds) { return Self.imdsFault(fault) }
        guard request.header("Metadata")?.lowercased() == "true" else {
            return Self.imdsError(.badRequest, "invalid_request", "Required metadata header not specified")
        }
        // IMDS refuses requests that came through a proxy.
        guard request.header("X-Forwarded-For") == nil else {
            return Self.imdsError(
                .badRequest,
                "invalid_request",
                "Request contains X-Forwarded-For header; IMDS must not be reached through a proxy"
            )
        }
        guard request.query("api-version") != nil else {
            return Self.imdsError(.badRequest, "invalid_request", "Required query variable 'api-version' is missing")
        }
        guard let resource = request.query("resource"), !resource.isEmpty else {
            return Self.imdsError(.badRequest, "invalid_request", "Required query variable 'resource' is missing")
        }
        let identity: EmulatedIdentity
        switch self.selectManagedIdentity(
            request,
            selectors: [("client_id", .clientID), ("object_id", .objectID), ("msi_res_id", .resourceID), ("mi_res_id", .resourceID)]
        ) {
        case .found(let found): identity = found
        case .notFound: return Self.imdsError(.badRequest, "invalid_request", "Identity not found")
        case .ambiguous:
            return Self.imdsError(
                .badRequest,
                "invalid_request",
                "Only one of client_id, object_id or msi_res_id may be specified"
            )
        }
        guard let audience = self.resolveResource(resource) else {
            return Self.imdsError(.badRequest, "invalid_resource", self.unknownResourceDescription(resource))
        }
        return self.managedIdentityTokenResponse(identity: identity, audience: audience, endpoint: .imds, style: .imds)
    }

    // MARK: App Service

    func handleAppService(_ request: HTTPServerRequest) -> HTTPServerResponse {
        if let fault = self.begin(.appService) { return Self.appServiceFault(fault) }
        guard let header = request.header("X-IDENTITY-HEADER"), ConstantTime.equals(header, self.appServiceIdentityHeader) else {
            return Self.appServiceError(.unauthorized, "The X-IDENTITY-HEADER header is missing or invalid.")
        }
        guard request.query("api-version") != nil else {
            return Self.appServiceError(.badRequest, "The api-version query parameter is required.")
        }
        guard let resource = request.query("resource"), !resource.isEmpty else {
            return Self.appServiceError(.badRequest, "The resource query parameter is required.")
        }
        let identity: EmulatedIdentity
        switch self.selectManagedIdentity(
            request,
            selectors: [("client_id", .clientID), ("principal_id", .objectID), ("object_id", .objectID), ("mi_res_id", .resourceID)]
        ) {
        case .found(let found): identity = found
        case .notFound:
            return Self.appServiceError(.badRequest, "No Managed Identity found for specified ClientId/ResourceId/PrincipalId.")
        case .ambiguous:
            return Self.appServiceError(.badRequest, "Only one of client_id, principal_id or mi_res_id may be specified.")
        }
        guard let audience = self.resolveResource(resource) else {
            return Self.appServiceError(.badRequest, self.unknownResourceDescription(resource))
        }
        return self.managedIdentityTokenResponse(
            identity: identity,
            audience: audience,
            endpoint: .appService,
            style: .appService
        )
    }

    // MARK: Azure Arc

    func handleArc(_ request: HTTPServerRequest) -> HTTPServerResponse {
        if let fault = self.begin(.arc) { return Self.imdsFault(fault) }
        guard request.header("Metadata")?.lowercased() == "true" else {
            return Self.imdsError(.badRequest, "invalid_request", "Required metadata header not specified")
        }
        guard request.query("api-version") != nil else {
            return Self.imdsError(.badRequest, "invalid_request", "Required query variable 'api-version' is missing")
        }
        guard let resource = request.query("resource"), !resource.isEmpty else {
            return Self.imdsError(.badRequest, "invalid_request", "Required query variable 'resource' is missing")
        }
        guard let authorization = request.header("Authorization") else {
            return self.arcChallenge()
        }
        let parts = authorization.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "basic" else { return self.arcChallenge() }
        let presented = parts[1].trimmingCharacters(in: .whitespacesAndNewlines)
        let accepted = self.state.withLock { state -> Bool in
            guard let index = state.arcSecrets.firstIndex(where: { ConstantTime.equals($0, presented) }) else { return false }
            state.arcSecrets.remove(at: index)
            return true
        }
        guard accepted else { return self.arcChallenge() }
        let identity: EmulatedIdentity
        switch self.selectManagedIdentity(request, selectors: []) {
        case .found(let found): identity = found
        case .notFound, .ambiguous: return Self.imdsError(.badRequest, "invalid_request", "Identity not found")
        }
        guard let audience = self.resolveResource(resource) else {
            return Self.imdsError(.badRequest, "invalid_resource", self.unknownResourceDescription(resource))
        }
        return self.managedIdentityTokenResponse(identity: identity, audience: audience, endpoint: .arc, style: .imds)
    }

    /// Writes a new key file and answers 401 naming it.
    private func arcChallenge() -> HTTPServerResponse {
        let secret = EntraIDs.randomHex(32)
        let file = self.arcKeyDirectory.appendingPathComponent("\(EntraIDs.randomUUID()).key")
        do {
            try Data(secret.utf8).write(to: file, options: .atomic)
            try? FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
        } catch {
            return Self.imdsError(.internalServerError, "unknown", "could not write the Arc key file: \(error)")
        }
        self.state.withLock {
            $0.arcSecrets.append(secret)
            if $0.arcSecrets.count > 64 { $0.arcSecrets.removeFirst($0.arcSecrets.count - 64) }
        }
        var response = Self.imdsError(.unauthorized, "unauthorized_client", "Authentication required")
        response.headers.replaceOrAdd(name: "WWW-Authenticate", value: "Basic realm=\(file.path)")
        return response
    }

    // MARK: Token endpoint

    func handleTokenEndpoint(_ request: HTTPServerRequest) -> HTTPServerResponse {
        if let fault = self.begin(.token) { return Self.aadFault(fault) }
        let tenantSegment = request.pathParameters["tenant"] ?? ""
        guard tenantSegment.caseInsensitiveCompare(self.tenant.tenantID) == .orderedSame else {
            return Self.aadError(
                .badRequest,
                "invalid_tenant",
                90002,
                "Tenant '\(tenantSegment)' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
            )
        }
        let form = request.formItems
        func field(_ name: String) -> String? {
            form.first(where: { $0.name == name })?.value
        }
        guard let grantType = field("grant_type") else {
            return Self.aadError(.badRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
        }
        guard grantType == "client_credentials" || grantType == "password" else {
            return Self.aadError(.badRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '\(grantType)'.")
        }
        guard let clientID = field("client_id"), !clientID.isEmpty else {
            return Self.aadError(.badRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
        }
        guard let scope = field("scope"), !scope.isEmpty else {
            return Self.aadError(.badRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
        }
        let oidcScopes: Set<String> = ["openid", "profile", "offline_access", "email"]
        let resourceScopes = scope.split(separator: " ").map(String.init).filter { !oidcScopes.contains($0) }
        guard resourceScopes.count == 1, let resourceScope = resourceScopes.first else {
            return Self.aadError(
                .badRequest,
                "invalid_scope",
                70011,
                "The provided value for the input parameter 'scope' is not valid. The scope \(scope) is not valid."
            )
        }
        let resource: String
        if resourceScope.hasSuffix("/.default") {
            resource = String(resourceScope.dropLast("/.default".count))
        } else if grantType == "client_credentials" {
            return Self.aadError(
                .badRequest,
                "invalid_scope",
                1_002_012,
                "The provided value for scope \(resourceScope) is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."
            )
        } else if let slash = resourceScope.lastIndex(of: "/"), resourceScope[..<slash].contains("://") {
            resource = String(resourceScope[..<slash])
        } else {
            resource = resourceScope
        }
        guard let audience = self.resolveResource(resource) else {
            return Self.aadError(.badRequest, "invalid_resource", 500011, self.unknownResourceMessage(resource))
        }

        let now = self.clock()
        if grantType == "password" {
            guard let username = field("username"), let password = field("password") else {
                return Self.aadError(.badRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'username' and 'password'.")
            }
            guard
                let user = self.tenant.identities.first(where: {
                    $0.kind == .user && $0.upn?.caseInsensitiveCompare(username) == .orderedSame
                }),
                let expected = user.secret, expected == password
            else {
                return Self.aadError(.badRequest, "invalid_grant", 50126, "Error validating credentials due to invalid username or password.")
            }
            return self.tokenEndpointResponse(
                identity: user,
                audience: audience,
                now: now,
                clientApplicationID: clientID,
                appIDACR: "0",
                scope: "\(audience.hasSuffix("/") ? audience : audience + "/")user_impersonation"
            )
        }

        guard
            let identity = self.tenant.identities.first(where: {
                $0.kind != .user && $0.clientID.caseInsensitiveCompare(clientID) == .orderedSame
            })
        else {
            return Self.aadError(
                .badRequest,
                "unauthorized_client",
                700016,
                "Application with identifier '\(clientID)' was not found in the directory '\(self.tenant.tenantID)'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
            )
        }
        if let secret = field("client_secret") {
            guard let expected = identity.secret, ConstantTime.equals(expected, secret) else {
                return Self.aadError(
                    .unauthorized,
                    "invalid_client",
                    7_000_215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '\(identity.clientID)'."
                )
            }
            return self.tokenEndpointResponse(identity: identity, audience: audience, now: now, appIDACR: "1")
        }
        if let assertion = field("client_assertion") {
            guard field("client_assertion_type") == EntraEmulator.clientAssertionType else {
                return Self.aadError(
                    .badRequest,
                    "invalid_request",
                    90014,
                    "The required field 'client_assertion_type' is missing or is not '\(EntraEmulator.clientAssertionType)'."
                )
            }
            if let failure = self.checkClientAssertion(assertion, for: identity, now: now) { return failure }
            return self.tokenEndpointResponse(identity: identity, audience: audience, now: now, appIDACR: "2")
        }
        return Self.aadError(
            .unauthorized,
            "invalid_client",
            7_000_218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."
        )
    }

    /// Nil when the assertion is acceptable for `identity`, else the AADSTS error reply.
    private func checkClientAssertion(_ assertion: String, for identity: EmulatedIdentity, now: Date) -> HTTPServerResponse? {
        let claims: [String: JSONValue]
        do {
            claims = try self.issuer.verifiedClaims(of: assertion)
        } catch {
            switch error {
            case .malformed(let detail):
                return Self.aadError(.badRequest, "invalid_request", 50027, "JWT token is invalid or malformed (\(detail)).")
            default:
                return Self.aadError(
                    .unauthorized,
                    "invalid_client",
                    700027,
                    "Client assertion failed signature validation. (\(error.message))"
                )
            }
        }
        let skew: TimeInterval = 300
        let issuedBy = claims["iss"]?.stringValue ?? ""
        let subject = claims["sub"]?.stringValue ?? ""
        let audiences = claims["aud"]?.stringArrayValue ?? []
        guard let exp = claims["exp"]?.doubleValue else {
            return Self.aadError(.badRequest, "invalid_client", 700025, "Client assertion has no expiry ('exp').")
        }
        let nbf = claims["nbf"]?.doubleValue ?? 0
        let nowSeconds = now.timeIntervalSince1970
        if nowSeconds > exp + skew || nowSeconds + skew < nbf {
            return Self.aadError(
                .badRequest,
                "invalid_client",
                700024,
                "Client assertion is not within its valid time range. Current time: \(Self.aadTimestamp(now)), assertion valid from \(Self.aadTimestamp(Date(timeIntervalSince1970: nbf))), expiry time of assertion \(Self.aadTimestamp(Date(timeIntervalSince1970: exp)))."
            )
        }
        let audienceAccepted = audiences.contains { audience in
            audience == EntraEmulator.workloadIdentityAudience || audience.contains("/oauth2/")
                || audience.hasSuffix("/\(self.tenant.tenantID)/v2.0")
        }
        guard audienceAccepted else {
            return Self.aadError(
                .badRequest,
                "invalid_client",
                700212,
                "No matching federated identity record found for presented assertion audience '\(audiences.joined(separator: ","))'."
            )
        }
        guard identity.federatedSubjects.contains(subject) || subject.caseInsensitiveCompare(identity.clientID) == .orderedSame
        else {
            return Self.aadError(
                .badRequest,
                "invalid_client",
                70021,
                "No matching federated identity record found for presented assertion. Assertion Issuer: '\(issuedBy)'. Assertion Subject: '\(subject)'. Assertion Audience: '\(audiences.joined(separator: ","))'."
            )
        }
        return nil
    }

    private func tokenEndpointResponse(
        identity: EmulatedIdentity,
        audience: String,
        now: Date,
        clientApplicationID: String? = nil,
        appIDACR: String,
        scope: String? = nil
    ) -> HTTPServerResponse {
        do {
            let issued = try self.issuer.issueAccessToken(
                for: identity,
                audience: audience,
                now: now,
                clientApplicationID: clientApplicationID,
                appIDACR: appIDACR
            )
            self.noteIssued(.token)
            let expiresIn = max(0, EntraIDs.epochSeconds(issued.expiresOn) - EntraIDs.epochSeconds(now))
            var body: [String: JSONValue] = [
                "token_type": "Bearer",
                "expires_in": .int(expiresIn),
                "ext_expires_in": .int(expiresIn),
                "access_token": .string(issued.token),
            ]
            if let scope { body["scope"] = .string(scope) }
            return .json(.object(body), headers: ["Cache-Control": "no-store, no-cache", "Pragma": "no-cache"])
        } catch {
            return Self.aadError(.internalServerError, "server_error", 90033, "Could not sign the token: \(error)")
        }
    }

    // MARK: Discovery

    func handleJWKS(_ request: HTTPServerRequest) -> HTTPServerResponse {
        if let fault = self.begin(.jwks) { return Self.aadFault(fault) }
        guard self.isKnownTenantSegment(request.pathParameters["tenant"] ?? "") else {
            return self.unknownTenantReply(request.pathParameters["tenant"] ?? "")
        }
        return HTTPServerResponse(
            status: .ok,
            headers: ["Content-Type": "application/json; charset=utf-8", "Cache-Control": "max-age=86400, private"],
            body: Array(self.issuer.jwksJSON.utf8)
        )
    }

    func handleOpenIDConfiguration(_ request: HTTPServerRequest, v2: Bool) -> HTTPServerResponse {
        if let fault = self.begin(.openIDConfiguration) { return Self.aadFault(fault) }
        let segment = request.pathParameters["tenant"] ?? ""
        guard self.isKnownTenantSegment(segment) else { return self.unknownTenantReply(segment) }
        let base = request.baseURL ?? self.baseURL ?? "http://127.0.0.1"
        let tenantID = self.tenant.tenantID
        let version = v2 ? "/v2.0" : ""
        let issuer = v2 ? "https://login.microsoftonline.com/\(tenantID)/v2.0" : self.issuer.issuerURL
        let document: JSONValue = [
            "issuer": .string(issuer),
            "token_endpoint": .string("\(base)/\(tenantID)/oauth2\(version)/token"),
            "authorization_endpoint": .string("\(base)/\(tenantID)/oauth2\(version)/authorize"),
            "device_authorization_endpoint": .string("\(base)/\(tenantID)/oauth2\(version)/devicecode"),
            "jwks_uri": .string("\(base)/\(tenantID)/discovery\(version)/keys"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
            "response_modes_supported": ["query", "fragment", "form_post"],
            "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "claims_supported": [
                "sub", "iss", "aud", "exp", "iat", "nbf", "oid", "tid", "upn", "name", "appid", "idtyp", "groups", "roles",
            ],
            "tenant_region_scope": "EU",
            "cloud_instance_name": "microsoftonline.com",
            "cloud_graph_host_name": "graph.windows.net",
            "msgraph_host": "graph.microsoft.com",
        ]
        return .json(document)
    }

    private func isKnownTenantSegment(_ segment: String) -> Bool {
        segment.caseInsensitiveCompare(self.tenant.tenantID) == .orderedSame
            || ["common", "organizations"].contains(segment.lowercased())
    }

    private func unknownTenantReply(_ segment: String) -> HTTPServerResponse {
        Self.aadError(
            .badRequest,
            "invalid_tenant",
            90002,
            "Tenant '\(segment)' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."
        )
    }

    // MARK: Helpers

    enum Selector {
        case clientID
        case objectID
        case resourceID
    }

    enum Selection {
        case found(EmulatedIdentity)
        case notFound
        case ambiguous
    }

    private func selectManagedIdentity(_ request: HTTPServerRequest, selectors: [(String, Selector)]) -> Selection {
        let given = selectors.compactMap { name, selector -> (Selector, String)? in
            guard let value = request.query(name), !value.isEmpty else { return nil }
            return (selector, value)
        }
        guard given.count <= 1 else { return .ambiguous }
        let managed = self.tenant.identities.filter(\.isManagedIdentity)
        guard let (selector, value) = given.first else {
            return managed.first(where: { $0.kind == .systemAssigned }).map(Selection.found) ?? .notFound
        }
        let match = managed.first { identity in
            switch selector {
            case .clientID: return identity.clientID.caseInsensitiveCompare(value) == .orderedSame
            case .objectID: return identity.objectID.caseInsensitiveCompare(value) == .orderedSame
            case .resourceID: return identity.resourceID?.caseInsensitiveCompare(value) == .orderedSame
            }
        }
        return match.map(Selection.found) ?? .notFound
    }

    /// The audience to put in the token for a requested resource, nil if the resource is unknown.
    /// The resource is kept as requested (with or without trailing slash), as Entra does.
    private func resolveResource(_ resource: String) -> String? {
        var requested = resource
        if requested.hasSuffix("/.default") { requested.removeLast("/.default".count) }
        let normalized = EntraTokenVerifier.normalizedAudience(requested)
        guard !normalized.isEmpty,
            self.knownResources.contains(where: { EntraTokenVerifier.normalizedAudience($0) == normalized })
        else { return nil }
        return requested
    }

    private func unknownResourceMessage(_ resource: String) -> String {
        "The resource principal named \(resource) was not found in the tenant named \(self.tenant.tenantID). This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant."
    }

    private func unknownResourceDescription(_ resource: String) -> String {
        "AADSTS500011: \(self.unknownResourceMessage(resource))"
    }

    enum ReplyStyle {
        /// IMDS and Arc: every value a string, `expires_in`, `ext_expires_in`, `not_before`.
        case imds
        /// App Service 2019-08-01: `access_token`, `expires_on` (epoch string), `resource`, `token_type`, `client_id`.
        case appService
    }

    private func managedIdentityTokenResponse(
        identity: EmulatedIdentity,
        audience: String,
        endpoint: EntraEndpoint,
        style: ReplyStyle
    ) -> HTTPServerResponse {
        let now = self.clock()
        let issued: (token: String, expiresOn: Date, notBefore: Date)
        do {
            issued = try self.issuer.issueAccessToken(for: identity, audience: audience, now: now)
        } catch {
            return Self.imdsError(.internalServerError, "unknown", "could not sign the token: \(error)")
        }
        self.noteIssued(endpoint)
        let expiresOn = String(EntraIDs.epochSeconds(issued.expiresOn))
        switch style {
        case .imds:
            let expiresIn = String(max(0, EntraIDs.epochSeconds(issued.expiresOn) - EntraIDs.epochSeconds(now)))
            return .json(
                [
                    "access_token": .string(issued.token),
                    "client_id": .string(identity.clientID),
                    "expires_in": .string(expiresIn),
                    "expires_on": .string(expiresOn),
                    "ext_expires_in": .string(expiresIn),
                    "not_before": .string(String(EntraIDs.epochSeconds(issued.notBefore))),
                    "resource": .string(audience),
                    "token_type": "Bearer",
                ],
                headers: ["Server": "IMDS/150.870.65.1854"]
            )
        case .appService:
            return .json([
                "access_token": .string(issued.token),
                "expires_on": .string(expiresOn),
                "resource": .string(audience),
                "token_type": "Bearer",
                "client_id": .string(identity.clientID),
            ])
        }
    }

    static func imdsError(_ status: HTTPResponseStatus, _ error: String, _ description: String) -> HTTPServerResponse {
        .json(
            ["error": .string(error), "error_description": .string(description)],
            status: status,
            headers: ["Server": "IMDS/150.870.65.1854"]
        )
    }

    static func appServiceError(_ status: HTTPResponseStatus, _ message: String) -> HTTPServerResponse {
        .json([
            "statusCode": .int(Int(status.code)),
            "message": .string(message),
            "correlationId": .string(EntraIDs.randomUUID()),
        ], status: status)
    }

    static func aadTimestamp(_ date: Date) -> String {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(secondsFromGMT: 0)
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss'Z'"
        return formatter.string(from: date)
    }

    /// Entra's error body: `error`, `error_description` ("AADSTSnnn: ...\r\nTrace ID: ...\r\nCorrelation ID: ...\r\nTimestamp: ..."),
    /// `error_codes`, `timestamp`, `trace_id`, `correlation_id`, `error_uri`.
    static func aadError(_ status: HTTPResponseStatus, _ error: String, _ code: Int, _ message: String) -> HTTPServerResponse {
        let traceID = EntraIDs.randomUUID()
        let correlationID = EntraIDs.randomUUID()
        let timestamp = aadTimestamp(Date())
        let description =
            "AADSTS\(code): \(message)\r\nTrace ID: \(traceID)\r\nCorrelation ID: \(correlationID)\r\nTimestamp: \(timestamp)"
        return .json(
            [
                "error": .string(error),
                "error_description": .string(description),
                "error_codes": [.int(code)],
                "timestamp": .string(timestamp),
                "trace_id": .string(traceID),
                "correlation_id": .string(correlationID),
                "error_uri": .string("https://login.microsoftonline.com/error?code=\(code)"),
            ],
            status: status,
            headers: ["Cache-Control": "no-store, no-cache"]
        )
    }

    private static func faultHeaders(_ fault: Fault) -> HTTPHeaders {
        var headers: HTTPHeaders = [:]
        if let retryAfter = fault.retryAfterSeconds {
            headers.add(name: "Retry-After", value: String(retryAfter))
        }
        return headers
    }

    static func imdsFault(_ fault: Fault) -> HTTPServerResponse {
        let status = HTTPResponseStatus(statusCode: fault.status)
        let (error, description): (String, String)
        switch fault.status {
        case 404: (error, description) = ("not_found", "IMDS is being updated; the identity endpoint is not available yet")
        case 410: (error, description) = ("gone", "IMDS is being updated; retry within 70 seconds")
        case 429: (error, description) = ("too_many_requests", "Too many requests; the limit is 5 requests per second")
        case 500...599: (error, description) = ("unknown", "An unexpected error occurred while fetching the token")
        default: (error, description) = ("fault", "Injected fault \(fault.status)")
        }
        var response = imdsError(status, error, description)
        for header in faultHeaders(fault) { response.headers.add(name: header.name, value: header.value) }
        return response
    }

    static func appServiceFault(_ fault: Fault) -> HTTPServerResponse {
        var response = appServiceError(
            HTTPResponseStatus(statusCode: fault.status),
            "Injected fault \(fault.status) (emulated App Service identity endpoint failure)."
        )
        for header in faultHeaders(fault) { response.headers.add(name: header.name, value: header.value) }
        return response
    }

    static func aadFault(_ fault: Fault) -> HTTPServerResponse {
        let (error, code, message): (String, Int, String)
        switch fault.status {
        case 429: (error, code, message) = ("temporarily_unavailable", 50196, "The server is throttling requests; retry later.")
        case 500...599: (error, code, message) = ("temporarily_unavailable", 90033, "A transient error has occurred. Please try again.")
        default: (error, code, message) = ("invalid_request", 90000, "Injected fault \(fault.status).")
        }
        var response = aadError(HTTPResponseStatus(statusCode: fault.status), error, code, message)
        for header in faultHeaders(fault) { response.headers.add(name: header.name, value: header.value) }
        return response
    }
}
