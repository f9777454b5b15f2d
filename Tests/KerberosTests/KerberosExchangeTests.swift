import Foundation
import Testing

@testable import Kerberos

/// End-to-end against a real MIT KDC on loopback. Serialized: the realm, KRB5_CONFIG and
/// MIT's test-only "allow expired client tickets" switch are process-wide.
@Suite(.serialized)
struct KerberosExchangeTests {
    let realm: TestRealm
    init() throws { realm = try TestRealm.shared() }

    var port: Int { TestRealm.servicePort }

    @Test func rawKrb5LoginIsAccepted() throws {
        let (step, legs) = try login(
            acceptor(keytab: realm.keytab), service: "MSSQLSvc/localhost:\(port)", mechanism: .krb5,
            ccache: realm.ccache("alice"))
        let id = try #require(identity(step), "\(step)")
        #expect(id.principal == "alice@TDSGATE.TEST")
        #expect(id.user == "alice" && id.realm == "TDSGATE.TEST")
        #expect(id.mappedName == "alice")
        #expect(id.mechanism == .krb5)
        #expect(legs == 1)
        if case .accepted(_, let reply) = step { #expect(reply != nil, "mutual auth needs an AP-REP") }
    }

    @Test func spnegoLoginIsAcceptedWithTemplateMapping() throws {
        let rules = [
            try KerberosNameRule(pattern: "alice@.*", output: .template("nobody")),
            try KerberosNameRule(realm: TestRealm.realm, pattern: "([a-z]+)@TDSGATE\\.TEST", output: .template("CORP\\\\$1-{realm}"), lowercase: true),
        ]
        for service in ["MSSQLSvc@localhost", "MSSQLSvc/localhost:\(port)", "MSSQLSvc/127.0.0.1:\(port)"] {
            let (step, _) = try login(
                acceptor(keytab: realm.keytab, rules: rules), service: service, mechanism: .spnego,
                ccache: realm.ccache("bob"))
            let id = try #require(identity(step), "\(service): \(step)")
            #expect(id.principal == "bob@TDSGATE.TEST")
            #expect(id.mappedName == "corp\\bob-tdsgate.test")
            #expect(id.mechanism == .spnego)
        }
    }

    /// A SPNEGO offer without an optimistic token takes two legs: the acceptor answers
    /// accept-incomplete, the client then sends the krb5 AP-REQ in a NegTokenResp.
    @Test func spnegoTwoLegExchange() throws {
        let acc = try acceptor(keytab: realm.keytab)
        var exchange = acc.startExchange()
        guard case .continueNeeded(let reply) = exchange.step(negTokenInit(mechs: [OID.krb5])) else {
            Issue.record("first leg did not ask to continue")
            return
        }
        #expect(!reply.isEmpty)
        let client = try KerberosInitiator(service: "MSSQLSvc/localhost:\(port)", mechanism: .krb5, ccache: realm.ccache("alice"))
        let apReq = try client.step()
        let step = exchange.step(negTokenResp(responseToken: apReq))
        let id = try #require(identity(step), "\(step)")
        #expect(id.principal == "alice@TDSGATE.TEST")
        #expect(id.mechanism == .spnego)
        #expect(exchange.stepCount == 2)
    }

    @Test func stepCapRefusesLongExchanges() throws {
        var exchange = try acceptor(keytab: realm.keytab, maxSteps: 1).startExchange()
        guard case .continueNeeded = exchange.step(negTokenInit(mechs: [OID.krb5])) else {
            Issue.record("first leg did not ask to continue")
            return
        }
        #expect(refusal(exchange.step([0xa1, 0x00]))?.code == .tooManySteps)
    }

    @Test func wrongServiceKeyIsRefused() throws {
        let wrong = realm.path("wrong.keytab")
        try? FileManager.default.removeItem(atPath: wrong)
        try realm.kdc(["wrongkey", "--keytab", wrong, "--principal", "MSSQLSvc/localhost:\(port)"])
        for mech in [KerberosInitiator.Mechanism.krb5, .spnego] {
            let (step, _) = try login(
                acceptor(keytab: wrong), service: "MSSQLSvc/localhost:\(port)", mechanism: mech,
                ccache: realm.ccache("alice"))
            let r = try #require(refusal(step), "\(step)")
            #expect(r.code == .wrongServiceKey, "\(r)")
            #expect(r.message.contains("cannot be decrypted"))
        }
    }

    /// The service is re-keyed: the old keytab now has the wrong kvno (refused); replacing
    /// the file on disk makes the same acceptor use the new key, without a restart.
    @Test func rekeyedServiceThenKeytabReloaded() throws {
        let svc = "MSSQLSvc/rekey.localhost:\(port)"
        let live = realm.path("rekey.keytab"), fresh = realm.path("rekey-new.keytab")
        try realm.kdc(["addprinc", "--principal", svc])
        try realm.kdc(["ktadd", "--keytab", live, "--principal", svc])
        try realm.kdc(["ktadd", "--keytab", fresh, "--principal", svc, "--rekey"])
        let acc = try acceptor(keytab: live)
        try acc.preflight()
        let (old, _) = try login(acc, service: svc, mechanism: .spnego, ccache: realm.ccache("alice"))
        let r = try #require(refusal(old), "\(old)")
        #expect(r.code == .wrongServiceKey, "\(r)")

        // Replace the keytab the way deployments do: write aside, rename over.
        let tmp = live + ".tmp"
        try? FileManager.default.removeItem(atPath: tmp)
        try FileManager.default.copyItem(atPath: fresh, toPath: tmp)
        #expect(rename(tmp, live) == 0)
        let (new, _) = try login(acc, service: svc, mechanism: .spnego, ccache: realm.ccache("alice"))
        #expect(identity(new)?.principal == "alice@TDSGATE.TEST", "\(new)")
    }

    @Test func servicePrincipalNotInKeytabIsRefused() throws {
        let other = realm.path("only-localhost.keytab")
        try? FileManager.default.removeItem(atPath: other)
        try realm.kdc(["ktadd", "--keytab", other, "--principal", "MSSQLSvc/localhost"])
        let (step, _) = try login(
            acceptor(keytab: other), service: "MSSQLSvc/localhost:\(port)", mechanism: .krb5,
            ccache: realm.ccache("alice"))
        #expect(refusal(step)?.code == .servicePrincipalNotInKeytab, "\(step)")
    }

    @Test func unknownRealmIsRefused() throws {
        let (step, _) = try login(
            acceptor(keytab: realm.keytab, realms: .only(["OTHER.TEST"])), service: "MSSQLSvc@localhost",
            mechanism: .spnego, ccache: realm.ccache("alice"))
        let r = try #require(refusal(step), "\(step)")
        #expect(r.code == .unknownRealm)
        #expect(r.message.contains("TDSGATE.TEST"))
    }

    @Test func anyRealmPolicyAndEmptyRulesKeepFullPrincipal() throws {
        let (step, _) = try login(
            acceptor(keytab: realm.keytab, realms: .anyRealm, rules: []), service: "MSSQLSvc@localhost",
            mechanism: .krb5, ccache: realm.ccache("bob"))
        #expect(identity(step)?.mappedName == "bob@TDSGATE.TEST", "\(step)")
    }

    @Test func noMappingRuleIsRefused() throws {
        let rules = [try KerberosNameRule(realm: "OTHER.TEST"), try KerberosNameRule(pattern: "alice@.*")]
        let (step, _) = try login(
            acceptor(keytab: realm.keytab, rules: rules), service: "MSSQLSvc@localhost", mechanism: .krb5,
            ccache: realm.ccache("bob"))
        #expect(refusal(step)?.code == .noMappingRule, "\(step)")
    }

    @Test func ntlmIsRefusedWithAClearMessage() throws {
        let acc = try acceptor(keytab: realm.keytab)
        // NTLM type-1 (NEGOTIATE) message: signature, type 1, flags, empty domain/workstation.
        let type1: [UInt8] = Array("NTLMSSP".utf8) + [0, 1, 0, 0, 0, 0x07, 0x82, 0x08, 0xa2] + [UInt8](repeating: 0, count: 16)
        let offers = [
            type1,
            negTokenInit(mechs: [OID.ntlm], mechToken: type1),
            negTokenInit(mechs: [OID.ntlm]),
        ]
        for token in offers {
            var exchange = acc.startExchange()
            let r = try #require(refusal(exchange.step(token)))
            #expect(r.code == .ntlmNotSupported)
            #expect(r.message == "NTLM is not supported by tdsgate; use Kerberos (check the SPN MSSQLSvc/host:port and that the client has a ticket)")
        }
    }

    @Test func malformedTokensAreRefused() throws {
        let acc = try acceptor(keytab: realm.keytab)
        let garbageKrb5 = der(0x60, der(0x06, OID.krb5) + [0x01, 0x00] + [UInt8](repeating: 0x42, count: 40))
        let garbageSpnego = der(0x60, der(0x06, OID.spnego) + [0xa0, 0x03, 0x30, 0x01, 0xff])
        for token in [[], [0x00, 0x01, 0x02], Array("hello, world".utf8), garbageKrb5, garbageSpnego] {
            var exchange = acc.startExchange()
            let r = try #require(refusal(exchange.step(token)))
            #expect(r.code == .malformedToken, "\(token.count) bytes: \(r)")
            #expect(!r.description.contains("4242"), "token bytes must never be echoed")
        }
    }

    @Test func missingKeytabIsAClearError() throws {
        let acc = try acceptor(keytab: realm.path("does-not-exist.keytab"))
        #expect(throws: KerberosRefusal.self) { try acc.preflight() }
        var exchange = acc.startExchange()
        let r = try #require(refusal(exchange.step([0x60, 0x00])))
        #expect(r.code == .keytabUnavailable)
        #expect(r.message.contains("does-not-exist.keytab"))
    }

    /// An AP-REQ whose ticket expired before it reached tdsgate. The test realm's clock
    /// skew is 2 s; the ticket lives 2 s; then the ccache's (unprotected) end times are
    /// stretched so MIT's client still uses it, with a fresh authenticator.
    @Test func expiredTicketIsRefused() throws {
        let cc = "FILE:" + realm.path("ccache-expiring")
        try realm.kdc(["kinit", "--user", "shortlived", "--lifetime", "2s", "--ccache", cc])
        _ = try KerberosInitiator(service: "MSSQLSvc/localhost:\(port)", mechanism: .krb5, ccache: cc).step()  // caches the service ticket
        Thread.sleep(forTimeInterval: 5)
        _ = try TestRealm.kdc(["stretch-ccache", "--ccache", cc])
        let (step, _) = try login(
            acceptor(keytab: realm.keytab), service: "MSSQLSvc/localhost:\(port)", mechanism: .krb5, ccache: cc)
        let r = try #require(refusal(step), "\(step)")
        #expect(r.code == .ticketExpired, "\(r)")
    }

    /// A token presented later than the clock skew allows (2 s in the test realm): the same
    /// check that catches a client whose clock is off.
    @Test func staleAuthenticatorIsClockSkew() throws {
        let client = try KerberosInitiator(service: "MSSQLSvc/localhost:\(port)", mechanism: .krb5, ccache: realm.ccache("alice"))
        let token = try client.step()
        Thread.sleep(forTimeInterval: 3.5)
        var exchange = try acceptor(keytab: realm.keytab).startExchange()
        let r = try #require(refusal(exchange.step(token)))
        #expect(r.code == .clockSkew, "\(r)")
    }

    @Test func replayedTokenIsRefused() throws {
        let client = try KerberosInitiator(service: "MSSQLSvc/localhost:\(port)", mechanism: .krb5, ccache: realm.ccache("alice"))
        let token = try client.step()
        let acc = try acceptor(keytab: realm.keytab)
        var first = acc.startExchange()
        #expect(identity(first.step(token)) != nil)
        var second = acc.startExchange()
        #expect(refusal(second.step(token))?.code == .replayedToken)
    }
}
