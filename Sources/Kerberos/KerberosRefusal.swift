/// Why a Kerberos login was refused: `code` for programs (metrics, tests, the login error
/// the proxy picks), `message` for the person reading the log or the client's error,
/// `detail` for the operator (the GSS-API library's own words). None of them ever holds
/// token bytes.
public struct KerberosRefusal: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Code: String, Sendable, Equatable {
        case ntlmNotSupported
        case wrongServiceKey
        case ticketExpired
        case clockSkew
        case unknownRealm
        case noMappingRule
        case servicePrincipalNotInKeytab
        case malformedToken
        case replayedToken
        case libraryUnavailable
        case keytabUnavailable
        case tooManySteps
        case unsupportedMechanism
        case authenticationFailed
    }

    public let code: Code
    public let message: String
    /// The GSS-API status text (`gss_display_status`), when the library produced one.
    public let detail: String?
    /// GSS major / minor status (MIT: minor = krb5 error code as UInt32), 0 when not from GSS.
    public let majorStatus: UInt32
    public let minorStatus: UInt32

    public init(code: Code, message: String? = nil, detail: String? = nil, majorStatus: UInt32 = 0, minorStatus: UInt32 = 0) {
        self.code = code
        self.message = message ?? Self.defaultMessage(code)
        self.detail = detail
        self.majorStatus = majorStatus
        self.minorStatus = minorStatus
    }

    public var description: String {
        if let detail { return "\(message) [\(code.rawValue): \(detail)]" }
        return "\(message) [\(code.rawValue)]"
    }

    public static let ntlmMessage =
        "NTLM is not supported by tdsgate; use Kerberos (check the SPN MSSQLSvc/host:port and that the client has a ticket)"

    static func defaultMessage(_ code: Code) -> String {
        switch code {
        case .ntlmNotSupported: return ntlmMessage
        case .wrongServiceKey:
            return "Kerberos ticket cannot be decrypted with tdsgate's keytab (wrong service key or key version; re-export the keytab after the service password changed)"
        case .ticketExpired: return "Kerberos ticket expired; the client must renew it (kinit)"
        case .clockSkew: return "Kerberos clock skew too great between client and tdsgate; synchronise the clocks"
        case .unknownRealm: return "Kerberos realm of the client is not accepted by tdsgate"
        case .noMappingRule: return "no tdsgate principal mapping rule matches the Kerberos principal"
        case .servicePrincipalNotInKeytab:
            return "the service principal the client asked a ticket for is not in tdsgate's keytab (check the SPN MSSQLSvc/host:port)"
        case .malformedToken: return "malformed Kerberos/SPNEGO token"
        case .replayedToken: return "Kerberos authenticator replayed"
        case .libraryUnavailable: return "Kerberos is not available: the MIT GSS-API library (libgssapi_krb5.so.2) could not be loaded"
        case .keytabUnavailable: return "tdsgate's Kerberos keytab is missing, unreadable or empty"
        case .tooManySteps: return "Kerberos exchange took too many steps"
        case .unsupportedMechanism: return "the client offered no security mechanism tdsgate supports (Kerberos, or SPNEGO with Kerberos)"
        case .authenticationFailed: return "Kerberos authentication failed"
        }
    }
}

