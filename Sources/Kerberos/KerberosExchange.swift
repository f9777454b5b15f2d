import CGSSAPI

/// One login's Kerberos exchange: feed it each SSPI blob from the client (the LOGIN7 SSPI
/// data, then every SSPI 0x11 packet) and send back what it says. Not thread-safe and not
/// meant to be copied: one login, one task. Dropping it releases the GSS context.
public struct KerberosExchange {
    private let config: KerberosAcceptorConfig
    private let credential: GSSCredential?
    private let context = GSSContext()
    private var failure: KerberosRefusal?
    private var mechanism: KerberosMechanism?
    private var finished = false
    /// How many tokens `step` has been given so far.
    public private(set) var stepCount = 0

    init(config: KerberosAcceptorConfig, credential: GSSCredential) {
        self.config = config
        self.credential = credential
    }

    init(config: KerberosAcceptorConfig, failure: KerberosRefusal) {
        self.config = config
        self.credential = nil
        self.failure = failure
    }

    /// Processes one client token. After `.accepted` or `.refused` the exchange is over and
    /// further calls are refused.
    public mutating func step(_ token: [UInt8]) -> KerberosStep {
        if let failure { return finish(.refused(failure)) }
        guard !finished, let credential else {
            return finish(.refused(KerberosRefusal(code: .authenticationFailed, message: "Kerberos exchange already finished")))
        }
        stepCount += 1
        guard stepCount <= config.maxSteps else { return refuse(.tooManySteps) }
        guard !token.isEmpty else { return refuse(.malformedToken, message: "empty SSPI token") }

        if stepCount == 1 {
            switch TokenInspection.inspect(token) {
            case .ntlmssp: return refuse(.ntlmNotSupported)
            case .spnego(let mechs):
                if let mechs, TokenInspection.offersOnlyNTLM(mechs) { return refuse(.ntlmNotSupported) }
                mechanism = .spnego
            case .krb5: mechanism = .krb5
            case .other: return refuse(.malformedToken, message: "SSPI token is neither Kerberos nor SPNEGO")
            }
        }

        var minor: OM_uint32 = 0
        var output = cgss_buffer_desc(length: 0, value: nil)
        var srcName: OpaquePointer?
        var mechOID: cgss_OID?
        var flags: OM_uint32 = 0
        let major = token.withUnsafeBytes { raw -> OM_uint32 in
            var input = cgss_buffer_desc(length: raw.count, value: UnsafeMutableRawPointer(mutating: raw.baseAddress))
            return cgss_accept_sec_context(&minor, &context.handle, credential.handle, &input, &srcName, &mechOID, &output, &flags, nil)
        }
        let name = GSSName(handle: srcName)
        let reply = takeBuffer(&output)

        if isGSSError(major) {
            let refusal = KerberosRefusal.fromAccept(major: major, minor: minor, text: gssStatusText(major: major, minor: minor))
            return finish(.refused(refusal))
        }
        if major & CGSS_S_CONTINUE_NEEDED != 0 {
            return .continueNeeded(reply: reply)
        }
        // Complete. The negotiated mechanism must be Kerberos: SPNEGO could in principle
        // settle on NTLM if an NTLM mechanism module were installed on this machine.
        if let mech = OIDBytes.bytes(mechOID), mech == OIDBytes.ntlm { return refuse(.ntlmNotSupported) }
        guard let principal = name.displayString, let at = principal.lastIndex(of: "@") else {
            return refuse(.authenticationFailed, message: "Kerberos client principal has no realm")
        }
        let user = String(principal[..<at])
        let realm = String(principal[principal.index(after: at)...])
        guard config.acceptedRealms.accepts(realm) else {
            return refuse(.unknownRealm, message: "Kerberos realm \(realm) (client \(principal)) is not accepted by tdsgate")
        }
        guard let mapped = config.mapName(user: user, realm: realm) else {
            return refuse(.noMappingRule, message: "no tdsgate principal mapping rule matches Kerberos principal \(principal)")
        }
        let identity = KerberosIdentity(principal: principal, user: user, realm: realm, mappedName: mapped, mechanism: mechanism ?? .krb5)
        return finish(.accepted(identity, reply: reply.isEmpty ? nil : reply))
    }

    private mutating func refuse(_ code: KerberosRefusal.Code, message: String? = nil) -> KerberosStep {
        finish(.refused(KerberosRefusal(code: code, message: message)))
    }

    private mutating func finish(_ step: KerberosStep) -> KerberosStep {
        finished = true
        context.delete()
        if case .refused(let r) = step, failure == nil { failure = r }
        return step
    }
}

@available(*, unavailable, message: "one KerberosExchange per login, used from one task")
extension KerberosExchange: Sendable {}
