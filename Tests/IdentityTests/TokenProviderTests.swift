import AzureEmulator
import Foundation
import Testing

@testable import Identity

@Suite struct TokenProviderTests {
    static let resource = "https://database.windows.net/"

    static func tokenError(_ body: () async throws -> Void) async -> TokenError? {
        let error = await caught(body)
        guard let error else {
            Issue.record("no error")
            return nil
        }
        guard let tokenError = error as? TokenError else {
            Issue.record("not a TokenError: \(error)")
            return nil
        }
        return tokenError
    }

    // MARK: IMDS

    @Test func imdsSystemAndUserAssigned() async throws {
        try await withEmulator { fixture async throws in
            let vm = fixture.identity("vm-identity")
            let app = fixture.identity("app-identity")
            let system = try TokenProviders.make(
                BackendIdentitySpec(name: "vm", kind: .imds, endpoint: fixture.imdsURL, retry: fastRetry),
                httpClient: httpClient
            )
            #expect(system.label == "imds(system-assigned)")
            let before = Date()
            let token = try await system.fetchToken(resource: Self.resource)
            #expect(claims(of: token.token)["oid"] as? String == vm.objectID)
            #expect(claims(of: token.token)["aud"] as? String == Self.resource)
            #expect(token.expiresOn > before + 3000 && token.expiresOn < before + 3700)
            #expect(!token.description.contains(token.token))
            #expect(token.description.hasPrefix("<access token, \(token.token.utf8.count) chars, expires "))

            let selectors: [(BackendIdentitySpec, String)] = [
                (BackendIdentitySpec(name: "ua", kind: .imds, endpoint: fixture.imdsURL, clientID: app.clientID), "client_id"),
                (BackendIdentitySpec(name: "ua", kind: .imds, endpoint: fixture.imdsURL, objectID: app.objectID), "object_id"),
                (BackendIdentitySpec(name: "ua", kind: .imds, endpoint: fixture.imdsURL, resourceID: app.resourceID), "msi_res_id"),
            ]
            for (spec, selector) in selectors {
                let provider = try TokenProviders.make(spec, httpClient: httpClient)
                #expect(provider.label.hasPrefix("imds(\(selector)="))
                let userAssigned = try await provider.fetchToken(resource: Self.resource)
                #expect(claims(of: userAssigned.token)["oid"] as? String == app.objectID)
            }
            #expect(fixture.entra.requestCount(.imds) == 4)
        }
    }

    @Test func imdsUnknownIdentityIsNotRetried() async throws {
        try await withEmulator { fixture async throws in
            let provider = try TokenProviders.make(
                BackendIdentitySpec(name: "proxy-mi", kind: .imds, endpoint: fixture.imdsURL, clientID: "00000000-0000-0000-0000-000000000001", retry: fastRetry),
                httpClient: httpClient
            )
            let error = await Self.tokenError { _ = try await provider.fetchToken(resource: Self.resource) }
            #expect(error?.identity == "proxy-mi")
            #expect(error?.status == 400)
            #expect(error?.description.hasPrefix("managed identity 'proxy-mi' via imds(client_id=00000000-0000-0000-0000-000000000001): IMDS answered 400 Identity not found") == true, "\(error?.description ?? "")")
            #expect(fixture.entra.requestCount(.imds) == 1)
        }
    }

    @Test func imdsRetries429ThenSucceeds() async throws {
        try await withEmulator { fixture async throws in
            fixture.entra.failNextTokenRequests(count: 2, status: 429, retryAfterSeconds: 0)
            let provider = try TokenProviders.make(
                BackendIdentitySpec(name: "vm", kind: .imds, endpoint: fixture.imdsURL, retry: fastRetry),
                httpClient: httpClient
            )
            _ = try await provider.fetchToken(resource: Self.resource)
            #expect(fixture.entra.requestCount(.imds) == 3)
        }
    }

    @Test func imdsRetries410UntilTheDeadlineEvenPastTheRetryCount() async throws {
        try await withEmulator { fixture async throws in
            fixture.entra.failNextTokenRequests(count: 4, status: 410)
            var retry = fastRetry
            retry.maxRetries = 1
            let provider = try TokenProviders.make(
                BackendIdentitySpec(name: "vm", kind: .imds, endpoint: fixture.imdsURL, retry: retry),
                httpClient: httpClient
            )
            _ = try await provider.fetchToken(resource: Self.resource)
            #expect(fixture.entra.requestCount(.imds) == 5)
        }
    }

