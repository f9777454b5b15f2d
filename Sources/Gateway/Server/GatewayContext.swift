import Audit
import AsyncHTTPClient
import Foundation
import Identity
import Kerberos
import Logging

/// Everything sessions share: who may log in, what policy says, where tokens come from.
/// Built from a checked `GatewayConfig`.
final class GatewayContext: Sendable {
    let config: GatewayConfig
    let logins: SQLLoginStore
    let policy: Policy
    let tokens: TokenCache
    let throttle: LoginThrottle
    let entraValidators: [String: EntraTokenValidator]
    /// Per listener with `kerberos:`; each re-reads its keytab when the file changes.
    let kerberosAcceptors: [String: KerberosAcceptor]
    let backendTLS = BackendTLSContexts()
    /// The audit trail (`audit:`); nil when not configured.
    let audit: AuditLog?
    let logger: Logger
    let clusters: [String: ClusterRuntime]
    let metrics = GatewayMetrics()
    /// The packet dump (`dump:`, `--dump`, `POST /v1/dump`).
    let dump: DumpController
    /// Draining or not, for `/readyz`.
    let readiness = InstanceReadiness()

    init(config: GatewayConfig, httpClient: HTTPClient, logger: Logger) throws {
        self.config = config
        self.logger = logger
        self.logins = try SQLLoginStore(hashes: Dictionary(config.logins.map { ($0.name, $0.passwordHash) }, uniquingKeysWith: { a, _ in a }),
                                        verifiedCacheSeconds: config.loginCacheSeconds)
        self.policy = Policy(rules: config.policy.map(\.rule))
        self.throttle = LoginThrottle(maxFailures: config.throttle.maxFailures,
                                      window: TimeInterval(config.throttle.windowSeconds),
                                      blockFor: TimeInterval(config.throttle.blockSeconds))
        var providers: [String: any AccessTokenProvider] = [:]
        for identity in config.backendIdentities {
            providers[identity.name] = MeasuredTokenProvider(try TokenProviders.make(identity.spec, httpClient: httpClient),
                                                             identity: identity.name, metrics: metrics)
        }
        self.tokens = TokenCache(providers: providers)
        var validators: [String: EntraTokenValidator] = [:]
        for l in config.listeners {
            guard let e = l.entra else { continue }
            validators[l.name] = EntraTokenValidator(
                settings: EntraValidationSettings(tenantID: e.tenantID, issuers: e.issuers, audiences: e.audiences,
                                                  jwksURL: e.jwksURL, jwksFile: e.jwksFile, clockSkew: TimeInterval(e.clockSkewSeconds)),
                httpClient: httpClient)
        }
        self.entraValidators = validators
        var acceptors: [String: KerberosAcceptor] = [:]
        for l in config.listeners {
            guard let k = l.kerberos else { continue }
            acceptors[l.name] = KerberosAcceptor(config: try k.acceptorConfig())
        }
        self.kerberosAcceptors = acceptors
        let audit = try config.audit.map { try AuditLog(destination: $0.destination, statements: $0.statements, queueCapacity: $0.queueCapacity) }
        self.audit = audit
        let metrics = self.metrics
        self.dump = try DumpController(config: config.dump, metrics: metrics, logger: logger)
        self.clusters = Dictionary(uniqueKeysWithValues: config.clusters.map {
            ($0.name, ClusterRuntime(config: $0, logger: logger, metrics: metrics, audit: audit))
        })
    }

    /// PBKDF2 is deliberately slow: it runs on its own queue, never on an event loop or
    /// the cooperative pool that every other login shares.
    func verifyPassword(user: String, password: String) async -> Principal? {
        let logins = self.logins
        return await withCheckedContinuation { continuation in
            Self.passwordQueue.async {
                continuation.resume(returning: logins.authenticate(user: user, password: password))
            }
        }
    }

    private static let passwordQueue = DispatchQueue(label: "tdsgate.password-hashing", attributes: .concurrent)

    func cluster(for listener: ListenerConfig) -> ClusterRuntime? {
        if let name = listener.cluster { return clusters[name] }
        return clusters.count == 1 ? clusters.values.first : nil
    }

    /// Records an audit event when the trail is on; never blocks.
    func record(_ event: @autoclosure () -> AuditEvent) {
        if let audit { _ = audit.record(event()) }
    }
}
