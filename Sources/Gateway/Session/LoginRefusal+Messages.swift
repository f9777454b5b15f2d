import TDS

/// Refusals tdsgate decides before any backend is involved. Each says what happened and
/// what to do about it: which setting causes it, whether waiting or retrying helps. Text
/// the client sent (a database name) is quoted through `ClientText.echo`; names from the
/// configuration are quoted as they are.
extension LoginRefusal {
    /// How many names a message lists before "and N more".
    static let listedNames = 10

    /// The login throttle blocks the address: too many failed logins in its window.
    static func throttled(address: String, maxFailures: Int, windowSeconds: Int, retryAfterSeconds: Int) -> LoginRefusal {
        LoginRefusal(message: "Login failed: too many failed logins from \(address): \(maxFailures) failed login(s) within \(windowSeconds) s "
            + "block an address (throttle.max_failures and throttle.window_seconds in the proxy's configuration). "
            + "This address may try again in \(retryAfterSeconds) s; logins before then are refused without checking their credentials.")
    }

    /// The listener names no cluster and the configuration has not exactly one, or names
    /// one that does not exist. A configuration problem: retrying does not help.
    static func noCluster(listener: String, named: String?, clusters: [String]) -> LoginRefusal {
        let fix = "Retrying will not help until the proxy's configuration is fixed; tell its operator."
        if let named {
            let choice = clusters.isEmpty ? "add cluster '\(named)' under clusters:" : "set it to one of: \(listed(clusters))"
            return LoginRefusal(message: "Login failed: listener '\(listener)' sends sessions to cluster '\(named)', which the proxy's configuration "
                + "does not define (listeners[].cluster); \(choice). \(fix)")
        }
        if clusters.isEmpty {
            return LoginRefusal(message: "Login failed: listener '\(listener)' has no cluster to send sessions to: the proxy's configuration "
                + "defines no cluster. Add one under clusters: and name it in the listener's cluster: key. \(fix)")
        }
        return LoginRefusal(message: "Login failed: listener '\(listener)' has no cluster to send sessions to: the proxy's configuration "
            + "defines \(clusters.count) clusters (\(listed(clusters))) and the listener does not name one. "
            + "Set cluster: on listener '\(listener)' (listeners[].cluster) to one of them. \(fix)")
    }

    /// The client asked for a database its listener's cluster does not list.
    static func databaseNotServed(database: String, cluster: String, served: [String]) -> LoginRefusal {
        LoginRefusal(message: "Login failed: database '\(ClientText.echo(database))' is not served by cluster '\(cluster)', which serves: \(listed(served)). "
            + "Connect to one of those (Database / Initial Catalog in the connection string), or ask the proxy's operator "
            + "to add the database to the cluster's databases: list.")
    }

    /// The GSSAPI acceptor wants another SSPI round trip, and this login has no way to
    /// ask the client for one.
    static let kerberosNeedsAnotherStep = LoginRefusal(message: "Login failed: Kerberos (integrated) authentication needs "
        + "one more exchange of security tokens with the client, and this connection cannot carry it, so the client could not be "
        + "authenticated. Retrying will not help; log in with a SQL login or an Entra access token, or report this to the proxy's operator.")

    /// `names` joined, at most ``listedNames`` of them, then how many more there are.
    static func listed(_ names: [String]) -> String {
        let shown = names.prefix(listedNames).joined(separator: ", ")
        return names.count > listedNames ? "\(shown) and \(names.count - listedNames) more" : shown
    }
}