    @Test func imdsGivesUpAfterTheRetryCount() async throws {
        try await withEmulator { fixture async throws in
            fixture.entra.failNextTokenRequests(count: 10, status: 503)
            var retry = fastRetry
            retry.maxRetries = 2
            let provider = try TokenProviders.make(
                BackendIdentitySpec(name: "vm", kind: .imds, endpoint: fixture.imdsURL, retry: retry),
                httpClient: httpClient
            )
            let error = await Self.tokenError { _ = try await provider.fetchToken(resource: Self.resource) }
            #expect(error?.status == 503)
            #expect(error?.reason.contains("IMDS answered 503") == true)
            #expect(error?.reason.contains("3 attempts") == true, "\(error?.reason ?? "")")
            #expect(fixture.entra.requestCount(.imds) == 3)
        }
    }

    @Test func imds400IsNotRetried() async throws {
        try await withEmulator { fixture async throws in
            fixture.entra.failNextTokenRequests(count: 1, status: 400)
            let provider = try TokenProviders.make(
                BackendIdentitySpec(name: "vm", kind: .imds, endpoint: fixture.imdsURL, retry: fastRetry),
                httpClient: httpClient
            )
            let error = await Self.tokenError { _ = try await provider.fetchToken(resource: Self.resource) }
            #expect(error?.status == 400)
            #expect(fixture.entra.requestCount(.imds) == 1)
        }
    }

    @Test func imdsUnreachableIsReportedAfterTheDeadline() async throws {
        var retry = fastRetry
        retry.maxRetries = 1
        retry.requestTimeout = 1
        // A port nothing listens on (the emulator's, after it stopped).
        let fixture = try await EmulatorFixture.start()
        let url = fixture.imdsURL
        await fixture.stop()
        let provider = try TokenProviders.make(BackendIdentitySpec(name: "vm", kind: .imds, endpoint: url, retry: retry), httpClient: httpClient)
        let error = await Self.tokenError { _ = try await provider.fetchToken(resource: Self.resource) }
        #expect(error?.reason.hasPrefix("could not reach IMDS at \(url)") == true, "\(error?.reason ?? "")")
        #expect(error?.reason.contains("(2 attempts in ") == true, "\(error?.reason ?? "")")
    }

