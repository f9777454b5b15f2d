import NIOCore
import Testing
import Routing
import TDS
@testable import Gateway

@Suite struct ClientPreloginTests {
    func request(_ enc: PreloginEncryption?, fedAuth: Bool = false) -> PreloginMessage {
        var p = PreloginMessage()
        p.version = PreloginVersion(major: 18, minor: 0, build: 0)
        p.encryption = enc
        if fedAuth { p.fedAuthRequired = 1 }
        return p
    }

    @Test func defaultListenerForcesFullTLS() {
        let allowed: Set<ClientEncryption> = [.required, .strict]
        let off = decideClientPrelogin(request(.off), allowed: allowed, hasCertificate: true, strict: false)
        #expect(off.tls == .full && off.response.encryption == .required && off.refusal == nil)
        let on = decideClientPrelogin(request(.on), allowed: allowed, hasCertificate: true, strict: false)
        #expect(on.tls == .full && on.response.encryption == .on)
        let none = decideClientPrelogin(request(.notSupported), allowed: allowed, hasCertificate: true, strict: false)
        #expect(none.refusal != nil && none.response.encryption == .required)
    }

    @Test func loginOnlyAndPlaintextOnlyWhenListed() {
        let lo = decideClientPrelogin(request(.off), allowed: [.required, .loginOnly], hasCertificate: true, strict: false)
        #expect(lo.tls == .loginOnly && lo.response.encryption == .off)
        let plain = decideClientPrelogin(request(.notSupported), allowed: [.plaintext], hasCertificate: false, strict: false)
        #expect(plain.tls == .none && plain.refusal == nil && plain.response.encryption == .notSupported)
        let strict = decideClientPrelogin(request(.notSupported, fedAuth: true), allowed: [.strict], hasCertificate: true, strict: true)
        #expect(strict.tls == .none && strict.refusal == nil && strict.response.fedAuthRequired == 1)
    }

    @Test func answerKeepsThePositionalOrderOldClientsRead() {
        let d = decideClientPrelogin(request(.on), allowed: [.required], hasCertificate: true, strict: false)
        #expect(d.response.options.prefix(5).map(\.token) == [0x00, 0x01, 0x02, 0x03, 0x04])
    }
}

@Suite struct BackendLoginTests {
    func clientLogin() -> Login7 {
        var l = Login7(packetSize: 8000, hostName: "app-host", userName: "app-user", password: "secret-pw", appName: "orders-svc",
                       serverName: "tdsgate", language: "us_english", database: "appdb",
                       features: [Login7Feature(id: 0x10, data: [1, 2, 3]), Login7Feature(id: 0x0A, data: [1])])
        l.optionFlags3 |= 0x10
        l.readOnlyIntent = true
        return l
    }

    @Test func onlyCredentialsChange() {
        let client = clientLogin()
        let backend = backendLogin7(from: client, accessToken: "eyJ.token", fedAuthEcho: true, nonce: nil, appNameTag: sessionTag(principal: "app-user"), forceReadOnly: false)
        #expect(backend.userName.isEmpty && backend.password.isEmpty && backend.sspi.isEmpty)
        #expect(backend.fedAuth == .securityToken(token: "eyJ.token", echo: true, nonce: nil))
        #expect(backend.hostName == "app-host" && backend.database == "appdb" && backend.language == "us_english")
        #expect(backend.packetSize == 8000 && backend.readOnlyIntent)
        #expect(backend.appName == "orders-svc [tdsgate:app-user]")
        #expect(backend.features.filter { $0.id != Login7Feature.fedAuth } == client.features)
    }

    @Test func readOnlyPrincipalsAreForcedToReadIntent() {
        var client = clientLogin()
        client.readOnlyIntent = false
        let backend = backendLogin7(from: client, accessToken: "t", fedAuthEcho: false, nonce: nil, appNameTag: nil, forceReadOnly: true)
        #expect(backend.readOnlyIntent)
        #expect(backend.appName == "orders-svc")
    }

    func loginReply(routing: Bool, fedAuthAck: Bool) -> ByteBuffer {
        var b = ByteBuffer()
        TDSToken.envChange(.database(new: "appdb", old: "master")).write(into: &b)
        TDSToken.envChange(.packetSize(new: "8000", old: "4096")).write(into: &b)
        TDSToken.loginAck(LoginAck()).write(into: &b)
        if routing { TDSToken.envChange(.routing(protocol: 0, port: 11_001, server: "worker.example")).write(into: &b) }
        var acks = [FeatureAck(id: 0x0A, data: [1])]
        if fedAuthAck { acks.append(FeatureAck(id: Login7Feature.fedAuth, data: [])) }
        TDSToken.featureExtAck(acks).write(into: &b)
        TDSToken.done(Done()).write(into: &b)
        return b
    }

    @Test func replyAnalysisFindsRoutingAndPacketSize() throws {
        let r = try BackendLoginReply(parsing: loginReply(routing: true, fedAuthAck: true))
        #expect(r.loggedIn && r.routing?.host == "worker.example" && r.routing?.port == 11_001 && r.packetSize == 8000)
    }

    @Test func clientReplyDropsWhatTheClientDidNotAskFor() throws {
        let filtered = try clientLoginReply(loginReply(routing: true, fedAuthAck: true), clientFeatures: [0x0A], clientSentFeatureExt: true)
        let tokens = try TDSTokenParser.parseAll(filtered)
        #expect(!tokens.contains { if case .envChange(.routing) = $0 { return true } else { return false } })
        #expect(tokens.contains { if case .featureExtAck(let a) = $0 { return a == [FeatureAck(id: 0x0A, data: [1])] } else { return false } })
        #expect(tokens.contains { if case .loginAck = $0 { return true } else { return false } })
        let untouched = try clientLoginReply(loginReply(routing: false, fedAuthAck: true), clientFeatures: [0x0A, 0x02], clientSentFeatureExt: true)
        #expect(untouched == loginReply(routing: false, fedAuthAck: true), "tokens are copied byte for byte when nothing is dropped")
    }

    @Test func loginErrorsReachThePlanWithTheirNumber() throws {
        var b = ByteBuffer()
        TDSToken.error(ServerMessage(number: 40613, severity: 17, message: "not available")).write(into: &b)
        TDSToken.done(Done(status: .error)).write(into: &b)
        #expect(SessionLogin.outcome(of: try BackendLoginReply(parsing: b)) == .failed(.server(number: 40613, message: "not available")))
        var c = ByteBuffer()
        TDSToken.done(Done(status: .error)).write(into: &c)
        guard case .failed(.connect) = SessionLogin.outcome(of: try BackendLoginReply(parsing: c)) else {
            Issue.record("a reply with neither LOGINACK nor an error is a failed attempt")
            return
        }
        #expect(SessionLogin.outcome(of: try BackendLoginReply(parsing: loginReply(routing: true, fedAuthAck: false)))
            == .redirected(LoginRedirect(host: "worker.example", port: 11_001)))
        #expect(SessionLogin.outcome(of: try BackendLoginReply(parsing: loginReply(routing: false, fedAuthAck: false))) == .loggedIn)
    }
}
