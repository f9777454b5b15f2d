import Routing

/// A login tdsgate will not complete, as the TDS error the client receives. Messages say
/// what was refused and why, never which passwords or tokens exist.
///
/// The number tells the client what to do (README, "Errors a client may retry"):
/// credentials and policy get 18456, which drivers never retry; conditions that pass by
/// themselves get the numbers Azure SQL uses for them and drivers' retry policies retry
/// (field guide section 7): 40613 not currently available, 40501 service busy, 10928
/// resource limit.
struct LoginRefusal: Error, Equatable, CustomStringConvertible {
    var number: Int32 = 18456
    var severity: UInt8 = 14
    var state: UInt8 = 1
    var message: String

    var description: String { "error \(number): \(message)" }
}

extension LoginRefusal {
    /// Azure SQL's wording ends with "Please retry the connection later"; drivers match the
    /// number, people the text.
    static func notAvailable(cluster: String, database: String, _ cause: String) -> LoginRefusal {
        LoginRefusal(number: 40613, severity: 17,
                     message: "Database '\(database)' on cluster '\(cluster)' is not currently available: \(cause). Please retry the connection later.")
    }

    static func busy(cluster: String, _ cause: String) -> LoginRefusal {
        LoginRefusal(number: 40501, severity: 20,
                     message: "The service is currently busy: cluster '\(cluster)': \(cause). Retry the connection after a few seconds.")
    }

    static func resourceLimit(cluster: String, _ cause: String) -> LoginRefusal {
        LoginRefusal(number: 10928, severity: 20,
                     message: "Resource limit reached on cluster '\(cluster)': \(cause). Retry the connection later.")
    }

    /// The login of this session ended because its task was cancelled (the client left or
    /// its login deadline fired): nobody reads this refusal.
    static let cancelled = LoginRefusal(message: "Login cancelled: the client left before its login completed.")

    /// The client's refusal when the backend login plan gives up.
    init(_ giveUp: LoginGiveUp, cluster: ClusterConfig, database: String, backendIdentity: String) {
        let name = cluster.name
        switch giveUp {
        case .unroutable(let refusal) where refusal.isTemporary:
            self = .notAvailable(cluster: name, database: database, refusal.reason)
        case .unroutable(let refusal):
            self.init(state: 2, message: "Login failed: \(refusal.reason).")
        case .failed(let stop):
            let endpoint = stop.last.endpoint
            let tries = stop.attempts == 1 ? "" : " (\(stop.attempts) attempts"
                + (stop.kind == .deadline ? " within login_timeout_ms \(cluster.loginTimeoutMs) ms)" : ")")
            switch (stop.errorClass, stop.last.failure) {
            case (.permanent, .server(let number, let text)):
                self.init(number: number, message: "Azure SQL (cluster '\(name)', endpoint '\(endpoint)') refused tdsgate's login with backend identity '\(backendIdentity)': \(text.isEmpty ? "no reason given" : text)")
            case (.busy, .server(let number, let text)) where number == 10928 || number == 10929:
                self = .resourceLimit(cluster: name, "endpoint '\(endpoint)' answered error \(number) (\(text))\(tries)")
            case (.busy, let failure):
                self = .busy(cluster: name, "endpoint '\(endpoint)' answered \(failure)\(tries)")
            case (_, .connect(let detail)):
                self = .notAvailable(cluster: name, database: database, "endpoint '\(endpoint)' is unreachable (\(detail))\(tries)")
            case (_, .timedOut):
                self = .notAvailable(cluster: name, database: database, "endpoint '\(endpoint)' did not complete the login in time\(tries)")
            case (_, .server(let number, let text)):
                self = .notAvailable(cluster: name, database: database, "endpoint '\(endpoint)' answered error \(number) (\(text))\(tries)")
            }
        case .tooManyRedirects(let endpoint, let limit):
            self.init(state: 2, message: "Login failed: endpoint '\(endpoint)' of cluster '\(name)' redirected tdsgate more than \(limit) times in a row; check the server's connection policy.")
        case .redirectNotAllowed(let endpoint, let to):
            self.init(state: 2, message: "Login failed: cluster '\(name)' is pinned to the Proxy connection policy, but endpoint '\(endpoint)' redirected tdsgate to \(to); set the server's connection policy to Proxy, or connection_policy: redirect.")
        case .deadlinePassed(let last):
            let detail = last.map { "; last problem: \($0.failure) from endpoint '\($0.endpoint)'" } ?? ""
            self = .notAvailable(cluster: name, database: database,
                                 "tdsgate could not complete the login within login_timeout_ms (\(cluster.loginTimeoutMs) ms)\(detail)")
        }
    }
}
