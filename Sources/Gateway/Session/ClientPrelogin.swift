import TDS

/// How the client leg of a session is protected, decided from the client's PRELOGIN and
/// what the listener allows.
enum ClientTLSMode: Equatable, Sendable {
    case none
    case full
    case loginOnly
}

struct ClientPreloginDecision: Equatable {
    var response: PreloginMessage
    var tls: ClientTLSMode
    /// Set when the session cannot go on: the client gets the response (so it can report
    /// the encryption mismatch itself) and the connection closes.
    var refusal: String?
}

/// Answers a client's PRELOGIN the way SQL Server would for the listener's policy. Login-only
/// and plaintext are served only when the listener lists them; otherwise the answer is
/// ENCRYPT_REQ, which every driver turns into full TLS (or a clear client-side error).
func decideClientPrelogin(_ request: PreloginMessage, allowed: Set<ClientEncryption>, hasCertificate: Bool, strict: Bool) -> ClientPreloginDecision {
    var response = PreloginMessage()
    response.version = PreloginVersion(major: 16, minor: 0, build: 1000, subBuild: 0)
    response.encryption = .notSupported
    response.instance = ""
    response.setData([], for: PreloginOption.threadIDToken)
    // MARS when the client asks: the relay then moves whole SMP packets (RelayFraming.smp).
    response.mars = request.mars == true
    if request.fedAuthRequired != nil { response.fedAuthRequired = 0x01 }

    if strict {
        return ClientPreloginDecision(response: response, tls: .none, refusal: nil)
    }
    let client = request.encryption?.mode ?? .notSupported
    let canTLS = hasCertificate && (allowed.contains(.required) || allowed.contains(.loginOnly))
    switch client {
    case .off where hasCertificate && allowed.contains(.loginOnly):
        response.encryption = .off
        return ClientPreloginDecision(response: response, tls: .loginOnly, refusal: nil)
    case .off, .on, .required:
        if hasCertificate && allowed.contains(.required) {
            response.encryption = client == .off ? .required : .on
            return ClientPreloginDecision(response: response, tls: .full, refusal: nil)
        }
        if allowed.contains(.plaintext) && client == .off {
            response.encryption = .notSupported
            return ClientPreloginDecision(response: response, tls: .none, refusal: nil)
        }
        response.encryption = canTLS ? .required : .notSupported
        return ClientPreloginDecision(response: response, tls: .none,
                                      refusal: "the client's encryption setting does not match what this listener allows")
    default:
        if allowed.contains(.plaintext) {
            return ClientPreloginDecision(response: response, tls: .none, refusal: nil)
        }
        response.encryption = .required
        return ClientPreloginDecision(response: response, tls: .none,
                                      refusal: "the client does not support encryption and this listener requires TLS")
    }
}