    @Test func imdsRefusesTwoSelectors() {
        #expect(throws: TokenError.self) {
            try TokenProviders.make(BackendIdentitySpec(name: "x", kind: .imds, clientID: "a", objectID: "b"), httpClient: httpClient)
        }
    }

    // MARK: App Service

    @Test func appService() async throws {
        try await withEmulator { fixture async throws in
            let environment = ["IDENTITY_ENDPOINT": fixture.appServiceURL, "IDENTITY_HEADER": fixture.entra.appServiceIdentityHeader]
            let system = try TokenProviders.make(BackendIdentitySpec(name: "web", kind: .appService, retry: fastRetry), httpClient: httpClient, environment: environment)
            #expect(system.label == "app_service(system-assigned)")
            let token = try await system.fetchToken(resource: Self.resource)
            #expect(claims(of: token.token)["oid"] as? String == fixture.identity("vm-identity").objectID)
            #expect(token.expiresOn > Date() + 3000)

            let app = fixture.identity("app-identity")
            let user = try TokenProviders.make(
                BackendIdentitySpec(name: "web", kind: .appService, objectID: app.objectID, retry: fastRetry),
                httpClient: httpClient,
                environment: environment
            )
            #expect(user.label == "app_service(principal_id=\(app.objectID))")
            #expect(claims(of: try await user.fetchToken(resource: Self.resource).token)["oid"] as? String == app.objectID)

            let wrongHeader = try TokenProviders.make(
                BackendIdentitySpec(name: "web", kind: .appService, endpoint: fixture.appServiceURL, identityHeader: "nope", retry: fastRetry),
                httpClient: httpClient,
                environment: [:]
            )
            let error = await Self.tokenError { _ = try await wrongHeader.fetchToken(resource: Self.resource) }
            #expect(error?.status == 401)
            #expect(error?.description.contains("X-IDENTITY-HEADER header is missing or invalid") == true)
            #expect(error?.description.contains("nope") == false)

            #expect(throws: TokenError.self) {
                try TokenProviders.make(BackendIdentitySpec(name: "web", kind: .appService), httpClient: httpClient, environment: [:])
            }
        }
    }

    // MARK: Arc

    @Test func arcChallenge() async throws {
        try await withEmulator { fixture async throws in
            let provider = try TokenProviders.make(
                BackendIdentitySpec(name: "arc", kind: .arc, endpoint: fixture.arcURL, arcTokensDirectory: fixture.entra.arcKeyDirectory.path, retry: fastRetry),
                httpClient: httpClient,
                environment: [:]
            )
            #expect(provider.label == "arc(system-assigned)")
            let token = try await provider.fetchToken(resource: Self.resource)
            #expect(claims(of: token.token)["oid"] as? String == fixture.identity("vm-identity").objectID)
            #expect(fixture.entra.requestCount(.arc) == 2)
        }
    }

    @Test func arcKeyFileMustBeInTheAllowedFolder() async throws {
        try await withEmulator { fixture async throws in
            let elsewhere = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: elsewhere) }
            let provider = try TokenProviders.make(
                BackendIdentitySpec(name: "arc", kind: .arc, endpoint: fixture.arcURL, arcTokensDirectory: elsewhere.path, retry: fastRetry),
                httpClient: httpClient,
                environment: [:]
            )
            let error = await Self.tokenError { _ = try await provider.fetchToken(resource: Self.resource) }
            #expect(error?.reason.contains("is not inside the allowed folder '\(elsewhere.path)'") == true, "\(error?.reason ?? "")")
            #expect(fixture.entra.issuedTokenCount(.arc) == 0)
        }
    }

    @Test func arcKeyFileChecks() throws {
        let folder = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: folder) }
        let provider = try ArcTokenProvider(
            spec: BackendIdentitySpec(name: "arc", kind: .arc, arcTokensDirectory: folder.path),
            client: httpClient,
            environment: [:]
        )
        let context = ProviderContext(identity: "arc", label: provider.label, client: httpClient, retry: fastRetry, service: "Arc")
        #expect(try provider.keyFilePath(fromChallenge: "Basic realm=/a/b.key", context: context) == "/a/b.key")
        #expect(throws: TokenError.self) { try provider.keyFilePath(fromChallenge: "Bearer x", context: context) }
        let big = folder.appendingPathComponent("big.key")
        try Data(repeating: 0x41, count: 5000).write(to: big)
        #expect(throws: TokenError.self) { try provider.readKeyFile(big.path, context: context) }
        let wrongName = folder.appendingPathComponent("secret.txt")
        try Data("x".utf8).write(to: wrongName)
        #expect(throws: TokenError.self) { try provider.readKeyFile(wrongName.path, context: context) }
        let escape = folder.path + "/../" + folder.lastPathComponent + "-other/x.key"
        #expect(throws: TokenError.self) { try provider.readKeyFile(escape, context: context) }
        let good = folder.appendingPathComponent("good.key")
        try Data("abc123\n".utf8).write(to: good)
        #expect(try provider.readKeyFile(good.path, context: context) == "abc123")
        #expect(throws: TokenError.self) {
            try ArcTokenProvider(spec: BackendIdentitySpec(name: "arc", kind: .arc, clientID: "x"), client: httpClient, environment: [:])
        }
    }

    // MARK: Workload identity

    @Test func workloadIdentityReadsTheFederatedTokenFileEveryTime() async throws {
        try await withEmulator { fixture async throws in
            let directory = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let file = directory.appendingPathComponent("azure-identity-token")
            try Data(try fixture.entra.issuer.issueWorkloadIdentityToken(subject: "system:serviceaccount:default:app").utf8).write(to: file)
            let app = fixture.identity("app-identity")
            let environment = [
                "AZURE_CLIENT_ID": app.clientID,
                "AZURE_TENANT_ID": fixture.tenantID,
                "AZURE_AUTHORITY_HOST": fixture.baseURL,
                "AZURE_FEDERATED_TOKEN_FILE": file.path,
            ]
            let provider = try TokenProviders.make(BackendIdentitySpec(name: "wi", kind: .workloadIdentity, retry: fastRetry), httpClient: httpClient, environment: environment)
            #expect(provider.label == "workload_identity(client_id=\(app.clientID), tenant=\(fixture.tenantID))")
            let token = try await provider.fetchToken(resource: Self.resource)
            #expect(claims(of: token.token)["oid"] as? String == app.objectID)
            #expect(claims(of: token.token)["appidacr"] as? String == "2")

            // The kubelet rotates the file: the new contents are used (here: a subject Entra does not know).
            try Data(try fixture.entra.issuer.issueWorkloadIdentityToken(subject: "system:serviceaccount:default:other").utf8).write(to: file)
            let error = await Self.tokenError { _ = try await provider.fetchToken(resource: Self.resource) }
            #expect(error?.reason.contains("AADSTS70021") == true, "\(error?.reason ?? "")")
            #expect(error?.reason.contains("Trace ID") == false)

            #expect(throws: TokenError.self) {
                try TokenProviders.make(BackendIdentitySpec(name: "wi", kind: .workloadIdentity), httpClient: httpClient, environment: [:])
            }
        }
    }

    // MARK: Service principal

    @Test func servicePrincipalWithSecret() async throws {
        try await withEmulator { fixture async throws in
            let app = fixture.identity("ci-app")
            let provider = try TokenProviders.make(
                BackendIdentitySpec(name: "ci", kind: .servicePrincipal, clientID: app.clientID, tenantID: fixture.tenantID, authorityHost: fixture.baseURL, clientSecret: "ci-app-secret", retry: fastRetry),
                httpClient: httpClient,
                environment: [:]
            )
            #expect(provider.label == "service_principal(client_id=\(app.clientID), tenant=\(fixture.tenantID), secret)")
            let token = try await provider.fetchToken(resource: Self.resource)
            #expect(claims(of: token.token)["appid"] as? String == app.clientID)

            let directory = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let secretFile = directory.appendingPathComponent("secret")
            try Data("wrong-secret-value\n".utf8).write(to: secretFile)
            let wrong = try TokenProviders.make(
                BackendIdentitySpec(name: "ci", kind: .servicePrincipal, clientID: app.clientID, tenantID: fixture.tenantID, authorityHost: fixture.baseURL, clientSecretFile: secretFile.path, retry: fastRetry),
                httpClient: httpClient,
                environment: [:]
            )
            let error = await Self.tokenError { _ = try await wrong.fetchToken(resource: Self.resource) }
            #expect(error?.status == 401)
            #expect(error?.reason.contains("AADSTS7000215") == true)
            #expect(error?.description.contains("wrong-secret-value") == false)
            // The file is read for every request: fix it and the next fetch works.
            try Data("ci-app-secret".utf8).write(to: secretFile)
            _ = try await wrong.fetchToken(resource: Self.resource)
        }
    }

    @Test func servicePrincipalWithCertificateAcceptedByTheEmulator() async throws {
        try await withEmulator { fixture async throws in
            // The emulator accepts assertions signed by its own key, so the app's certificate is the
            // emulator's signing certificate here (x5t = its key ID).
            let directory = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let certificate = directory.appendingPathComponent("app.crt")
            let key = directory.appendingPathComponent("app.key")
            try Data(fixture.entra.issuer.signingCertificatePEM.utf8).write(to: certificate)
            try Data(fixture.entra.issuer.signingKeyPEM.utf8).write(to: key)
            let app = fixture.identity("ci-app")
            let provider = try TokenProviders.make(
                BackendIdentitySpec(name: "ci", kind: .servicePrincipal, clientID: app.clientID, tenantID: fixture.tenantID, authorityHost: fixture.baseURL, certificateFile: certificate.path, privateKeyFile: key.path, retry: fastRetry),
                httpClient: httpClient,
                // The spec's credential wins over the environment's.
                environment: ["AZURE_CLIENT_SECRET": "ignored-secret"]
            )
            #expect(provider.label.hasSuffix("certificate x5t=\(fixture.entra.issuer.keyID))"))
            let token = try await provider.fetchToken(resource: Self.resource)
            #expect(claims(of: token.token)["appid"] as? String == app.clientID)
            #expect(claims(of: token.token)["appidacr"] as? String == "2")
        }
    }

    @Test func certificateAssertionIsWellFormed() async throws {
        let pki = try EmulatorPKI.generate()
        let issued = try pki.issueServerCertificate(hosts: ["client.example"])
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        // Certificate and key in one file, as AZURE_CLIENT_CERTIFICATE_PATH has them.
        let combined = directory.appendingPathComponent("combined.pem")
        try Data((issued.certificatePEM + "\n" + issued.privateKeyPEM).utf8).write(to: combined)
        let credential = try ClientCertificate(certificateFile: combined.path, keyFile: nil, identity: "ci", label: "sp")
        let audience = "https://login.example/tenant/oauth2/v2.0/token"
        let now = Date()
        let assertion = try await credential.assertion(clientID: "client-1", audience: audience, now: now)
        let head = header(of: assertion)
        #expect(head["alg"] as? String == "RS256")
        #expect(head["typ"] as? String == "JWT")
        #expect(head["x5t"] as? String == credential.thumbprint)
        #expect(credential.thumbprint == ExpectedThumbprint.of(pem: issued.certificatePEM))
        let body = claims(of: assertion)
        #expect(body["aud"] as? String == audience)
        #expect(body["iss"] as? String == "client-1")
        #expect(body["sub"] as? String == "client-1")
        #expect((body["jti"] as? String)?.isEmpty == false)
        #expect(body["nbf"] as? Int == Int(now.timeIntervalSince1970))
        #expect(body["exp"] as? Int == Int(now.timeIntervalSince1970) + 600)
        #expect(try ExpectedThumbprint.signatureVerifies(assertion, certificatePEM: issued.certificatePEM))
        let second = try await credential.assertion(clientID: "client-1", audience: audience, now: now)
        #expect(claims(of: second)["jti"] as? String != body["jti"] as? String)

        // A key that does not belong to the certificate is refused up front.
        let other = try pki.issueServerCertificate(hosts: ["other.example"])
        let mismatched = directory.appendingPathComponent("mismatched.key")
        try Data(other.privateKeyPEM.utf8).write(to: mismatched)
        let cert = directory.appendingPathComponent("cert.pem")
        try Data(issued.certificatePEM.utf8).write(to: cert)
        #expect(throws: TokenError.self) { try ClientCertificate(certificateFile: cert.path, keyFile: mismatched.path, identity: "ci", label: "sp") }
    }

    @Test func emulatorRefusesAssertionsFromUnknownCertificates() async throws {
        try await withEmulator { fixture async throws in
            let pki = try EmulatorPKI.generate()
            let issued = try pki.issueServerCertificate(hosts: ["client.example"])
            let directory = try temporaryDirectory()
            defer { try? FileManager.default.removeItem(at: directory) }
            let combined = directory.appendingPathComponent("combined.pem")
            try Data((issued.certificatePEM + issued.privateKeyPEM).utf8).write(to: combined)
            let app = fixture.identity("ci-app")
            let provider = try TokenProviders.make(
                BackendIdentitySpec(name: "ci", kind: .servicePrincipal, clientID: app.clientID, tenantID: fixture.tenantID, authorityHost: fixture.baseURL, certificateFile: combined.path, retry: fastRetry),
                httpClient: httpClient,
                environment: [:]
            )
            let error = await Self.tokenError { _ = try await provider.fetchToken(resource: Self.resource) }
            #expect(error?.status == 401)
            #expect(error?.reason.contains("AADSTS700027") == true, "\(error?.reason ?? "")")
        }
    }

    // MARK: Static file

    @Test func staticFile() async throws {
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let issuer = try EntraTokenIssuer(tenant: .demo())
        let issued = try issuer.issueAccessToken(for: try #require(EmulatedTenant.demo().identity(named: "vm-identity")), audience: Self.resource)
        let file = directory.appendingPathComponent("token")
        try Data((issued.token + "\n").utf8).write(to: file)
        let provider = try TokenProviders.make(BackendIdentitySpec(name: "dev", kind: .staticFile, tokenFile: file.path), httpClient: httpClient)
        let token = try await provider.fetchToken(resource: Self.resource)
        #expect(token.token == issued.token)
        #expect(token.expiresOn == issued.expiresOn)

        try Data("not-a-jwt".utf8).write(to: file)
        let error = await Self.tokenError { _ = try await provider.fetchToken(resource: Self.resource) }
        #expect(error?.reason.contains("is not a JWT with an exp claim") == true)
        let expired = try issuer.issueBadToken(.expired, for: try #require(EmulatedTenant.demo().identity(named: "vm-identity")))
        try Data(expired.utf8).write(to: file)
        let expiredError = await Self.tokenError { _ = try await provider.fetchToken(resource: Self.resource) }
        #expect(expiredError?.reason.contains("expired at") == true)
        #expect(throws: TokenError.self) { try TokenProviders.make(BackendIdentitySpec(name: "dev", kind: .staticFile), httpClient: httpClient) }
    }

    // MARK: Auto

    @Test func autoSelection() throws {
        let spec = BackendIdentitySpec(name: "auto", kind: .auto)
        func chosen(_ environment: [String: String]) throws -> String {
            try TokenProviders.make(spec, httpClient: httpClient, environment: environment).label
        }
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        #expect(try chosen([:]) == "auto:imds(system-assigned)")
        #expect(try chosen(["AZURE_CLIENT_ID": "c1"]) == "auto:imds(client_id=c1)")
        #expect(try chosen(["IDENTITY_ENDPOINT": "http://127.0.0.1:1/msi/token", "IDENTITY_HEADER": "h"]) == "auto:app_service(system-assigned)")
        #expect(try chosen(["IDENTITY_ENDPOINT": "http://127.0.0.1:40342/metadata/identity/oauth2/token", "IMDS_ENDPOINT": "http://127.0.0.1:40342"]) == "auto:arc(system-assigned)")
        #expect(
            try chosen(["AZURE_CLIENT_ID": "c1", "AZURE_TENANT_ID": "t1", "AZURE_FEDERATED_TOKEN_FILE": "/var/run/token", "IDENTITY_ENDPOINT": "x", "IDENTITY_HEADER": "h"])
                == "auto:workload_identity(client_id=c1, tenant=t1)"
        )
        #expect(
            try chosen(["AZURE_CLIENT_ID": "c1", "AZURE_TENANT_ID": "t1", "AZURE_CLIENT_SECRET": "s", "AZURE_FEDERATED_TOKEN_FILE": "/var/run/token"])
                == "auto:service_principal(client_id=c1, tenant=t1, secret)"
        )
        // A workload identity environment without a tenant is not complete: IMDS it is.
        #expect(try chosen(["AZURE_CLIENT_ID": "c1", "AZURE_FEDERATED_TOKEN_FILE": "/f"]) == "auto:imds(client_id=c1)")
        // The spec's own IDs win over AZURE_CLIENT_ID for managed identities.
        var userAssigned = spec
        userAssigned.objectID = "o1"
        #expect(try TokenProviders.make(userAssigned, httpClient: httpClient, environment: ["AZURE_CLIENT_ID": "c1"]).label == "auto:imds(object_id=o1)")
        #expect(TokenProviders.automaticKind(spec, environment: ["AZURE_CLIENT_ID": "c", "AZURE_TENANT_ID": "t", "AZURE_CLIENT_CERTIFICATE_PATH": "/x.pem"]) == .servicePrincipal)
    }

    @Test func autoFetchesThroughTheChosenProvider() async throws {
        try await withEmulator { fixture async throws in
            let environment = ["IDENTITY_ENDPOINT": fixture.appServiceURL, "IDENTITY_HEADER": fixture.entra.appServiceIdentityHeader]
            let provider = try TokenProviders.make(BackendIdentitySpec(name: "auto", kind: .auto, retry: fastRetry), httpClient: httpClient, environment: environment)
            _ = try await provider.fetchToken(resource: Self.resource)
            #expect(fixture.entra.issuedTokenCount(.appService) == 1)
            let error = await caught {
                _ = try await TokenProviders.make(BackendIdentitySpec(name: "proxy-mi", kind: .auto, clientID: "nope", retry: fastRetry), httpClient: httpClient, environment: environment)
                    .fetchToken(resource: Self.resource)
            }
            #expect((error as? TokenError)?.description.hasPrefix("managed identity 'proxy-mi' via auto:app_service(client_id=nope): ") == true, "\(String(describing: error))")
        }
    }

    @Test func specDescriptionRedactsSecrets() {
        let spec = BackendIdentitySpec(name: "ci", kind: .servicePrincipal, clientID: "c", clientSecret: "very-secret", identityHeader: "header-secret")
        #expect(!spec.description.contains("very-secret"))
        #expect(!spec.description.contains("header-secret"))
        #expect(spec.description.contains("client_secret=<redacted>"))
        #expect(EntraTokenEndpoint.scope(for: "https://database.windows.net/") == "https://database.windows.net/.default")
        #expect(EntraTokenEndpoint.scope(for: "https://database.windows.net") == "https://database.windows.net/.default")
    }
}
