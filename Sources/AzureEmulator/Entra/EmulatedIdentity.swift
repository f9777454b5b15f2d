import Foundation
import Yams

/// An identity of the emulated Entra tenant: a managed identity, a service principal or a user.
///
/// Decodes from YAML/JSON with snake_case keys:
/// ```yaml
/// - name: app-identity
///   kind: user_assigned          # system_assigned | user_assigned | service_principal | user
///   client_id: 11111111-...      # optional: derived from kind+name when missing
///   object_id: 22222222-...      # optional: derived likewise
///   resource_id: /subscriptions/.../userAssignedIdentities/app-identity   # optional
///   upn: alice@contoso.example   # users
///   secret: s3cret               # service principal client secret, or a user's password
///   groups: [g1]                 # optional, default []
///   roles: [Reader]              # optional, default []
///   federated_subjects: [system:serviceaccount:default:app]   # optional, default []
/// ```
public struct EmulatedIdentity: Sendable, Hashable, Codable {
    public enum Kind: String, Sendable, Hashable, Codable, CaseIterable {
        case systemAssigned = "system_assigned"
        case userAssigned = "user_assigned"
        case servicePrincipal = "service_principal"
        case user = "user"
    }

    public var name: String
    public var kind: Kind
    /// Application (client) ID: `appid` in tokens. For users, the emulator still gives one (unused).
    public var clientID: String
    /// Object (principal) ID: `oid` in tokens.
    public var objectID: String
    /// ARM resource ID: the identity's resource for user-assigned identities, the hosting
    /// resource (VM) for system-assigned ones. ``EmulatedTenant`` fills it for managed identities.
    public var resourceID: String?
    public var upn: String?
    /// A service principal's client secret, or a user's password (for the password grant).
    public var secret: String?
    /// Group object IDs (`groups` claim).
    public var groups: [String]
    /// App roles (`roles` claim).
    public var roles: [String]
    /// Subjects (`sub` of a presented client assertion) accepted as federated credentials of this
    /// identity, e.g. `system:serviceaccount:default:app` for AKS workload identity.
    public var federatedSubjects: [String]

    public init(
        name: String,
        kind: Kind,
        clientID: String? = nil,
        objectID: String? = nil,
        resourceID: String? = nil,
        upn: String? = nil,
        secret: String? = nil,
        groups: [String] = [],
        roles: [String] = [],
        federatedSubjects: [String] = []
    ) {
        self.name = name
        self.kind = kind
        self.clientID = clientID ?? EntraIDs.deterministicUUID("tdsgate-emulator|\(kind.rawValue)|\(name)|client_id")
        self.objectID = objectID ?? EntraIDs.deterministicUUID("tdsgate-emulator|\(kind.rawValue)|\(name)|object_id")
        self.resourceID = resourceID
        self.upn = upn
        self.secret = secret
        self.groups = groups
        self.roles = roles
        self.federatedSubjects = federatedSubjects
    }

    enum CodingKeys: String, CodingKey {
        case name, kind, upn, secret, groups, roles
        case clientID = "client_id"
        case objectID = "object_id"
        case resourceID = "resource_id"
        case federatedSubjects = "federated_subjects"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            name: try container.decode(String.self, forKey: .name),
            kind: try container.decode(Kind.self, forKey: .kind),
            clientID: try container.decodeIfPresent(String.self, forKey: .clientID),
            objectID: try container.decodeIfPresent(String.self, forKey: .objectID),
            resourceID: try container.decodeIfPresent(String.self, forKey: .resourceID),
            upn: try container.decodeIfPresent(String.self, forKey: .upn),
            secret: try container.decodeIfPresent(String.self, forKey: .secret),
            groups: try container.decodeIfPresent([String].self, forKey: .groups) ?? [],
            roles: try container.decodeIfPresent([String].self, forKey: .roles) ?? [],
            federatedSubjects: try container.decodeIfPresent([String].self, forKey: .federatedSubjects) ?? []
        )
    }

    public var isManagedIdentity: Bool {
        self.kind == .systemAssigned || self.kind == .userAssigned
    }

    /// `idtyp` in access tokens: "user" for users, "app" for everything else.
    public var identityType: String {
        self.kind == .user ? "user" : "app"
    }

    /// What Azure SQL's `SUSER_SNAME()` shows for this identity in `tenantID`
    /// (see ``EntraTokenVerifier/sqlPrincipalName(claims:)``).
    public func sqlPrincipalName(tenantID: String) -> String {
        if self.kind == .user {
            return self.upn ?? self.objectID
        }
        return "\(self.clientID)@\(tenantID)"
    }

    /// The ARM resource ID Azure would give a managed identity named `name`.
    public static func defaultResourceID(
        kind: Kind,
        name: String,
        subscriptionID: String,
        resourceGroup: String
    ) -> String? {
        switch kind {
        case .userAssigned:
            return "/subscriptions/\(subscriptionID)/resourcegroups/\(resourceGroup)/providers/Microsoft.ManagedIdentity/userAssignedIdentities/\(name)"
        case .systemAssigned:
            return "/subscriptions/\(subscriptionID)/resourcegroups/\(resourceGroup)/providers/Microsoft.Compute/virtualMachines/\(name)"
        case .servicePrincipal, .user:
            return nil
        }
    }
}

