import AsyncHTTPClient
import Identity

extension GatewayConfig {
    /// The token provider of a configured backend identity, for tools that act as tdsgate
    /// (the drill's ARM calls use the same managed identity the proxy runs with).
    public func tokenProvider(identity name: String, httpClient: HTTPClient) throws -> any AccessTokenProvider {
        guard let identity = backendIdentities.first(where: { $0.name == name }) else {
            throw ConfigErrors(problems: [ConfigProblem(path: "backend_identities", message: "no backend identity named '\(name)'")])
        }
        return try TokenProviders.make(identity.spec, httpClient: httpClient)
    }
}
