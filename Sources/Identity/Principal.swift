/// Who a client is, once authenticated: what policy decisions are made on.
public struct Principal: Sendable, Hashable, CustomStringConvertible {
    public enum Method: String, Sendable, Hashable, CaseIterable {
        case sqlLogin = "sql_login"
        case entraToken = "entra_token"
        case kerberos
    }

    public var method: Method
    /// The login name; the UPN or app ID for Entra tokens; `user@REALM` for Kerberos.
    public var name: String
    /// Entra object ID (`oid`).
    public var objectID: String?
    /// Entra tenant ID (`tid`).
    public var tenantID: String?
    /// Entra application ID (`appid` / `azp`).
    public var appID: String?
    /// `upn` or `preferred_username`.
    public var upn: String?
    /// Group object IDs (`groups` claim).
    public var groups: [String]
    /// App roles (`roles` claim).
    public var roles: [String]
    /// The ticket's client principal (`alice@CORP.EXAMPLE`) for Kerberos logins; `name` is
    /// what the listener's name rules made of it.
    public var kerberosPrincipal: String?

    public init(
        method: Method = .sqlLogin,
        name: String = "",
        objectID: String? = nil,
        tenantID: String? = nil,
        appID: String? = nil,
        upn: String? = nil,
        groups: [String] = [],
        roles: [String] = [],
        kerberosPrincipal: String? = nil
    ) {
        self.method = method
        self.name = name
        self.objectID = objectID
        self.tenantID = tenantID
        self.appID = appID
        self.upn = upn
        self.groups = groups
        self.roles = roles
        self.kerberosPrincipal = kerberosPrincipal
    }

    /// `'name' (method)`, plus the object ID for Entra principals. Never holds a credential.
    public var description: String {
        var text = "'\(self.name)' (\(self.method.rawValue)"
        if let objectID = self.objectID, self.method == .entraToken, objectID != self.name {
            text += ", oid \(objectID)"
        }
        if let k = kerberosPrincipal, k != self.name {
            text += ", \(k)"
        }
        return text + ")"
    }
}
