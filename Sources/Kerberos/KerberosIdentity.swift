/// How the client wrapped its Kerberos token.
public enum KerberosMechanism: String, Sendable, Equatable {
    /// A bare GSS krb5 token (OID 1.2.840.113554.1.2.2), as FreeTDS sends it.
    case krb5
    /// SPNEGO (1.3.6.1.5.5.2) around krb5, as Windows SSPI and ODBC Driver 18 send it.
    case spnego
}

/// Who logged in, once the exchange is complete.
public struct KerberosIdentity: Sendable, Equatable {
    /// The client principal as the ticket names it: `alice@TDSGATE.TEST`.
    public let principal: String
    /// `alice`
    public let user: String
    /// `TDSGATE.TEST`
    public let realm: String
    /// The tdsgate principal name produced by the mapping rules.
    public let mappedName: String
    public let mechanism: KerberosMechanism

    public init(principal: String, user: String, realm: String, mappedName: String, mechanism: KerberosMechanism) {
        self.principal = principal
        self.user = user
        self.realm = realm
        self.mappedName = mappedName
        self.mechanism = mechanism
    }
}

/// What one SSPI leg produced.
public enum KerberosStep: Sendable, Equatable {
    /// Send `reply` to the client in an SSPI (0xED) token and wait for its next SSPI packet.
    case continueNeeded(reply: [UInt8])
    /// Login authenticated. A non-nil `reply` (mutual-auth AP-REP / SPNEGO accept-completed)
    /// goes to the client as an SSPI (0xED) token before LOGINACK.
    case accepted(KerberosIdentity, reply: [UInt8]?)
    /// Login refused; the exchange is over.
    case refused(KerberosRefusal)
}
