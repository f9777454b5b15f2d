import Testing
import TDS
@testable import Gateway

/// Every transition of the client session machine, inputs in and actions out, no sockets.
@Suite struct ClientSessionStateMachineTests {
    typealias Machine = ClientSessionStateMachine
    typealias Action = ClientSessionStateMachine.Action

    func machine(_ allowed: Set<ClientEncryption> = [.required, .strict], certificate: Bool = true) -> Machine {
        Machine(settings: .init(listener: "main", allowed: allowed, hasCertificate: certificate, loginTimeoutSeconds: 30))
    }

    func prelogin(_ enc: PreloginEncryption?, mars: Bool = false) -> PreloginMessage {
        var p = PreloginMessage()
        p.version = PreloginVersion(major: 18, minor: 0, build: 0)
        p.encryption = enc
        if mars { p.mars = true }
        return p
    }

    func login(integrated: Bool = false) -> Login7 {
        var l = Login7(packetSize: 4096, hostName: "h", userName: "app-user", password: "pw", appName: "a",
                       serverName: "s", language: "", database: "appdb")
        if integrated { l.optionFlags2 |= 0x80 }
        return l
    }

    func answered(_ actions: [Action]) -> PreloginMessage? {
        for case .answerPrelogin(let p) in actions { return p }
        return nil
    }

    func refusal(_ actions: [Action]) -> (LoginRefusal, SessionEndReason)? {
        for case .refuse(let r, let reason) in actions { return (r, reason) }
        return nil
    }

    @Test func fullTLSThenLoginThenHandOff() {
        var m = machine()
        let a = m.prelogin(.success(prelogin(.on)))
        #expect(answered(a)?.encryption == .on)
        #expect(a.last == .startTLS(loginOnly: false))
        #expect(m.state == .tlsHandshake(.init(tls: .full)))
        #expect(m.tlsHandshakeCompleted().isEmpty)
        #expect(m.state == .awaitingLogin(.init(tls: .full)))
        let l = login()
        #expect(m.login7(.success(l)) == [.beginLogin(l, .init(tls: .full))])
        #expect(m.loginSucceeded() == [.handOff])
        #expect(m.state == .relaying)
        // The relay owns the session now: nothing more from this machine.
        #expect(m.deadlineFired().isEmpty)
        #expect(m.closeRequested(.shutdown).isEmpty)
        #expect(m.channelInactive().isEmpty)
    }

    @Test func loginOnlyTLSDropsAtLogin7() {
        var m = machine([.required, .loginOnly])
        let a = m.prelogin(.success(prelogin(.off)))
        #expect(a.last == .startTLS(loginOnly: true))
        _ = m.tlsHandshakeCompleted()
        let l = login()
        #expect(m.login7(.success(l)) == [.dropTLS, .beginLogin(l, .init(tls: .loginOnly))])
    }

    @Test func login7ThatArrivesBeforeTheHandshakeEventIsStillServed() {
        var m = machine()
        _ = m.prelogin(.success(prelogin(.on)))
        let l = login()
        #expect(m.login7(.success(l)) == [.beginLogin(l, .init(tls: .full))])
    }

    @Test func strictModeAnswersPreloginWithoutTLSInside() {
        var m = machine()
        #expect(m.strictTLSStarted().isEmpty)
        #expect(m.state == .awaitingPrelogin(strict: true, tlsReady: false))
        _ = m.tlsHandshakeCompleted()
        #expect(m.state == .awaitingPrelogin(strict: true, tlsReady: true))
        let a = m.prelogin(.success(prelogin(.notSupported)))
        #expect(a.count == 1 && answered(a) != nil)
        #expect(m.state == .awaitingLogin(.init(tls: .none, strict: true)))
    }

    @Test func marsIsRememberedForTheLogin() {
        var m = machine([.plaintext], certificate: false)
        _ = m.prelogin(.success(prelogin(.notSupported, mars: true)))
        let l = login()
        #expect(m.login7(.success(l)) == [.beginLogin(l, .init(tls: .none, strict: false, mars: true))])
    }

    @Test func encryptionMismatchAnswersThenClosesWithoutTLS() {
        var m = machine([.required])
        let a = m.prelogin(.success(prelogin(.notSupported)))
        #expect(answered(a)?.encryption == .required)
        guard case .close(.refused(let why))? = a.last else {
            Issue.record("expected a close, got \(a)")
            return
        }
        #expect(why.contains("requires TLS"))
        #expect(m.state == .closed)
    }

