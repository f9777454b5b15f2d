import AzureEmulator
import Foundation
import NIOPosix
import Testing
import HTTPServerKit

@Suite("Entra emulator endpoints")
struct EntraEmulatorTests {
    static let tenantID = "5e3c1a9b-1234-4cde-8f00-aabbccddeeff"
    static let sql = "https://database.windows.net/"
    static let sqlScope = "https://database.windows.net//.default"

    static func makeTenant() -> EmulatedTenant {
        EmulatedTenant(
            tenantID: tenantID,
            identities: [
                EmulatedIdentity(name: "vm", kind: .systemAssigned),
                EmulatedIdentity(
                    name: "uami",
                    kind: .userAssigned,
                    federatedSubjects: ["system:serviceaccount:default:app"]
                ),
                EmulatedIdentity(name: "uami2", kind: .userAssigned),
                EmulatedIdentity(name: "ci", kind: .servicePrincipal, secret: "right-secret"),
                EmulatedIdentity(name: "Alice", kind: .user, upn: "alice@contoso.example", secret: "pw"),
            ]
        )
    }

    /// One shared issuer keeps RSA key generation out of every test.
    static let issuer: EntraTokenIssuer = {
        do { return try EntraTokenIssuer(tenant: makeTenant()) } catch { fatalError("\(error)") }
    }()

    static func makeEmulator() throws -> EntraEmulator {
        try EntraEmulator(tenant: makeTenant(), issuer: issuer)
    }

    static func identity(_ emulator: EntraEmulator, _ name: String) -> EmulatedIdentity {
        emulator.tenant.identity(named: name)!
    }

    static func imds(_ query: String, metadata: Bool = true) -> RawHTTPRequest {
        RawHTTPRequest(
            "GET",
            "/metadata/identity/oauth2/token?api-version=2018-02-01&\(query)",
            headers: metadata ? [(name: "Metadata", value: "true")] : []
        )
    }

    static var encodedSQL: String {
        HTTPQueryItem.formEncode(sql)
    }

    /// Runs `body` against the emulator's routes on a real loopback socket.
    func withEmulator<T: Sendable>(_ body: (EntraEmulator, Int) async throws -> T) async throws -> T {
        let emulator = try Self.makeEmulator()
        return try await withHTTPServer(routes: emulator.routes) { port, _ in
            try await body(emulator, port)
        }
    }

    // MARK: IMDS

