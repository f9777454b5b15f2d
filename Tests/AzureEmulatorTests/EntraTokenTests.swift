import AzureEmulator
import Foundation
import Testing
import HTTPServerKit

/// Decodes a JWT part without verifying anything (test helper).
func decodeJWTPart(_ token: String, _ index: Int) throws -> JSONValue {
    let parts = token.split(separator: ".", omittingEmptySubsequences: false)
    var text = String(parts[index]).replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
    while text.count % 4 != 0 { text += "=" }
    let data = try #require(Data(base64Encoded: text))
    return try JSONValue(parsing: data)
}

@Suite("Entra identities and tokens")
struct EntraTokenTests {
    static let tenantID = "3f1d2c4b-aaaa-4bbb-8ccc-0123456789ab"

    static let tenant = EmulatedTenant(
        tenantID: tenantID,
        identities: [
            EmulatedIdentity(name: "vm", kind: .systemAssigned),
            EmulatedIdentity(name: "uami", kind: .userAssigned, roles: ["Reader"]),
            EmulatedIdentity(name: "ci", kind: .servicePrincipal, secret: "s3cret"),
            EmulatedIdentity(name: "Alice", kind: .user, upn: "alice@contoso.example", groups: ["g-1", "g-2"]),
        ],
        tokenLifetime: 1800
    )

    /// One issuer (RSA key generation is the slow part) shared by the tests of this suite.
    static let issuer: EntraTokenIssuer = {
        do { return try EntraTokenIssuer(tenant: tenant) } catch { fatalError("issuer: \(error)") }
    }()

    static func identity(_ name: String) -> EmulatedIdentity {
        tenant.identity(named: name)!
    }

