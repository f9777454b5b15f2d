import AzureEmulator
import Foundation
import Testing

@testable import Identity

@Suite struct EntraTokenValidatorTests {
    static let audience = "https://database.windows.net/"

    static func validator(_ fixture: EmulatorFixture, audiences: [String] = [audience]) -> EntraTokenValidator {
        EntraTokenValidator(
            settings: EntraValidationSettings(tenantID: fixture.tenantID, audiences: audiences, jwksURL: fixture.jwksURL),
            httpClient: httpClient
        )
    }

    /// The validation error's reason for `token`, checking that it never quotes the token.
    static func reason(_ validator: EntraTokenValidator, _ token: String, now: Date = Date()) async -> String {
        do {
            let principal = try await validator.validate(token, now: now)
            Issue.record("accepted: \(principal)")
            return ""
        } catch let error as EntraValidationError {
            #expect(!error.reason.contains(token))
            if let signature = token.split(separator: ".").last, signature.count > 10 {
                #expect(!error.reason.contains(signature))
            }
            return error.reason
        } catch {
            Issue.record("unexpected \(error)")
            return ""
        }
    }

    @Test func acceptsGoodTokens() async throws {
        try await withEmulator { fixture async throws in
            let validator = Self.validator(fixture)
            let alice = fixture.identity("Alice Example")
            let token = try fixture.entra.issuer.issueAccessToken(for: alice, audience: Self.audience).token
            let principal = try await validator.validate(token)
            #expect(principal.method == .entraToken)
            #expect(principal.name == "alice@contoso.example")
            #expect(principal.upn == "alice@contoso.example")
            #expect(principal.objectID == alice.objectID)
            #expect(principal.tenantID == fixture.tenantID)
            #expect(principal.groups == alice.groups)
            #expect(principal.appID == EntraTokenIssuer.defaultPublicClientID)

            let app = fixture.identity("ci-app")
            let appToken = try fixture.entra.issuer.issueAccessToken(for: app, audience: "https://database.windows.net").token
            let appPrincipal = try await validator.validate(appToken)
            #expect(appPrincipal.name == app.clientID)
            #expect(appPrincipal.appID == app.clientID)
            #expect(appPrincipal.upn == nil)
            #expect(appPrincipal.roles == ["SQL.Writer"])
            // The JWKS was fetched once and cached.
            #expect(await validator.jwksFetchCount == 1)
            #expect(fixture.entra.requestCount(.jwks) == 1)
        }
    }

    @Test func acceptsV2TokensWithPreferredUsernameAndAzp() async throws {
        try await withEmulator { fixture async throws in
            let validator = Self.validator(fixture)
            var claims = fixture.entra.issuer.claims(for: fixture.identity("Alice Example"), audience: Self.audience)
            claims["iss"] = .string("https://login.microsoftonline.com/\(fixture.tenantID)/v2.0")
            claims["ver"] = "2.0"
            claims.removeValue(forKey: "upn")
            claims.removeValue(forKey: "unique_name")
            claims.removeValue(forKey: "appid")
            claims["preferred_username"] = "alice@contoso.example"
            claims["azp"] = "client-app"
            claims["aud"] = .strings(["api://other", "https://DATABASE.windows.net"])
            let token = try fixture.entra.issuer.issueCustom(claims: claims)
            let principal = try await validator.validate(token)
            #expect(principal.name == "alice@contoso.example")
            #expect(principal.appID == "client-app")
        }
    }

    @Test func rejectsBadTokens() async throws {
        try await withEmulator { fixture async throws in
            let validator = Self.validator(fixture)
            let issuer = fixture.entra.issuer
            let alice = fixture.identity("Alice Example")
            func reasonFor(_ kind: EntraBadTokenKind) async throws -> String {
                await Self.reason(validator, try issuer.issueBadToken(kind, for: alice, audience: Self.audience))
            }
            #expect(try await reasonFor(.foreignKey) == "token signature does not verify")
            #expect(try await reasonFor(.tamperedPayload) == "token signature does not verify")
            #expect(try await reasonFor(.wrongAudience) == "audience 'https://management.azure.com/' is not accepted")
            #expect(try await reasonFor(.expired).hasPrefix("token expired at "))
            #expect(try await reasonFor(.notYetValid).hasPrefix("token is not valid before "))
            #expect(try await reasonFor(.algNone) == "alg 'none' is not allowed (only RS256)")
            #expect(try await reasonFor(.hs256) == "alg 'HS256' is not allowed (only RS256)")
            #expect(try await reasonFor(.hs256WithPublicKey) == "alg 'HS256' is not allowed (only RS256)")
            #expect(try await reasonFor(.wrongIssuer).hasPrefix("issuer 'https://sts.windows.net/00000000-dead-beef"))
            #expect(try await reasonFor(.wrongTenant).hasPrefix("tenant '00000000-dead-beef"))
            #expect(try await reasonFor(.missingExpiry) == "the token has no 'exp' claim")
            #expect(try await reasonFor(.malformed).contains("not a JWT"))
            let noKid = try issuer.issueCustom(
                claims: issuer.claims(for: alice, audience: Self.audience),
                header: ["kid": .null]
            )
            #expect(await Self.reason(validator, noKid) == "the token header names no signing key ('kid')")
            // None of the refusals needed another JWKS download.
            #expect(fixture.entra.requestCount(.jwks) == 1)
        }
    }