    @Test func malformedMessagesAreProtocolErrors() {
        var m = machine()
        let bad = TDSDecodingError(field: "option table", reason: "offset past the end")
        let r = refusal(m.prelogin(.failure(bad)))
        #expect(r?.0.number == 4002 && r?.0.message.contains("PRELOGIN message is malformed") == true)
        var m2 = machine([.plaintext], certificate: false)
        _ = m2.prelogin(.success(prelogin(.notSupported)))
        let r2 = refusal(m2.login7(.failure(bad)))
        #expect(r2?.0.number == 4002 && r2?.0.message.contains("LOGIN7 message is malformed") == true)
        var m3 = machine()
        #expect(refusal(m3.decodingFailed(bad))?.0.number == 4002)
    }

    @Test func login7WithoutPreloginOnlyOnPlaintextListeners() {
        var tls = machine()
        let r = refusal(tls.login7(.success(login())))
        #expect(r?.0.number == 18456 && r?.0.message.contains("sent no PRELOGIN") == true)
        var plain = machine([.plaintext], certificate: false)
        let l = login()
        #expect(plain.login7(.success(l)) == [.beginLogin(l, .init())])
    }

    @Test func unexpectedMessagesBeforeAndDuringLogin() {
        var m = machine()
        #expect(refusal(m.message(.sqlBatch))?.0.message.contains("unexpected SQLBatch message before login") == true)
        var m2 = machine([.plaintext], certificate: false)
        _ = m2.prelogin(.success(prelogin(.notSupported)))
        _ = m2.login7(.success(login()))
        let a = m2.message(.sqlBatch)
        #expect(a.first == .cancelLogin)
        #expect(refusal(a)?.0.message.contains("before its login completed") == true)
        var m3 = machine()
        _ = m3.prelogin(.success(prelogin(.on)))
        #expect(refusal(m3.prelogin(.success(prelogin(.on)))) != nil, "a second PRELOGIN is a protocol error")
    }

    @Test func sspiLegsGoThroughTheMachine() {
        var m = machine([.plaintext], certificate: false)
        _ = m.prelogin(.success(prelogin(.notSupported)))
        _ = m.login7(.success(login(integrated: true)))
        #expect(refusal(m.sspi([1])) != nil, "an SSPI message nobody asked for is a protocol error")
        var k = machine([.plaintext], certificate: false)
        _ = k.prelogin(.success(prelogin(.notSupported)))
        _ = k.login7(.success(login(integrated: true)))
        #expect(k.sspiTokenReady([9, 9]) == [.sendSSPI([9, 9])])
        #expect(k.sspi([7]) == [.deliverSSPI([7])])
        #expect(k.sspiTokenReady([8]) == [.sendSSPI([8])])
        #expect(k.sspiTimedOut(after: 30) == [.failSSPI("the client sent no SSPI reply within 30 s")])
        #expect(k.sspiTimedOut(after: 30).isEmpty, "nothing pending any more")
    }

    @Test func deadlineBeforePreloginAnswerClosesSilently() {
        var m = machine()
        #expect(m.deadlineFired() == [.close(.loginTimeout)])
        var half = machine()
        _ = half.prelogin(.success(prelogin(.on)))
        #expect(half.deadlineFired() == [.close(.loginTimeout)], "TLS half done: no TDS message can reach the client")
    }

    @Test func deadlineWaitingForLogin7SendsAnError() {
        var m = machine()
        _ = m.prelogin(.success(prelogin(.on)))
        _ = m.tlsHandshakeCompleted()
        let r = refusal(m.deadlineFired())
        #expect(r?.0.number == 17830 && r?.1 == .loginTimeout)
        #expect(r?.0.message.contains("login_timeout_s") == true)
        #expect(m.state == .closed)
    }

    @Test func deadlineDuringLoginCancelsItWithARetryableError() {
        var m = machine([.plaintext], certificate: false)
        _ = m.prelogin(.success(prelogin(.notSupported)))
        _ = m.login7(.success(login()))
        let a = m.deadlineFired()
        #expect(a.first == .cancelLogin)
        let r = refusal(a)
        #expect(r?.0.number == 40613 && r?.1 == .loginTimeout)
        // The cancelled login's own result arrives later and changes nothing.
        #expect(m.loginFailed(LoginRefusal(message: "cancelled")).isEmpty)
        #expect(m.loginSucceeded() == [.discardBackend])
    }