    @Test func identitiesDecodeFromYAMLWithDefaults() throws {
        let yaml = """
            tenant_id: 11111111-2222-3333-4444-555555555555
            token_lifetime_seconds: 600
            subscription_id: aaaaaaaa-0000-0000-0000-000000000001
            resource_group: sql-rg
            identities:
              - name: vm-identity
                kind: system_assigned
              - name: app-identity
                kind: user_assigned
                client_id: 0b8a3c1e-1111-4222-8333-444455556666
                object_id: 9c7d5e3f-1111-4222-8333-444455556666
                roles: [SQL.Reader]
                federated_subjects: ["system:serviceaccount:default:app"]
              - name: ci-app
                kind: service_principal
                secret: hunter2
              - name: Alice
                kind: user
                upn: alice@contoso.example
                groups: [admins]
            """
        let tenant = try EmulatedTenant(yaml: yaml)
        #expect(tenant.tenantID == "11111111-2222-3333-4444-555555555555")
        #expect(tenant.tokenLifetime == 600)
        #expect(tenant.identities.count == 4)
        let vm = try #require(tenant.identity(named: "vm-identity"))
        #expect(vm.kind == .systemAssigned)
        #expect(vm.groups.isEmpty && vm.roles.isEmpty && vm.federatedSubjects.isEmpty)
        #expect(vm.clientID.count == 36 && vm.objectID.count == 36 && vm.clientID != vm.objectID)
        #expect(
            vm.resourceID
                == "/subscriptions/aaaaaaaa-0000-0000-0000-000000000001/resourcegroups/sql-rg/providers/Microsoft.Compute/virtualMachines/vm-identity"
        )
        #expect(tenant.systemAssignedIdentity == vm)
        let app = try #require(tenant.identity(named: "app-identity"))
        #expect(app.clientID == "0b8a3c1e-1111-4222-8333-444455556666")
        #expect(app.roles == ["SQL.Reader"])
        #expect(app.federatedSubjects == ["system:serviceaccount:default:app"])
        #expect(
            app.resourceID
                == "/subscriptions/aaaaaaaa-0000-0000-0000-000000000001/resourcegroups/sql-rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/app-identity"
        )
        #expect(tenant.identity(named: "ci-app")?.secret == "hunter2")
        #expect(tenant.identity(named: "ci-app")?.resourceID == nil)
        #expect(tenant.identity(named: "Alice")?.groups == ["admins"])

        // Derived IDs are stable across parses.
        #expect(try EmulatedTenant(yaml: yaml).identity(named: "vm-identity")?.clientID == vm.clientID)

        // JSON with the same keys, and a round trip through the encoder.
        let json = #"{"tenant_id":"t","identities":[{"name":"x","kind":"service_principal","client_id":"c","object_id":"o"}]}"#
        let fromJSON = try JSONDecoder().decode(EmulatedTenant.self, from: Data(json.utf8))
        #expect(fromJSON.tokenLifetime == 3600)
        #expect(fromJSON.identities.first?.clientID == "c")
        let reencoded = try JSONDecoder().decode(EmulatedTenant.self, from: JSONEncoder().encode(tenant))
        #expect(reencoded == tenant)

        #expect(throws: (any Error).self) {
            _ = try EmulatedTenant(yaml: "identities: [{name: x, kind: robot}]")
        }
    }

    @Test func roundTripForEveryKindOfIdentity() throws {
        let issuer = Self.issuer
        let verifier = issuer.verifier()
        let now = Date()
        for identity in Self.tenant.identities {
            let issued = try issuer.issueAccessToken(for: identity, audience: "https://database.windows.net/", now: now)
            #expect(issued.expiresOn.timeIntervalSince(now) > 1790 && issued.expiresOn.timeIntervalSince(now) <= 1800)
            #expect(issued.notBefore < now)
            let verified = try verifier.verify(issued.token, now: now)
            #expect(verified.oid == identity.objectID)
            #expect(verified.tid == Self.tenantID)
            #expect(verified.issuer == "https://sts.windows.net/\(Self.tenantID)/")
            #expect(verified.audience == "https://database.windows.net/")
            #expect(abs(verified.expiresOn.timeIntervalSince(issued.expiresOn)) < 1)
            #expect(verified.groups == identity.groups)
            #expect(verified.roles == identity.roles)
            #expect(verified.sqlPrincipalName == identity.sqlPrincipalName(tenantID: Self.tenantID))
            #expect(verified.claims["ver"] == "1.0")

            let header = try decodeJWTPart(issued.token, 0)
            #expect(header["alg"] == "RS256")
            #expect(header["typ"] == "JWT")
            #expect(header["kid"] == .string(issuer.keyID))
            #expect(header["x5t"] == .string(issuer.keyID))

            switch identity.kind {
            case .user:
                #expect(verified.identityType == "user")
                #expect(!verified.isApplication)
                #expect(verified.upn == "alice@contoso.example")
                #expect(verified.name == "Alice")
                #expect(verified.appid == EntraTokenIssuer.defaultPublicClientID)
                #expect(verified.sqlPrincipalName == "alice@contoso.example")
                #expect(verified.claims["scp"] == "user_impersonation")
                #expect(verified.claims["xms_mirid"] == nil)
            case .systemAssigned, .userAssigned, .servicePrincipal:
                #expect(verified.identityType == "app")
                #expect(verified.isApplication)
                #expect(verified.appid == identity.clientID)
                #expect(verified.upn == nil)
                #expect(verified.claims["sub"] == .string(identity.objectID))
                #expect(verified.sqlPrincipalName == "\(identity.clientID)@\(Self.tenantID)")
                if identity.isManagedIdentity {
                    #expect(verified.claims["appidacr"] == "2")
                    #expect(verified.claims["xms_mirid"] == identity.resourceID.map(JSONValue.string))
                } else {
                    #expect(verified.claims["appidacr"] == "1")
                    #expect(verified.claims["xms_mirid"] == nil)
                }
            }
        }
        let uami = Self.identity("uami")
        let token = try issuer.issueAccessToken(for: uami, audience: "https://database.windows.net/", now: now).token
        let claims = try decodeJWTPart(token, 1)
        #expect(
            claims["xms_mirid"]
                == "/subscriptions/00000000-0000-0000-0000-000000000000/resourcegroups/rg/providers/Microsoft.ManagedIdentity/userAssignedIdentities/uami"
        )
    }

    @Test func audienceWithOrWithoutTrailingSlash() throws {
        let issuer = Self.issuer
        let identity = Self.identity("vm")
        let withSlash = try issuer.issueAccessToken(for: identity, audience: "https://database.windows.net/").token
        let withoutSlash = try issuer.issueAccessToken(for: identity, audience: "https://database.windows.net").token
        for audience in ["https://database.windows.net/", "https://database.windows.net"] {
            let verifier = issuer.verifier(audience: audience)
            #expect(throws: Never.self) { try verifier.verify(withSlash) }
            #expect(throws: Never.self) { try verifier.verify(withoutSlash) }
        }
        // An array audience matches when any element does.
        var claims = issuer.claims(for: identity, audience: "x")
        claims["aud"] = ["https://other.example/", "https://database.windows.net"]
        let multi = try issuer.issueCustom(claims: claims)
        #expect(try issuer.verifier().verify(multi).audience == "https://database.windows.net")
        // Another resource is refused.
        let arm = try issuer.issueAccessToken(for: identity, audience: "https://management.azure.com/").token
        #expect(throws: EntraTokenError.wrongAudience("https://management.azure.com/")) {
            try issuer.verifier().verify(arm)
        }
    }

    @Test(arguments: EntraBadTokenKind.allCases)
    func everyBadTokenIsRefusedWithTheRightError(kind: EntraBadTokenKind) throws {
        let issuer = Self.issuer
        let verifier = issuer.verifier()
        let now = Date()
        let token = try issuer.issueBadToken(kind, for: Self.identity("uami"), now: now)
        do {
            let verified = try verifier.verify(token, now: now)
            Issue.record("\(kind) was accepted: \(verified.claims)")
        } catch {
            let matches: Bool
            switch (kind, error) {
            case (.wrongAudience, .wrongAudience): matches = true
            case (.wrongIssuer, .wrongIssuer): matches = true
            case (.wrongTenant, .wrongTenant): matches = true
            case (.expired, .expired): matches = true
            case (.notYetValid, .notYetValid): matches = true
            case (.foreignKey, .badSignature): matches = true
            case (.unknownKeyID, .unknownKeyID("unknown-key-id")): matches = true
            case (.algNone, .unsupportedAlgorithm("none")): matches = true
            case (.hs256, .unsupportedAlgorithm("HS256")): matches = true
            case (.hs256WithPublicKey, .unsupportedAlgorithm("HS256")): matches = true
            case (.tamperedPayload, .badSignature): matches = true
            case (.malformed, .malformed): matches = true
            case (.missingExpiry, .malformed): matches = true
            default: matches = false
            }
            #expect(matches, "\(kind) gave \(error)")
            #expect(!error.message.isEmpty)
            #expect(error.description == error.message)
        }
    }

    @Test func clockSkewIsFiveMinutes() throws {
        let issuer = Self.issuer
        let verifier = issuer.verifier()
        #expect(verifier.clockSkew == 300)
        let issuedAt = Date(timeIntervalSince1970: 1_750_000_000)
        let token = try issuer.issueAccessToken(for: Self.identity("ci"), audience: "https://database.windows.net/", now: issuedAt)
        #expect(throws: Never.self) { try verifier.verify(token.token, now: token.expiresOn.addingTimeInterval(299)) }
        #expect(throws: EntraTokenError.expired(token.expiresOn)) {
            try verifier.verify(token.token, now: token.expiresOn.addingTimeInterval(301))
        }
        // nbf is back-dated 5 minutes like Entra's, so the token is usable at once and up to 10 min early.
        #expect(token.notBefore == issuedAt.addingTimeInterval(-300))
        #expect(throws: Never.self) { try verifier.verify(token.token, now: issuedAt.addingTimeInterval(-599)) }
        #expect(throws: EntraTokenError.notYetValid(token.notBefore)) {
            try verifier.verify(token.token, now: issuedAt.addingTimeInterval(-601))
        }
        let strict = issuer.verifier(clockSkew: 0)
        #expect(throws: EntraTokenError.expired(token.expiresOn)) {
            try strict.verify(token.token, now: token.expiresOn)
        }
    }

    @Test func verifierFromJWKSJSONAndKeyStability() throws {
        let issuer = Self.issuer
        let jwks = try JSONValue(parsing: issuer.jwksJSON)
        let key = try #require(jwks["keys"]?.arrayValue?.first)
        #expect(key["kty"] == "RSA")
        #expect(key["use"] == "sig")
        #expect(key["kid"] == .string(issuer.keyID))
        #expect(key["x5t"] == .string(issuer.keyID))
        #expect(key["e"] == "AQAB")
        #expect((key["n"]?.stringValue?.count ?? 0) >= 342)  // 2048-bit modulus
        #expect(key["x5c"]?.arrayValue?.count == 1)

        let verifier = try EntraTokenVerifier(jwksJSON: issuer.jwksJSON, tenantID: Self.tenantID)
        #expect(verifier.keyIDs == [issuer.keyID])
        let token = try issuer.issueAccessToken(for: Self.identity("Alice"), audience: "https://database.windows.net/").token
        #expect(try verifier.verify(token).upn == "alice@contoso.example")

        // The same key gives the same kid; a verifier for another tenant refuses the token.
        let again = try EntraTokenIssuer(tenantID: Self.tenantID, signingKeyPEM: issuer.signingKeyPEM)
        #expect(again.keyID == issuer.keyID)
        #expect(again.jwks == issuer.jwks)
        #expect(throws: EntraTokenError.self) {
            try EntraTokenVerifier(jwks: issuer.jwks, tenantID: "00000000-1111-2222-3333-444444444444").verify(token)
        }
        // v2 issuer accepted too.
        var claims = issuer.claims(for: Self.identity("ci"), audience: "https://database.windows.net/")
        claims["iss"] = .string("https://login.microsoftonline.com/\(Self.tenantID)/v2.0")
        claims["ver"] = "2.0"
        #expect(throws: Never.self) { try verifier.verify(try issuer.issueCustom(claims: claims)) }
    }

    @Test func sqlPrincipalNameRules() {
        let tid = Self.tenantID
        #expect(EntraTokenVerifier.sqlPrincipalName(claims: ["upn": "bob@x.example", "appid": "a", "tid": .string(tid)]) == "bob@x.example")
        #expect(
            EntraTokenVerifier.sqlPrincipalName(claims: ["idtyp": "app", "appid": "app-1", "oid": "o", "tid": .string(tid)])
                == "app-1@\(tid)"
        )
        #expect(EntraTokenVerifier.sqlPrincipalName(claims: ["appid": "app-1", "oid": "o"]) == "app-1")
        #expect(EntraTokenVerifier.sqlPrincipalName(claims: ["idtyp": "user", "appid": "cli", "oid": "o-1"]) == "o-1")
        #expect(EntraTokenVerifier.sqlPrincipalName(claims: ["unique_name": "live.com#g@outlook.com", "appid": "cli"]) == "live.com#g@outlook.com")
        #expect(EntraTokenVerifier.sqlPrincipalName(claims: ["oid": "o-2"]) == "o-2")
    }

    @Test func customTokensAndHeaders() throws {
        let issuer = Self.issuer
        let token = try issuer.issueCustom(
            claims: ["aud": "https://database.windows.net/", "iss": .string(issuer.issuerURL), "exp": 1],
            header: ["x5t": nil, "typ": "at+jwt"]
        )
        let header = try decodeJWTPart(token, 0)
        #expect(header["x5t"] == nil)
        #expect(header["typ"] == "at+jwt")
        #expect(header["kid"] == .string(issuer.keyID))
        #expect(throws: EntraTokenError.expired(Date(timeIntervalSince1970: 1))) {
            try issuer.verifier().verify(token)
        }
        let none = try issuer.issueCustom(claims: ["a": 1], signing: .algNone)
        #expect(none.hasSuffix("."))
        #expect(try decodeJWTPart(none, 0)["alg"] == "none")
    }
}