    @Test func imdsRequiresTheMetadataHeader() async throws {
        try await withEmulator { emulator, port in
            let response = try await RawHTTPClient.send(Self.imds("resource=\(Self.encodedSQL)", metadata: false), port: port)
            #expect(response.status == 400)
            #expect(
                try response.json()
                    == ["error": "invalid_request", "error_description": "Required metadata header not specified"]
            )
            let proxied = try await RawHTTPClient.send(
                RawHTTPRequest(
                    "GET",
                    "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=\(Self.encodedSQL)",
                    headers: [(name: "Metadata", value: "true"), (name: "X-Forwarded-For", value: "10.0.0.1")]
                ),
                port: port
            )
            #expect(proxied.status == 400)
            #expect(emulator.requestCount(.imds) == 2)
            #expect(emulator.issuedTokenCount(.imds) == 0)
        }
    }

    @Test func imdsIssuesSystemAssignedAndUserAssignedTokens() async throws {
        try await withEmulator { emulator, port in
            let system = try await RawHTTPClient.send(Self.imds("resource=\(Self.encodedSQL)"), port: port)
            #expect(system.status == 200, "\(system.bodyString)")
            let json = try system.json()
            let object = try #require(json.objectValue)
            // Every value is a string, as IMDS sends them.
            for key in [
                "access_token", "client_id", "expires_in", "expires_on", "ext_expires_in", "not_before", "resource",
                "token_type",
            ] {
                #expect(object[key]?.stringValue != nil, "\(key) missing or not a string")
            }
            #expect(json["token_type"] == "Bearer")
            #expect(json["resource"] == .string(Self.sql))
            let vm = Self.identity(emulator, "vm")
            #expect(json["client_id"] == .string(vm.clientID))
            let expiresOn = try #require(json["expires_on"]?.stringValue.flatMap(Int.init))
            let expiresIn = try #require(json["expires_in"]?.stringValue.flatMap(Int.init))
            #expect(abs(expiresOn - Int(Date().timeIntervalSince1970) - 3600) <= 5)
            #expect(expiresIn > 3590 && expiresIn <= 3600)
            let token = try #require(json["access_token"]?.stringValue)
            let verified = try emulator.verifier().verify(token)
            #expect(verified.oid == vm.objectID)
            #expect(verified.sqlPrincipalName == "\(vm.clientID)@\(Self.tenantID)")

            let uami = Self.identity(emulator, "uami")
            for selector in [
                "client_id=\(uami.clientID)",
                "object_id=\(uami.objectID)",
                "msi_res_id=\(HTTPQueryItem.formEncode(uami.resourceID!))",
            ] {
                let response = try await RawHTTPClient.send(Self.imds("resource=\(Self.encodedSQL)&\(selector)"), port: port)
                #expect(response.status == 200, "\(selector): \(response.bodyString)")
                let accessToken = try #require(try response.json()["access_token"]?.stringValue)
                #expect(try emulator.verifier().verify(accessToken).oid == uami.objectID)
                #expect(try response.json()["client_id"] == .string(uami.clientID))
            }
            #expect(emulator.issuedTokenCount(.imds) == 4)
        }
    }

    @Test func imdsRefusesUnknownIdentitiesAndResources() async throws {
        try await withEmulator { emulator, port in
            let unknown = try await RawHTTPClient.send(
                Self.imds("resource=\(Self.encodedSQL)&client_id=00000000-0000-0000-0000-000000000042"),
                port: port
            )
            #expect(unknown.status == 400)
            #expect(try unknown.json() == ["error": "invalid_request", "error_description": "Identity not found"])

            // A service principal is not a managed identity of this host.
            let ci = Self.identity(emulator, "ci")
            let notManaged = try await RawHTTPClient.send(
                Self.imds("resource=\(Self.encodedSQL)&client_id=\(ci.clientID)"),
                port: port
            )
            #expect(notManaged.status == 400)

            let badResource = try await RawHTTPClient.send(Self.imds("resource=https%3A%2F%2Fnot.a.resource%2F"), port: port)
            #expect(badResource.status == 400)
            #expect(try badResource.json()["error"] == "invalid_resource")
            #expect(try badResource.json()["error_description"]?.stringValue?.hasPrefix("AADSTS500011") == true)

            let twoSelectors = try await RawHTTPClient.send(
                Self.imds("resource=\(Self.encodedSQL)&client_id=a&object_id=b"),
                port: port
            )
            #expect(twoSelectors.status == 400)
            let noResource = try await RawHTTPClient.send(Self.imds("x=1"), port: port)
            #expect(noResource.status == 400)
        }
    }

    @Test func faultsAreInjectedThenCleared() async throws {
        try await withEmulator { emulator, port in
            emulator.failNextTokenRequests(count: 1, status: 429)
            let throttled = try await RawHTTPClient.send(Self.imds("resource=\(Self.encodedSQL)"), port: port)
            #expect(throttled.status == 429)
            #expect(throttled.header("Retry-After") == "1")
            let retried = try await RawHTTPClient.send(Self.imds("resource=\(Self.encodedSQL)"), port: port)
            #expect(retried.status == 200)

            // Queued faults: 410 twice, then 500, then success; faults apply before validation.
            emulator.failNextTokenRequests(count: 2, status: 410)
            emulator.failNextTokenRequests(count: 1, status: 503, retryAfterSeconds: 7)
            var statuses: [Int] = []
            var retryAfter: [String?] = []
            for _ in 0..<4 {
                let response = try await RawHTTPClient.send(Self.imds("resource=\(Self.encodedSQL)"), port: port)
                statuses.append(response.status)
                retryAfter.append(response.header("Retry-After"))
            }
            #expect(statuses == [410, 410, 503, 200])
            #expect(retryAfter == [nil, nil, "7", nil])

            // Faults can target one endpoint only.
            emulator.failNextTokenRequests(count: 1, status: 500, endpoints: [.token])
            let imdsOK = try await RawHTTPClient.send(Self.imds("resource=\(Self.encodedSQL)"), port: port)
            #expect(imdsOK.status == 200)
            let tokenFault = try await RawHTTPClient.send(
                .form("/\(Self.tenantID)/oauth2/v2.0/token", [("grant_type", "client_credentials")]),
                port: port
            )
            #expect(tokenFault.status == 500)
            #expect(try tokenFault.json()["error_codes"] == [90033])
            #expect(emulator.requestCount(.imds) == 7)
            #expect(emulator.issuedTokenCount(.imds) == 3)
            #expect(emulator.requestCount(.token) == 1)
            emulator.resetCounters()
            #expect(emulator.requestCounts.isEmpty)
        }
    }

    // MARK: Token endpoint

    @Test func clientCredentialsWithSecret() async throws {
        try await withEmulator { emulator, port in
            let ci = Self.identity(emulator, "ci")
            let path = "/\(Self.tenantID)/oauth2/v2.0/token"
            let wrong = try await RawHTTPClient.send(
                .form(path, [
                    ("grant_type", "client_credentials"), ("client_id", ci.clientID),
                    ("client_secret", "wrong"), ("scope", Self.sqlScope),
                ]),
                port: port
            )
            #expect(wrong.status == 401)
            let error = try wrong.json()
            #expect(error["error"] == "invalid_client")
            #expect(error["error_codes"] == [7_000_215])
            #expect(error["error_description"]?.stringValue?.hasPrefix("AADSTS7000215: Invalid client secret provided.") == true)
            #expect(error["trace_id"]?.stringValue != nil)
            #expect(error["correlation_id"]?.stringValue != nil)

            let right = try await RawHTTPClient.send(
                .form(path, [
                    ("grant_type", "client_credentials"), ("client_id", ci.clientID),
                    ("client_secret", "right-secret"), ("scope", Self.sqlScope),
                ]),
                port: port
            )
            #expect(right.status == 200, "\(right.bodyString)")
            let json = try right.json()
            #expect(json["token_type"] == "Bearer")
            #expect(json["expires_in"] == 3600)  // a number on the v2 endpoint
            #expect(json["ext_expires_in"] == 3600)
            let token = try #require(json["access_token"]?.stringValue)
            let verified = try emulator.verifier().verify(token)
            #expect(verified.appid == ci.clientID)
            #expect(verified.audience == Self.sql)
            #expect(verified.claims["appidacr"] == "1")

            // Other failures, each with its AADSTS code.
            let cases: [([(String, String)], Int, Int)] = [
                ([("grant_type", "client_credentials"), ("client_id", "nobody"), ("client_secret", "x"), ("scope", Self.sqlScope)], 400, 700016),
                ([("grant_type", "client_credentials"), ("client_id", ci.clientID), ("scope", Self.sqlScope)], 401, 7_000_218),
                ([("grant_type", "client_credentials"), ("client_id", ci.clientID), ("client_secret", "right-secret")], 400, 900144),
                ([("grant_type", "client_credentials"), ("client_id", ci.clientID), ("client_secret", "right-secret"), ("scope", "https://database.windows.net/user_impersonation")], 400, 1_002_012),
                ([("grant_type", "client_credentials"), ("client_id", ci.clientID), ("client_secret", "right-secret"), ("scope", "https://nope.example/.default")], 400, 500011),
                ([("grant_type", "authorization_code"), ("client_id", ci.clientID), ("scope", Self.sqlScope)], 400, 70003),
            ]
            for (fields, status, code) in cases {
                let response = try await RawHTTPClient.send(.form(path, fields), port: port)
                #expect(response.status == status, "\(fields): \(response.bodyString)")
                #expect(try response.json()["error_codes"] == [.int(code)], "\(fields): \(response.bodyString)")
            }
            let otherTenant = try await RawHTTPClient.send(
                .form("/someone-else/oauth2/v2.0/token", [("grant_type", "client_credentials")]),
                port: port
            )
            #expect(otherTenant.status == 400)
            #expect(try otherTenant.json()["error_codes"] == [90002])
            #expect(emulator.issuedTokenCount(.token) == 1)
        }
    }

    @Test func federatedCredentialAssertion() async throws {
        try await withEmulator { emulator, port in
            let uami = Self.identity(emulator, "uami")
            let path = "/\(Self.tenantID)/oauth2/v2.0/token"
            func exchange(_ assertion: String, clientID: String) async throws -> RawHTTPResponse {
                try await RawHTTPClient.send(
                    .form(path, [
                        ("grant_type", "client_credentials"), ("client_id", clientID), ("scope", Self.sqlScope),
                        ("client_assertion_type", EntraEmulator.clientAssertionType), ("client_assertion", assertion),
                    ]),
                    port: port
                )
            }
            let workload = try emulator.issuer.issueWorkloadIdentityToken(subject: "system:serviceaccount:default:app")
            let accepted = try await exchange(workload, clientID: uami.clientID)
            #expect(accepted.status == 200, "\(accepted.bodyString)")
            let token = try #require(try accepted.json()["access_token"]?.stringValue)
            let verified = try emulator.verifier().verify(token)
            #expect(verified.oid == uami.objectID)
            #expect(verified.claims["appidacr"] == "2")

            let wrongSubject = try emulator.issuer.issueWorkloadIdentityToken(subject: "system:serviceaccount:default:other")
            let refused = try await exchange(wrongSubject, clientID: uami.clientID)
            #expect(refused.status == 400)
            #expect(try refused.json()["error_codes"] == [70021])

            // The right subject for another identity is not enough.
            let uami2 = Self.identity(emulator, "uami2")
            #expect(try await exchange(workload, clientID: uami2.clientID).status == 400)

            // Signed by someone else.
            let foreign = try EntraTokenIssuer(tenantID: Self.tenantID)
                .issueWorkloadIdentityToken(subject: "system:serviceaccount:default:app")
            let forged = try await exchange(foreign, clientID: uami.clientID)
            #expect(forged.status == 401)
            #expect(try forged.json()["error_codes"] == [700027])

            // Expired.
            let old = try emulator.issuer.issueWorkloadIdentityToken(
                subject: "system:serviceaccount:default:app",
                now: Date().addingTimeInterval(-7200)
            )
            let expired = try await exchange(old, clientID: uami.clientID)
            #expect(try expired.json()["error_codes"] == [700024])

            // Wrong audience.
            let wrongAudience = try emulator.issuer.issueWorkloadIdentityToken(
                subject: "system:serviceaccount:default:app",
                audience: "api://something-else"
            )
            #expect(try await exchange(wrongAudience, clientID: uami.clientID).json()["error_codes"] == [700212])

            // A service principal's own assertion (sub = its client ID) is accepted.
            let ci = Self.identity(emulator, "ci")
            let selfSigned = try emulator.issuer.issueCustom(claims: [
                "aud": .string("http://127.0.0.1:\(port)\(path)"), "iss": .string(ci.clientID), "sub": .string(ci.clientID),
                "exp": .int(Int(Date().timeIntervalSince1970) + 600), "jti": "1",
            ])
            #expect(try await exchange(selfSigned, clientID: ci.clientID).status == 200)
        }
    }

    @Test func passwordGrantForUsers() async throws {
        try await withEmulator { emulator, port in
            let path = "/\(Self.tenantID)/oauth2/v2.0/token"
            let ok = try await RawHTTPClient.send(
                .form(path, [
                    ("grant_type", "password"), ("client_id", "2fd908ad-0664-4344-b9be-cd3e8b574c38"),
                    ("username", "Alice@Contoso.example"), ("password", "pw"),
                    ("scope", "\(Self.sqlScope) openid profile offline_access"),
                ]),
                port: port
            )
            #expect(ok.status == 200, "\(ok.bodyString)")
            let token = try #require(try ok.json()["access_token"]?.stringValue)
            let verified = try emulator.verifier().verify(token)
            #expect(verified.upn == "alice@contoso.example")
            #expect(verified.appid == "2fd908ad-0664-4344-b9be-cd3e8b574c38")
            #expect(verified.sqlPrincipalName == "alice@contoso.example")

            let bad = try await RawHTTPClient.send(
                .form(path, [
                    ("grant_type", "password"), ("client_id", "x"), ("username", "alice@contoso.example"),
                    ("password", "nope"), ("scope", Self.sqlScope),
                ]),
                port: port
            )
            #expect(bad.status == 400)
            #expect(try bad.json()["error_codes"] == [50126])
        }
    }

    // MARK: App Service and Arc

    @Test func appServiceEndpoint() async throws {
        try await withEmulator { emulator, port in
            let target = "/msi/token?api-version=2019-08-01&resource=\(Self.encodedSQL)"
            let missing = try await RawHTTPClient.get(target, port: port)
            #expect(missing.status == 401)
            let header = (name: "X-IDENTITY-HEADER", value: emulator.appServiceIdentityHeader)
            let system = try await RawHTTPClient.get(target, port: port, headers: [header])
            #expect(system.status == 200, "\(system.bodyString)")
            let json = try system.json()
            #expect(json["expires_on"]?.stringValue.flatMap(Int.init) != nil)
            #expect(json["token_type"] == "Bearer")
            #expect(json["resource"] == .string(Self.sql))
            #expect(json["client_id"] == .string(Self.identity(emulator, "vm").clientID))
            let uami = Self.identity(emulator, "uami")
            for selector in ["client_id=\(uami.clientID)", "principal_id=\(uami.objectID)", "mi_res_id=\(HTTPQueryItem.formEncode(uami.resourceID!))"] {
                let response = try await RawHTTPClient.get("\(target)&\(selector)", port: port, headers: [header])
                #expect(response.status == 200, "\(selector)")
                let token = try #require(try response.json()["access_token"]?.stringValue)
                #expect(try emulator.verifier().verify(token).oid == uami.objectID)
            }
            let unknown = try await RawHTTPClient.get("\(target)&client_id=nobody", port: port, headers: [header])
            #expect(unknown.status == 400)
            emulator.failNextTokenRequests(count: 1, status: 500, endpoints: [.appService])
            #expect(try await RawHTTPClient.get(target, port: port, headers: [header]).status == 500)
            #expect(emulator.issuedTokenCount(.appService) == 4)
        }
    }

    @Test func arcChallengeThenToken() async throws {
        try await withEmulator { emulator, port in
            let target = "/arc/metadata/identity/oauth2/token?api-version=2020-06-01&resource=\(Self.encodedSQL)"
            let metadata = (name: "Metadata", value: "true")
            let challenge = try await RawHTTPClient.get(target, port: port, headers: [metadata])
            #expect(challenge.status == 401)
            let authenticate = try #require(challenge.header("WWW-Authenticate"))
            #expect(authenticate.hasPrefix("Basic realm="))
            let keyPath = String(authenticate.dropFirst("Basic realm=".count))
            #expect(keyPath.hasSuffix(".key"))
            #expect(keyPath.hasPrefix(emulator.arcKeyDirectory.path))
            let secret = try String(contentsOfFile: keyPath, encoding: .utf8)
            #expect(secret.utf8.count <= 4096)

            let wrong = try await RawHTTPClient.get(target, port: port, headers: [metadata, (name: "Authorization", value: "Basic nope")])
            #expect(wrong.status == 401)
            let ok = try await RawHTTPClient.get(target, port: port, headers: [metadata, (name: "Authorization", value: "Basic \(secret)")])
            #expect(ok.status == 200, "\(ok.bodyString)")
            let json = try ok.json()
            #expect(json["expires_in"]?.stringValue != nil)
            let token = try #require(json["access_token"]?.stringValue)
            #expect(try emulator.verifier().verify(token).oid == Self.identity(emulator, "vm").objectID)
            // A key is good once.
            let reused = try await RawHTTPClient.get(target, port: port, headers: [metadata, (name: "Authorization", value: "Basic \(secret)")])
            #expect(reused.status == 401)
            #expect(emulator.issuedTokenCount(.arc) == 1)
            #expect(emulator.requestCount(.arc) == 4)
        }
    }

    // MARK: Discovery

    @Test func jwksIsServedAndVerifiesIssuedTokens() async throws {
        try await withEmulator { emulator, port in
            let keys = try await RawHTTPClient.get("/\(Self.tenantID)/discovery/v2.0/keys", port: port)
            #expect(keys.status == 200)
            let served = try #require(try keys.json()["keys"]?.arrayValue)
            #expect(served.count == 1)
            #expect(served.first?["kid"] == .string(emulator.issuer.keyID))

            let imds = try await RawHTTPClient.send(Self.imds("resource=\(Self.encodedSQL)"), port: port)
            let token = try #require(try imds.json()["access_token"]?.stringValue)
            let verifier = try EntraTokenVerifier(jwksJSON: keys.bodyString, tenantID: Self.tenantID)
            let verified = try verifier.verify(token)
            #expect(verified.oid == Self.identity(emulator, "vm").objectID)

            // A token from an unrelated issuer does not verify against the served keys.
            let stranger = try EntraTokenIssuer(tenantID: Self.tenantID)
            let strangerToken = try stranger.issueAccessToken(for: Self.identity(emulator, "vm"), audience: Self.sql).token
            #expect(throws: EntraTokenError.self) { try verifier.verify(strangerToken) }

            let v1Keys = try await RawHTTPClient.get("/common/discovery/keys", port: port)
            #expect(v1Keys.status == 200)
            let unknownTenant = try await RawHTTPClient.get("/not-a-tenant/discovery/v2.0/keys", port: port)
            #expect(unknownTenant.status == 400)
            #expect(emulator.requestCount(.jwks) == 3)
        }
    }

    @Test func openIDConfigurationUsesTheRequestHost() async throws {
        try await withEmulator { emulator, port in
            let response = try await RawHTTPClient.send(
                RawHTTPRequest("GET", "/\(Self.tenantID)/v2.0/.well-known/openid-configuration"),
                port: port,
                hostHeader: "login.emulator.test:\(port)"
            )
            #expect(response.status == 200)
            let json = try response.json()
            let base = "http://login.emulator.test:\(port)/\(Self.tenantID)"
            #expect(json["issuer"] == .string("https://login.microsoftonline.com/\(Self.tenantID)/v2.0"))
            #expect(json["jwks_uri"] == .string("\(base)/discovery/v2.0/keys"))
            #expect(json["token_endpoint"] == .string("\(base)/oauth2/v2.0/token"))
            #expect(json["id_token_signing_alg_values_supported"] == ["RS256"])

            let v1 = try await RawHTTPClient.get("/\(Self.tenantID)/.well-known/openid-configuration", port: port)
            #expect(try v1.json()["issuer"] == .string("https://sts.windows.net/\(Self.tenantID)/"))
            #expect(emulator.requestCount(.openIDConfiguration) == 2)
        }
    }

    // MARK: Without sockets

    @Test func routesWorkWithoutSockets() async throws {
        let emulator = try Self.makeEmulator()
        let router = HTTPRouter(routes: emulator.routes)
        let response = await router.respond(
            to: HTTPServerRequest(
                method: .GET,
                uri: "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=\(Self.encodedSQL)",
                headers: ["Metadata": "true"]
            )
        )
        #expect(response.status == .ok)
        let token = try #require(try JSONValue(parsing: response.body)["access_token"]?.stringValue)
        #expect(try emulator.verifier().verify(token).audience == Self.sql)
    }

    @Test func stateDirectoryKeepsTheSigningKey() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tdsgate-entra-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: directory) }
        let first = try EntraEmulator(tenant: Self.makeTenant(), baseURL: "http://127.0.0.1:1", stateDirectory: directory)
        let second = try EntraEmulator(tenant: Self.makeTenant(), stateDirectory: directory)
        #expect(first.issuer.keyID == second.issuer.keyID)
        #expect(first.arcKeyDirectory.path.hasPrefix(directory.path))
        #expect(FileManager.default.fileExists(atPath: directory.appendingPathComponent("entra-signing-key.pem").path))
    }
}