    @Test func clientLeavingDuringLoginCancelsIt() {
        var m = machine([.plaintext], certificate: false)
        _ = m.prelogin(.success(prelogin(.notSupported)))
        _ = m.login7(.success(login(integrated: true)))
        _ = m.sspiTokenReady([1])
        #expect(m.channelInactive() == [.cancelLogin, .ended(.clientClosed)])
        #expect(m.loginSucceeded() == [.discardBackend], "a backend that logged in for nobody is closed")
        var idle = machine()
        #expect(idle.channelInactive() == [.ended(.clientClosed)])
    }

    @Test func closeRequestEndsTheSessionWithItsReason() {
        var m = machine([.plaintext], certificate: false)
        _ = m.prelogin(.success(prelogin(.notSupported)))
        _ = m.login7(.success(login()))
        #expect(m.closeRequested(.shutdown) == [.cancelLogin, .close(.shutdown)])
        var early = machine()
        #expect(early.closeRequested(.shutdown) == [.close(.shutdown)])
    }

    @Test func loginRefusalEndsAsRefused() {
        var m = machine([.plaintext], certificate: false)
        _ = m.prelogin(.success(prelogin(.notSupported)))
        _ = m.login7(.success(login()))
        let no = LoginRefusal(message: "Login failed for user 'app-user'.")
        #expect(m.loginFailed(no) == [.refuse(no, ending: .refused(no.message))])
        #expect(m.state == .closed)
    }
}

@Suite struct ConnectionLimitTests {
    @Test func aConnectionOverALimitIsRefusedAtLogin7WithATransientError() {
        var m = ClientSessionStateMachine(settings: .init(listener: "main", allowed: [.required, .loginOnly], hasCertificate: true,
                                                          loginTimeoutSeconds: 30, overLimit: .perSource(4, source: "192.0.2.9")))
        _ = m.prelogin(.success({ var p = PreloginMessage(); p.encryption = .off; return p }()))
        _ = m.tlsHandshakeCompleted()
        let a = m.login7(.success(Login7(packetSize: 4096, hostName: "", userName: "u", password: "p", appName: "",
                                         serverName: "", language: "", database: "")))
        #expect(a.first == .dropTLS, "login-only TLS still ends, so the client can read the refusal")
        #expect(a.contains { if case .countOverLimit(.perSource(4, "192.0.2.9"), _, _) = $0 { true } else { false } })
        guard case .refuse(let r, _)? = a.last else {
            Issue.record("expected a refusal, got \(a)")
            return
        }
        #expect(r.number == 10928)
        #expect(r.message.contains("192.0.2.9") && r.message.contains("max_connections_per_source"))
    }

    @Test func countsAdmitUpToEachLimit() {
        var c = ConnectionCounts()
        let limits = ConnectionLimits(total: 3, perSource: 2, pending: 10)
        #expect(c.admit("a", limits: limits) == nil)
        #expect(c.admit("a", limits: limits) == nil)
        #expect(c.admit("a", limits: limits) == .perSource(2, source: "a"))
        #expect(c.admit("b", limits: limits) == nil)
        #expect(c.admit("c", limits: limits) == .total(3))
        c.closed("a", wasPending: true)
        #expect(c.admit("c", limits: limits) == nil)
        #expect(c.total == 3 && c.bySource == ["a": 1, "b": 1, "c": 1])
    }

    @Test func pendingCountsOnlyConnectionsNotLoggedIn() {
        var c = ConnectionCounts()
        let limits = ConnectionLimits(pending: 1)
        #expect(c.admit("a", limits: limits) == nil)
        #expect(c.admit("b", limits: limits) == .pending(1))
        c.loggedIn()
        #expect(c.admit("b", limits: limits) == nil)
        c.closed("a", wasPending: false)
        c.closed("b", wasPending: true)
        #expect(c == ConnectionCounts())
    }

    @Test func ticketsReleaseOnceAndLogInOnce() throws {
        let limiter = ConnectionLimiter(limits: ConnectionLimits(total: 1, pending: 1))
        let ticket = try limiter.admit(source: "a").get()
        #expect(throws: LimitExceeded.total(1)) { try limiter.admit(source: "b").get() }
        ticket.loggedIn()
        ticket.loggedIn()
        #expect(limiter.snapshot.pending == 0 && limiter.snapshot.total == 1)
        ticket.release()
        ticket.release()
        #expect(limiter.snapshot == ConnectionCounts())
    }
}