/// The emulated Entra tenant: its ID, identities and token lifetime.
///
/// YAML/JSON keys: `tenant_id`, `identities`, `token_lifetime_seconds` (default 3600),
/// `subscription_id` (default all zeros), `resource_group` (default `rg`).
public struct EmulatedTenant: Sendable, Hashable, Codable {
    public static let defaultTenantID = "8b4f6c2a-5d1e-4a7b-9c3d-2e6f1a0b7c9d"
    public static let defaultSubscriptionID = "00000000-0000-0000-0000-000000000000"

    public var tenantID: String
    /// Identities, with `resource_id` filled in for managed identities that had none.
    public var identities: [EmulatedIdentity]
    /// Lifetime of issued access tokens, in seconds.
    public var tokenLifetime: TimeInterval
    public var subscriptionID: String
    public var resourceGroup: String

    public init(
        tenantID: String = EmulatedTenant.defaultTenantID,
        identities: [EmulatedIdentity],
        tokenLifetime: TimeInterval = 3600,
        subscriptionID: String = EmulatedTenant.defaultSubscriptionID,
        resourceGroup: String = "rg"
    ) {
        self.tenantID = tenantID
        self.tokenLifetime = tokenLifetime
        self.subscriptionID = subscriptionID
        self.resourceGroup = resourceGroup
        self.identities = identities.map { identity in
            var identity = identity
            if identity.resourceID == nil {
                identity.resourceID = EmulatedIdentity.defaultResourceID(
                    kind: identity.kind,
                    name: identity.name,
                    subscriptionID: subscriptionID,
                    resourceGroup: resourceGroup
                )
            }
            return identity
        }
    }

    enum CodingKeys: String, CodingKey {
        case identities
        case tenantID = "tenant_id"
        case tokenLifetime = "token_lifetime_seconds"
        case subscriptionID = "subscription_id"
        case resourceGroup = "resource_group"
    }

    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            tenantID: try container.decodeIfPresent(String.self, forKey: .tenantID) ?? EmulatedTenant.defaultTenantID,
            identities: try container.decodeIfPresent([EmulatedIdentity].self, forKey: .identities) ?? [],
            tokenLifetime: try container.decodeIfPresent(TimeInterval.self, forKey: .tokenLifetime) ?? 3600,
            subscriptionID: try container.decodeIfPresent(String.self, forKey: .subscriptionID)
                ?? EmulatedTenant.defaultSubscriptionID,
            resourceGroup: try container.decodeIfPresent(String.self, forKey: .resourceGroup) ?? "rg"
        )
    }

    /// Parses a tenant from YAML (same keys as JSON).
    public init(yaml: String) throws {
        self = try YAMLDecoder().decode(EmulatedTenant.self, from: yaml)
    }

    public func identity(named name: String) -> EmulatedIdentity? {
        self.identities.first(where: { $0.name == name })
    }

    /// The first system-assigned identity: what IMDS and App Service return without a selector.
    public var systemAssignedIdentity: EmulatedIdentity? {
        self.identities.first(where: { $0.kind == .systemAssigned })
    }

    /// A ready-made tenant for demos and tests: a system-assigned identity `vm-identity`,
    /// a user-assigned `app-identity` (federated subject `system:serviceaccount:default:app`),
    /// a service principal `ci-app` (secret `ci-app-secret`) and a user `alice@contoso.example`
    /// (password `alice-password`, group `sql-admins`).
    public static func demo(tenantID: String = EmulatedTenant.defaultTenantID) -> EmulatedTenant {
        EmulatedTenant(
            tenantID: tenantID,
            identities: [
                EmulatedIdentity(name: "vm-identity", kind: .systemAssigned),
                EmulatedIdentity(
                    name: "app-identity",
                    kind: .userAssigned,
                    federatedSubjects: ["system:serviceaccount:default:app"]
                ),
                EmulatedIdentity(name: "ci-app", kind: .servicePrincipal, secret: "ci-app-secret", roles: ["SQL.Writer"]),
                EmulatedIdentity(
                    name: "Alice Example",
                    kind: .user,
                    upn: "alice@contoso.example",
                    secret: "alice-password",
                    groups: [EntraIDs.deterministicUUID("tdsgate-emulator|group|sql-admins")]
                ),
            ]
        )
    }
}
