import AsyncHTTPClient
import Foundation

/// Builds token providers from ``BackendIdentitySpec``s.
public enum TokenProviders {
    /// A provider for `spec`. Throws ``TokenError`` when the spec (with `environment`) is
    /// incomplete: a missing endpoint, client ID, credential file, and so on.
    ///
    /// - `auto` picks, in DefaultAzureCredential's order: a service principal from the
    ///   environment (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and `AZURE_CLIENT_SECRET` or
    ///   `AZURE_CLIENT_CERTIFICATE_PATH`), workload identity (`AZURE_FEDERATED_TOKEN_FILE`),
    ///   App Service (`IDENTITY_ENDPOINT` + `IDENTITY_HEADER`), Azure Arc (`IDENTITY_ENDPOINT`
    ///   + `IMDS_ENDPOINT`), else IMDS. The label says which, e.g. `auto:imds(system-assigned)`.
    ///   Managed identities are selected by the spec's IDs, else by `AZURE_CLIENT_ID`.
    public static func make(
        _ spec: BackendIdentitySpec,
        httpClient: HTTPClient,
        environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws -> any AccessTokenProvider {
        switch spec.kind {
        case .imds:
            return try IMDSTokenProvider(spec: spec, client: httpClient)
        case .appService:
            return try AppServiceTokenProvider(spec: spec, client: httpClient, environment: environment)
        case .arc:
            return try ArcTokenProvider(spec: spec, client: httpClient, environment: environment)
        case .workloadIdentity:
            return try WorkloadIdentityTokenProvider(spec: spec, client: httpClient, environment: environment)
        case .servicePrincipal:
            return try ServicePrincipalTokenProvider(
                spec: spec,
                client: httpClient,
                environment: environment,
                useEnvironment: true
            )
        case .staticFile:
            return try StaticFileTokenProvider(spec: spec)
        case .auto:
            return try self.automatic(spec, httpClient: httpClient, environment: environment)
        }
    }

    /// Which kind `auto` picks for this spec and environment.
    public static func automaticKind(_ spec: BackendIdentitySpec, environment: [String: String]) -> BackendIdentityKind {
        func has(_ name: String) -> Bool { !(environment[name] ?? "").isEmpty }
        let hasTenant = spec.tenantID != nil || has("AZURE_TENANT_ID")
        let hasClient = spec.clientID != nil || has("AZURE_CLIENT_ID")
        let hasSecret =
            spec.clientSecret != nil || spec.clientSecretFile != nil || spec.certificateFile != nil
            || has("AZURE_CLIENT_SECRET") || has("AZURE_CLIENT_CERTIFICATE_PATH")
        if hasTenant && hasClient && hasSecret { return .servicePrincipal }
        if spec.tokenFile != nil || has("AZURE_FEDERATED_TOKEN_FILE"), hasTenant, hasClient { return .workloadIdentity }
        if has("IDENTITY_ENDPOINT") && (spec.identityHeader != nil || has("IDENTITY_HEADER")) { return .appService }
        if has("IDENTITY_ENDPOINT") && has("IMDS_ENDPOINT") { return .arc }
        return .imds
    }

    static func automatic(
        _ spec: BackendIdentitySpec,
        httpClient: HTTPClient,
        environment: [String: String]
    ) throws -> any AccessTokenProvider {
        let prefix = "auto:"
        var chosen = spec
        chosen.kind = self.automaticKind(spec, environment: environment)
        let hasSelector = spec.clientID != nil || spec.objectID != nil || spec.resourceID != nil
        switch chosen.kind {
        case .servicePrincipal:
            return try ServicePrincipalTokenProvider(
                spec: chosen,
                client: httpClient,
                environment: environment,
                useEnvironment: true,
                labelPrefix: prefix
            )
        case .workloadIdentity:
            return try WorkloadIdentityTokenProvider(spec: chosen, client: httpClient, environment: environment, labelPrefix: prefix)
        case .appService:
            if !hasSelector, let clientID = environment["AZURE_CLIENT_ID"], !clientID.isEmpty { chosen.clientID = clientID }
            return try AppServiceTokenProvider(spec: chosen, client: httpClient, environment: environment, labelPrefix: prefix)
        case .arc:
            return try ArcTokenProvider(spec: chosen, client: httpClient, environment: environment, labelPrefix: prefix)
        case .imds, .staticFile, .auto:
            chosen.kind = .imds
            if !hasSelector, let clientID = environment["AZURE_CLIENT_ID"], !clientID.isEmpty { chosen.clientID = clientID }
            return try IMDSTokenProvider(spec: chosen, client: httpClient, labelPrefix: prefix)
        }
    }
}
