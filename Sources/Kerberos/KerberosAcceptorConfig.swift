import Foundation

/// Which client realms an acceptor lets in.
///
/// There is deliberately no default: a keytab's KDC may trust other realms (cross-realm
/// trusts), and a ticket from any of them would decrypt with our key. So the operator
/// names the realms (`.only`), or says in so many words that any realm the KDC vouches
/// for is fine (`.anyRealm`). Realm names compare exactly (Kerberos realms are
/// case-sensitive).
public enum KerberosRealmPolicy: Sendable, Hashable {
    case only([String])
    case anyRealm

    func accepts(_ realm: String) -> Bool {
        switch self {
        case .anyRealm: return true
        case .only(let realms): return realms.contains(realm)
        }
    }
}

/// Everything one acceptor needs; immutable once built (rules are compiled in `init`).
public struct KerberosAcceptorConfig: Sendable {
    /// The service keytab (MIT FILE: format), e.g. with `MSSQLSvc/host:port@REALM` keys.
    /// Any principal in it is accepted as the target; it is re-read when the file changes.
    public var keytabPath: String
    public var acceptedRealms: KerberosRealmPolicy
    /// Ordered; first match wins. Empty: the mapped name is the full `user@REALM`.
    /// Not empty and nothing matches: the login is refused (`.noMappingRule`).
    public var nameRules: [KerberosNameRule]
    /// MIT replay cache name for the cred store ("none:", "file2:/path"); nil = the
    /// library default (a per-uid file under /var/tmp).
    public var replayCache: String?
    /// Most SSPI legs one login may take; Kerberos needs 1 (SPNEGO at most 2-3).
    public var maxSteps: Int

    public init(
        keytabPath: String,
        acceptedRealms: KerberosRealmPolicy,
        nameRules: [KerberosNameRule] = [],
        replayCache: String? = nil,
        maxSteps: Int = 5
    ) {
        self.keytabPath = keytabPath
        self.acceptedRealms = acceptedRealms
        self.nameRules = nameRules
        self.replayCache = replayCache
        self.maxSteps = maxSteps
    }

    /// The tdsgate principal name for `user@realm`, or nil when rules exist but none match.
    public func mapName(user: String, realm: String) -> String? {
        let principal = "\(user)@\(realm)"
        if nameRules.isEmpty { return principal }
        for rule in nameRules {
            if let name = rule.apply(user: user, realm: realm, principal: principal) { return name }
        }
        return nil
    }
}
