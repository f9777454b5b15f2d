import Testing

@testable import Kerberos

/// Pieces that need no KDC: name mapping, token inspection, status classification.
struct KerberosUnitTests {
    @Test func nameRulesFirstMatchWins() throws {
        let config = KerberosAcceptorConfig(
            keytabPath: "/nonexistent", acceptedRealms: .only(["A.TEST"]),
            nameRules: [
                try KerberosNameRule(realm: "B.TEST", output: .principal),
                try KerberosNameRule(pattern: "svc-(.*)@A\\.TEST", output: .template("service:$1")),
                try KerberosNameRule(realm: "A.TEST", output: .user, lowercase: true),
            ])
        #expect(config.mapName(user: "Alice", realm: "A.TEST") == "alice")
        #expect(config.mapName(user: "svc-etl", realm: "A.TEST") == "service:etl")
        #expect(config.mapName(user: "x", realm: "B.TEST") == "x@B.TEST")
        #expect(config.mapName(user: "x", realm: "C.TEST") == nil)
        #expect(throws: (any Error).self) { try KerberosNameRule(pattern: "([") }
    }

    @Test func tokenInspection() {
        #expect(TokenInspection.inspect(Array("NTLMSSP".utf8) + [0, 1, 0, 0, 0]) == .ntlmssp)
        #expect(TokenInspection.inspect(negTokenInit(mechs: [OID.ntlm])) == .spnego(mechs: [OID.ntlm]))
        #expect(TokenInspection.offersOnlyNTLM([OID.ntlm]))
        #expect(!TokenInspection.offersOnlyNTLM([OID.krb5, OID.ntlm]))
        #expect(TokenInspection.inspect(der(0x60, der(0x06, OID.krb5) + [1, 0, 0x6e, 0x00])) == .krb5)
        #expect(TokenInspection.inspect(der(0x60, der(0x06, OID.krb5) + [1, 0, 0x42])) == .other)
        #expect(TokenInspection.inspect([0x60, 0x84, 0xff, 0xff, 0xff, 0xff]) == .other)
    }

    @Test func classificationByCodeAndByText() {
        #expect(KerberosRefusal.classify(major: 13 << 16, minor: KRB5Error.badIntegrity, text: "") == .wrongServiceKey)
        #expect(KerberosRefusal.classify(major: 13 << 16, minor: KRB5Error.tktExpired, text: "") == .ticketExpired)
        #expect(KerberosRefusal.classify(major: 13 << 16, minor: KRB5Error.skew, text: "") == .clockSkew)
        #expect(KerberosRefusal.classify(major: 13 << 16, minor: KRB5Error.ktNotFound, text: "") == .servicePrincipalNotInKeytab)
        // SPNEGO re-numbers minor codes: the text decides.
        #expect(KerberosRefusal.classify(major: 13 << 16, minor: 100_005, text: "Request ticket server X kvno 3 not found in keytab; ticket is likely out of date") == .wrongServiceKey)
        #expect(KerberosRefusal.classify(major: 13 << 16, minor: 100_006, text: "Request ticket server X not found in keytab (ticket kvno 1)") == .servicePrincipalNotInKeytab)
        #expect(KerberosRefusal.classify(major: 9 << 16, minor: 0, text: "") == .malformedToken)
        #expect(KRB5Error.badIntegrity == 0x96C7_3A1F)
    }
}
