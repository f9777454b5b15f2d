/// One condition on a principal. A rule's conditions must all hold.
public enum PolicyMatch: Sendable, Hashable, CustomStringConvertible {
    /// A SQL login held by the proxy, by name (case-insensitive).
    case login(String)
    /// An Entra object ID (`oid`).
    case objectID(String)
    /// Membership of an Entra group (object ID in the `groups` claim).
    case group(String)
    /// An app role in the `roles` claim.
    case appRole(String)
    /// An Entra UPN; `*@contoso.com` matches every UPN in that domain.
    case upn(String)
    /// An Entra application ID (`appid` / `azp`).
    case appID(String)
    /// A Kerberos principal of this realm (`user@REALM`).
    case realm(String)
    /// One Kerberos principal (`user@REALM`, compared without case), whatever its mapped name.
    case kerberos(String)
    /// Any authenticated principal.
    case any

    public func holds(for principal: Principal) -> Bool {
        switch self {
        case .login(let name):
            return principal.method == .sqlLogin && Self.same(principal.name, name)
        case .objectID(let id):
            return principal.objectID.map { Self.same($0, id) } ?? false
        case .group(let group):
            return principal.groups.contains { Self.same($0, group) }
        case .appRole(let role):
            return principal.roles.contains { Self.same($0, role) }
        case .upn(let pattern):
            guard let upn = principal.upn else { return false }
            if pattern.hasPrefix("*@") {
                return upn.lowercased().hasSuffix(pattern.dropFirst().lowercased())
            }
            return Self.same(upn, pattern)
        case .appID(let id):
            return principal.appID.map { Self.same($0, id) } ?? false
        case .realm(let realm):
            guard principal.method == .kerberos else { return false }
            let full = principal.kerberosPrincipal ?? principal.name
            guard let at = full.lastIndex(of: "@") else { return false }
            // Realms are case-sensitive in Kerberos.
            return String(full[full.index(after: at)...]) == realm
        case .kerberos(let name):
            return principal.method == .kerberos && Self.same(principal.kerberosPrincipal ?? principal.name, name)
        case .any:
            return true
        }
    }

    public var description: String {
        switch self {
        case .login(let value): return "login=\(value)"
        case .objectID(let value): return "object_id=\(value)"
        case .group(let value): return "group=\(value)"
        case .appRole(let value): return "app_role=\(value)"
        case .upn(let value): return "upn=\(value)"
        case .appID(let value): return "app_id=\(value)"
        case .realm(let value): return "realm=\(value)"
        case .kerberos(let value): return "kerberos=\(value)"
        case .any: return "any"
        }
    }

    static func same(_ a: String, _ b: String) -> Bool {
        a.caseInsensitiveCompare(b) == .orderedSame
    }
}

/// Who (``match``) may reach what (``clusters``, ``databases``), how (``write``), and as
/// which backend identity.
public struct PolicyRule: Sendable, Hashable {
    public var name: String
    /// All must hold. An empty list matches nobody (write `[.any]` for everyone).
    public var match: [PolicyMatch]
    /// Cluster names; `"*"` means any.
    public var clusters: [String]
    /// Database names (case-insensitive); `"*"` means any.
    public var databases: [String]
    /// False: sessions are routed ReadOnly whatever the client asked.
    public var write: Bool
    /// The backend identity (a ``BackendIdentitySpec`` name) to log in with.
    public var backendIdentity: String
    /// Append the principal's name to the application name sent to the server.
    public var tagAppName: Bool
    /// Set the principal in the session's SESSION_CONTEXT; `nil` = the listener decides.
    public var sessionContext: Bool?
    /// The backend identity can only read in the database, so sessions that must not write
    /// may still be placed on the primary (the read fallback).
    public var backendIdentityReadOnly: Bool

    public init(
        name: String,
        match: [PolicyMatch] = [.any],
        clusters: [String] = ["*"],
        databases: [String] = ["*"],
        write: Bool = false,
        backendIdentity: String = "default",
        tagAppName: Bool = false,
        sessionContext: Bool? = nil,
        backendIdentityReadOnly: Bool = false
    ) {
        self.name = name
        self.match = match
        self.clusters = clusters
        self.databases = databases
        self.write = write
        self.backendIdentity = backendIdentity
        self.tagAppName = tagAppName
        self.sessionContext = sessionContext
        self.backendIdentityReadOnly = backendIdentityReadOnly
    }

    /// True when every condition of ``match`` holds (and there is at least one).
    public func matches(_ principal: Principal) -> Bool {
        !self.match.isEmpty && self.match.allSatisfy { $0.holds(for: principal) }
    }

    public func allows(cluster: String) -> Bool {
        self.clusters.contains { $0 == "*" || PolicyMatch.same($0, cluster) }
    }

    public func allows(database: String) -> Bool {
        self.databases.contains { $0 == "*" || PolicyMatch.same($0, database) }
    }
}

public enum PolicyDecision: Sendable, Equatable {
    /// `forceReadOnly`: the rule does not allow writes and the client asked for read-write,
    /// so the session must be routed with ReadOnly intent.
    case allowed(rule: PolicyRule, forceReadOnly: Bool)
    /// Says what was refused, e.g. "no policy rule lets 'app' reach database 'hr' on cluster 'orders'".
    case denied(reason: String)

    public var isAllowed: Bool {
        if case .allowed = self { return true }
        return false
    }
}

/// An ordered list of rules: the first rule whose match holds and that allows the cluster
/// and database wins. No match: denied.
public struct Policy: Sendable {
    public var rules: [PolicyRule]

    public init(rules: [PolicyRule]) {
        self.rules = rules
    }

    public func decide(principal: Principal, cluster: String, database: String, readOnlyIntent: Bool) -> PolicyDecision {
        var matchedAny = false
        for rule in self.rules where rule.matches(principal) {
            matchedAny = true
            guard rule.allows(cluster: cluster), rule.allows(database: database) else { continue }
            return .allowed(rule: rule, forceReadOnly: !rule.write && !readOnlyIntent)
        }
        guard matchedAny else {
            return .denied(reason: "no policy rule matches '\(principal.name)' (\(principal.method.rawValue))")
        }
        let target = database.isEmpty ? "the default database" : "database '\(database)'"
        return .denied(reason: "no policy rule lets '\(principal.name)' reach \(target) on cluster '\(cluster)'")
    }
}