    @Test func clockSkewIsAllowed() async throws {
        try await withEmulator { fixture async throws in
            let validator = Self.validator(fixture)
            let now = Date()
            let token = try fixture.entra.issuer.issueAccessToken(for: fixture.identity("vm-identity"), audience: Self.audience, now: now).token
            // Expired 4 minutes ago: inside the 5-minute skew.
            _ = try await validator.validate(token, now: now + 3600 + 240)
            #expect(await Self.reason(validator, token, now: now + 3600 + 301).hasPrefix("token expired at"))
        }
    }

    @Test func unknownKeyIDRefetchesTheJWKSAtMostOncePer30Seconds() async throws {
        try await withEmulator { fixture async throws in
            let validator = Self.validator(fixture)
            let alice = fixture.identity("Alice Example")
            let now = Date()
            let unknown = try fixture.entra.issuer.issueBadToken(.unknownKeyID, for: alice, audience: Self.audience, now: now)
            // First sight: the JWKS is loaded, the key is not in it; the load was just now, so no refetch.
            #expect(await Self.reason(validator, unknown, now: now).hasPrefix("signing key 'unknown-key-id' is not in the JWKS"))
            #expect(fixture.entra.requestCount(.jwks) == 1)
            #expect(await Self.reason(validator, unknown, now: now + 10).hasPrefix("signing key 'unknown-key-id'"))
            #expect(fixture.entra.requestCount(.jwks) == 1)
            // 31 s later an unknown kid triggers one refetch...
            #expect(await Self.reason(validator, unknown, now: now + 31).hasPrefix("signing key 'unknown-key-id'"))
            #expect(fixture.entra.requestCount(.jwks) == 2)
            // ...and not another right away.
            #expect(await Self.reason(validator, unknown, now: now + 32).hasPrefix("signing key 'unknown-key-id'"))
            #expect(fixture.entra.requestCount(.jwks) == 2)
            // Known keys keep working without fetching.
            let good = try fixture.entra.issuer.issueAccessToken(for: alice, audience: Self.audience, now: now).token
            _ = try await validator.validate(good, now: now + 33)
            #expect(fixture.entra.requestCount(.jwks) == 2)
        }
    }

    @Test func keyRolloverIsPickedUpFromAFile() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let tenant = EmulatedTenant.demo()
        let oldIssuer = try EntraTokenIssuer(tenant: tenant)
        let newIssuer = try EntraTokenIssuer(tenant: tenant)
        let file = directory.appendingPathComponent("jwks.json")
        try Data(oldIssuer.jwksJSON.utf8).write(to: file)
        let validator = EntraTokenValidator(
            settings: EntraValidationSettings(tenantID: tenant.tenantID, audiences: [Self.audience], jwksFile: file.path),
            httpClient: httpClient
        )
        let identity = try #require(tenant.identity(named: "vm-identity"))
        let now = Date()
        _ = try await validator.validate(try oldIssuer.issueAccessToken(for: identity, audience: Self.audience, now: now).token, now: now)
        // The tenant rolls its key: the file gets the new key; a token signed with it is
        // accepted once the refetch interval has passed.
        try Data(oldIssuer.jwks.merging(newIssuer.jwks).json.utf8).write(to: file)
        let rolled = try newIssuer.issueAccessToken(for: identity, audience: Self.audience, now: now).token
        _ = try await validator.validate(rolled, now: now + 31)
        #expect(await validator.jwksFetchCount == 2)
    }

    @Test func misconfigurationIsReported() async {
        let validator = EntraTokenValidator(settings: EntraValidationSettings(), httpClient: httpClient)
        let reason = await Self.reason(validator, "a.b.c")
        #expect(reason.contains("no audiences are configured"))
        #expect(reason.contains("no issuers"))
        let settings = EntraValidationSettings(tenantID: "t", audiences: ["a"])
        #expect(settings.effectiveIssuers == ["https://sts.windows.net/t/", "https://login.microsoftonline.com/t/v2.0"])
        #expect(settings.effectiveJWKSSource == "https://login.microsoftonline.com/t/discovery/v2.0/keys")
        #expect(settings.problems.isEmpty)
    }
}
