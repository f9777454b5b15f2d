/// How read sessions are spread over the eligible replicas.
public enum Balancing: String, Sendable, Hashable, Codable, CaseIterable {
    /// Each replica in turn, in configuration order.
    case roundRobin = "round_robin"
    /// The replica with the fewest open sessions (HAProxy's `leastconn`).
    case leastSessions = "least_sessions"
    /// The replica whose probes answer fastest.
    case lowestLatency = "lowest_latency"
}

/// Where a rule sends read-intent sessions. Write sessions always go to the primary.
public enum ReadTarget: String, Sendable, Hashable, Codable, CaseIterable {
    /// A healthy replica (the default for ApplicationIntent=ReadOnly).
    case replica
    /// The primary, waiting for one like a write login does: for applications that must
    /// read their own writes even though their driver says ReadOnly.
    case primary
}

/// Per-rule routing choices.
public struct RouteOptions: Sendable, Hashable {
    /// Read sessions go to the primary when no replica is eligible. Off for rules whose
    /// purpose is to keep reporting load away from the primary.
    public var allowReadOnlyFallbackToPrimary: Bool
    public var balancing: Balancing
    public var readTarget: ReadTarget
    /// Replicas this rule may use (endpoint names); nil = every replica of the cluster.
    public var replicas: Set<String>?

    public init(allowReadOnlyFallbackToPrimary: Bool = true, balancing: Balancing = .roundRobin,
                readTarget: ReadTarget = .replica, replicas: Set<String>? = nil) {
        self.allowReadOnlyFallbackToPrimary = allowReadOnlyFallbackToPrimary
        self.balancing = balancing
        self.readTarget = readTarget
        self.replicas = replicas
    }
}

/// One routing rule: when it matches a session, its options apply.
public struct RoutingRule: Sendable, Hashable {
    public var name: String
    /// nil = either intent.
    public var intent: SessionIntent?
    /// Empty = any database. Compared without case.
    public var databases: [String]
    /// Empty = any principal; otherwise the principal must hold at least one of these
    /// (login name, group, app role, as the policy layer names them). Compared without case.
    public var roles: Set<String>
    public var options: RouteOptions

    public init(name: String, intent: SessionIntent? = nil, databases: [String] = [], roles: Set<String> = [], options: RouteOptions) {
        self.name = name
        self.intent = intent
        self.databases = databases
        self.roles = roles
        self.options = options
    }

    public func matches(intent: SessionIntent, database: String?, principalRoles: Set<String>) -> Bool {
        if let wanted = self.intent, wanted != intent { return false }
        if !databases.isEmpty {
            let db = (database ?? "").lowercased()
            guard databases.contains(where: { $0.lowercased() == db }) else { return false }
        }
        if !roles.isEmpty {
            let held = Set(principalRoles.map { $0.lowercased() })
            guard roles.contains(where: { held.contains($0.lowercased()) }) else { return false }
        }
        return true
    }
}

/// Rules in order; the first match decides, like the policy rules of the configuration.
public struct RoutingRules: Sendable, Hashable {
    public var rules: [RoutingRule]
    public var defaultOptions: RouteOptions

    public struct Match: Sendable, Hashable {
        /// nil when no rule matched and the defaults apply.
        public var rule: String?
        public var options: RouteOptions
    }

    public init(_ rules: [RoutingRule] = [], defaultOptions: RouteOptions = RouteOptions()) {
        self.rules = rules
        self.defaultOptions = defaultOptions
    }

    public func match(intent: SessionIntent, database: String?, principalRoles: Set<String>) -> Match {
        for rule in rules where rule.matches(intent: intent, database: database, principalRoles: principalRoles) {
            return Match(rule: rule.name, options: rule.options)
        }
        return Match(rule: nil, options: defaultOptions)
    }
}