/// MIT krb5 error codes (com_err table "krb5", base -1765328384), as the GSS minor status
/// carries them. Values checked against krb5.h from Debian 12's krb5-multidev 1.20.1.
enum KRB5Error {
    static func code(_ v: Int32) -> UInt32 { UInt32(bitPattern: v) }
    static let badIntegrity = code(-1765328353)  // KRB5KRB_AP_ERR_BAD_INTEGRITY
    static let tktExpired = code(-1765328352)  // KRB5KRB_AP_ERR_TKT_EXPIRED
    static let tktNotYetValid = code(-1765328351)  // KRB5KRB_AP_ERR_TKT_NYV
    static let repeatRequest = code(-1765328350)  // KRB5KRB_AP_ERR_REPEAT
    static let notUs = code(-1765328349)  // KRB5KRB_AP_ERR_NOT_US
    static let skew = code(-1765328347)  // KRB5KRB_AP_ERR_SKEW
    static let badVersion = code(-1765328345)  // KRB5KRB_AP_ERR_BADVERSION
    static let msgType = code(-1765328344)  // KRB5KRB_AP_ERR_MSG_TYPE
    static let modified = code(-1765328343)  // KRB5KRB_AP_ERR_MODIFIED
    static let badKeyVersion = code(-1765328340)  // KRB5KRB_AP_ERR_BADKEYVER
    static let noKey = code(-1765328339)  // KRB5KRB_AP_ERR_NOKEY
    static let wrongPrincipal = code(-1765328240)  // KRB5KRB_AP_WRONG_PRINC
    static let rcReplay = code(-1765328221)  // KRB5_RC_REPLAY
    static let ktNotFound = code(-1765328203)  // KRB5_KT_NOTFOUND
    static let ktEnd = code(-1765328202)  // KRB5_KT_END
    static let ktIOErr = code(-1765328200)  // KRB5_KT_IOERR
    static let ktKvnoNotFound = code(-1765328154)  // KRB5_KT_KVNONOTFOUND
    static let ktFormat = code(-1765328149)  // KRB5_KT_FORMAT
}

extension KerberosRefusal {
    /// Maps a failed `gss_accept_sec_context` to a refusal. The minor code decides when it
    /// is a known krb5 code; MIT's mechglue re-numbers minor codes that pass through SPNEGO
    /// when they collide, so the library text is the fallback (MIT's extended messages,
    /// e.g. "Request ticket server ... kvno 3 not found in keytab; ticket is likely out of date").
    static func fromAccept(major: UInt32, minor: UInt32, text: String) -> KerberosRefusal {
        let code = classify(major: major, minor: minor, text: text)
        return KerberosRefusal(code: code, detail: text, majorStatus: major, minorStatus: minor)
    }

    static func classify(major: UInt32, minor: UInt32, text: String) -> Code {
        switch minor {
        case KRB5Error.badIntegrity, KRB5Error.modified, KRB5Error.badKeyVersion, KRB5Error.noKey,
            KRB5Error.ktKvnoNotFound:
            return .wrongServiceKey
        case KRB5Error.tktExpired: return .ticketExpired
        case KRB5Error.skew, KRB5Error.tktNotYetValid: return .clockSkew
        case KRB5Error.notUs, KRB5Error.wrongPrincipal, KRB5Error.ktNotFound: return .servicePrincipalNotInKeytab
        case KRB5Error.repeatRequest, KRB5Error.rcReplay: return .replayedToken
        case KRB5Error.ktEnd, KRB5Error.ktIOErr, KRB5Error.ktFormat: return .keytabUnavailable
        case KRB5Error.badVersion, KRB5Error.msgType: return .malformedToken
        default: break
        }
        let t = text.lowercased()
        if t.contains("not found in keytab; ticket is likely out of date")
            || t.contains("keytab is likely out of date")
            || t.contains("cannot decrypt ticket") || t.contains("integrity check failed")
            || t.contains("but not with enctype")
        {
            return .wrongServiceKey
        }
        if t.contains("not found in keytab") || t.contains("does not match") || t.contains("wrong principal") {
            return .servicePrincipalNotInKeytab
        }
        if t.contains("ticket expired") { return .ticketExpired }
        if t.contains("clock skew") || t.contains("not yet valid") { return .clockSkew }
        if t.contains("replay") { return .replayedToken }
        if t.contains("malformed") || t.contains("corrupt") || t.contains("asn.1") { return .malformedToken }
        let routine = major & 0x00FF_0000
        switch routine {
        case 9 << 16, 6 << 16:  // DEFECTIVE_TOKEN, BAD_SIG
            return .malformedToken
        case 1 << 16:  // BAD_MECH
            return .unsupportedMechanism
        case 7 << 16, 10 << 16:  // NO_CRED, DEFECTIVE_CREDENTIAL
            return .keytabUnavailable
        case 11 << 16, 12 << 16:  // CREDENTIALS_EXPIRED, CONTEXT_EXPIRED
            return .ticketExpired
        case 16 << 16:  // UNAVAILABLE
            return .libraryUnavailable
        default:
            return .authenticationFailed
        }
    }
}
