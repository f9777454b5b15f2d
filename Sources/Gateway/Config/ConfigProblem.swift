/// Where in a configuration file something is: `tdsgate.yaml:14:7`.
public struct ConfigLocation: Sendable, Hashable, CustomStringConvertible {
    /// The file as it was named to the reader (`nil` for text parsed from a string).
    public var file: String?
    /// From 1.
    public var line: Int
    /// From 1, in Unicode scalars (as libyaml counts).
    public var column: Int

    public init(file: String? = nil, line: Int, column: Int) {
        self.file = file
        self.line = line
        self.column = column
    }

    /// `file:line:column`, or `line:column` without a file.
    public var description: String {
        (file.map { "\($0):" } ?? "") + "\(line):\(column)"
    }
}

/// One thing wrong with a configuration file, located by its path in the file and, when the
/// YAML gives one, by line and column.
///
/// Paths name items by their `name` where they have one (`clusters.orders.connect_timeout_ms`,
/// `policy.app-rw.backend_identity`) and by index otherwise (`clusters.orders.endpoints[1].host`,
/// `listeners[2].name` for an item whose name is missing or repeated). A problem that has no
/// place in the tree (a YAML syntax error) has an empty path; one about the file itself uses
/// the file's path. Messages never contain secret values (`client_secret`, `password_hash`).
public struct ConfigProblem: Sendable, Hashable, CustomStringConvertible {
    public var path: String
    public var message: String
    /// The value the problem is about (or the mapping that lacks a required key).
    public var location: ConfigLocation?

    public init(path: String, message: String, location: ConfigLocation? = nil) {
        self.path = path
        self.message = message
        self.location = location
    }

    /// `tdsgate.yaml:14:7: clusters.orders.probe.interval_ms: must be between 100 and 600000, found 5`
    public var description: String {
        var text = location.map { "\($0): " } ?? ""
        if !path.isEmpty { text += "\(path): " }
        return text + message
    }
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
