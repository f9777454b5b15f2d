/// One thing wrong with a configuration file, located by its path in the file.
///
/// Paths name items by their `name` where they have one (`clusters.orders.connect_timeout_ms`,
/// `policy.app-rw.backend_identity`) and by index otherwise (`clusters.orders.endpoints[1].host`,
/// `listeners[2].name` for an item whose name is missing or repeated). Problems that have no
/// place in the tree use the file (`/etc/tdsgate/tdsgate.yaml`) or a YAML position
/// (`line 3, column 7`). Messages never contain secret values (`client_secret`,
/// `password_hash`).
public struct ConfigProblem: Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var message: String

    public init(path: String, message: String) {
        self.path = path
        self.message = message
    }

    /// `path: message`
    public var description: String { "\(path): \(message)" }
}

/// Every problem found in a configuration (validation does not stop at the first one).
public struct ConfigErrors: Error, Sendable, Hashable, CustomStringConvertible {
    public var problems: [ConfigProblem]

    public init(problems: [ConfigProblem]) {
        self.problems = problems
    }

    /// One problem a line, in the order found.
    public var description: String {
        problems.map(\.description).joined(separator: "\n")
    }
}
