import TDS

/// The client side of one session from accept to hand-over, as a pure machine: every input
/// (a message, a transport event, the login's outcome, the deadline, a close) goes in, the
/// actions to carry out come out. It holds no channel and does no I/O:
/// `ClientSessionHandler` executes what it returns, in order.
///
/// Shape as in postgres-nio's connection state machines: one mutating function per input,
/// a small `State`, and actions a person can read in a test.
struct ClientSessionStateMachine {
    /// What the listener allows; fixed for the session.
    struct Settings: Sendable {
        var listener: String
        var allowed: Set<ClientEncryption>
        var hasCertificate: Bool
        /// `login_timeout_s`, for the message a timed-out client gets.
        var loginTimeoutSeconds: Int
        /// The connection was accepted over one of the listener's connection limits: its
        /// client is told so at LOGIN7 (the first moment a driver shows a server's error).
        var overLimit: LimitExceeded? = nil
    }

    /// What PRELOGIN settled for the rest of the session.
    struct Negotiated: Equatable, Sendable {
        var tls: ClientTLSMode = .none
        var strict = false
        var mars = false
    }

    enum State: Equatable {
        /// Waiting for PRELOGIN (or LOGIN7 from a client that predates PRELOGIN). In strict
        /// mode the TLS handshake comes first; `tlsReady` once it has completed.
        case awaitingPrelogin(strict: Bool, tlsReady: Bool)
        /// PRELOGIN answered with encryption: the TLS handshake runs in PRELOGIN packets.
        case tlsHandshake(Negotiated)
        /// Ready for LOGIN7 (after TLS, or without it).
        case awaitingLogin(Negotiated)
        /// The login runs; `sspiPending` while it waits for the client's next SSPI message.
        case loggingIn(Negotiated, sspiPending: Bool)
        /// Handed over to the relay, which owns the session from here.
        case relaying
        case closed
    }

    enum Action: Equatable {
        /// Write this PRELOGIN answer.
        case answerPrelogin(PreloginMessage)
        /// Start the TLS handshake inside PRELOGIN packets.
        case startTLS(loginOnly: Bool)
        /// Login-only TLS ends with the LOGIN7 packet: go on in plaintext.
        case dropTLS
        /// Run the login (authentication, policy, backend) for this LOGIN7.
        case beginLogin(Login7, Negotiated)
        /// Send the server's SSPI token to the client and wait for its answer.
        case sendSSPI([UInt8])
        /// Give the client's SSPI message to the waiting login.
        case deliverSSPI([UInt8])
        /// The login's SSPI leg cannot complete: fail it with this reason.
        case failSSPI(String)
        /// Stop the running login (and fail an SSPI leg it waits on): the client is gone or
        /// out of time.
        case cancelLogin
        /// Write the login reply, then hand both legs to the relay.
        case handOff
        /// A login that completed for a client that is gone: close its backend connection.
        case discardBackend
        /// Send the client this TDS error, then close; the session ends for `ending`.
        case refuse(LoginRefusal, ending: SessionEndReason)
        /// The session is refused for a connection limit: count it (metrics, audit trail).
        case countOverLimit(LimitExceeded, Login7, Negotiated)
        /// Close without a TDS message (none can be written in this state).
        case close(SessionEndReason)
        /// The client's connection is gone: the session ended for this reason.
        case ended(SessionEndReason)
    }

    let settings: Settings
    private(set) var state = State.awaitingPrelogin(strict: false, tlsReady: false)

    init(settings: Settings) {
        self.settings = settings
    }

    // MARK: Transport events

    /// The client opened with a TLS handshake (TDS 8.0).
    mutating func strictTLSStarted() -> [Action] {
        if case .awaitingPrelogin(false, _) = state {
            state = .awaitingPrelogin(strict: true, tlsReady: false)
        }
        return []
    }

    mutating func tlsHandshakeCompleted() -> [Action] {
        switch state {
        case .awaitingPrelogin(true, _):
            state = .awaitingPrelogin(strict: true, tlsReady: true)
        case .tlsHandshake(let n):
            state = .awaitingLogin(n)
        default:
            break
        }
        return []
    }

    // MARK: Client messages

    mutating func prelogin(_ parsed: Result<PreloginMessage, TDSDecodingError>) -> [Action] {
        guard case .awaitingPrelogin(let strict, _) = state else {
            return unexpected(.prelogin)
        }
        let request: PreloginMessage
        switch parsed {
        case .success(let r): request = r
        case .failure(let e): return refuse(.protocolError("The PRELOGIN message is malformed: \(e)"))
        }
        let decision = decideClientPrelogin(request, allowed: settings.allowed, hasCertificate: settings.hasCertificate, strict: strict)
        let negotiated = Negotiated(tls: decision.tls, strict: strict, mars: decision.response.mars == true)
        if let refusal = decision.refusal {
            // The client gets the answer so that it can report the mismatch itself.
            state = .closed
            return [.answerPrelogin(decision.response), .close(.refused("encryption: \(refusal)"))]
        }
        if decision.tls == .none {
            state = .awaitingLogin(negotiated)
            return [.answerPrelogin(decision.response)]
        }
        state = .tlsHandshake(negotiated)
        return [.answerPrelogin(decision.response), .startTLS(loginOnly: decision.tls == .loginOnly)]
    }

    mutating func login7(_ parsed: Result<Login7, TDSDecodingError>) -> [Action] {
        var actions: [Action] = []
        let negotiated: Negotiated
        switch state {
        case .awaitingPrelogin(false, _):
            // TDS 7.0/7.1-era clients send LOGIN7 without PRELOGIN: plaintext listeners only.
            guard settings.allowed.contains(.plaintext) else {
                return refuse(LoginRefusal(message: "Login failed: this client sent no PRELOGIN (a TDS 7.0/7.1-era driver); listener '\(settings.listener)' requires TLS, which such clients cannot do."))
            }
            negotiated = Negotiated()
        case .awaitingLogin(let n), .tlsHandshake(let n):
            // (LOGIN7 can only be read once TLS is up, even if its event came late.)
            negotiated = n
            if n.tls == .loginOnly { actions.append(.dropTLS) }
        default:
            return unexpected(.login7)
        }
        switch parsed {
        case .success(let login) where settings.overLimit != nil:
            let over = settings.overLimit!
            return actions + [.countOverLimit(over, login, negotiated)] + refuse(over.refusal(listener: settings.listener))
        case .success(let login):
            state = .loggingIn(negotiated, sspiPending: false)
            actions.append(.beginLogin(login, negotiated))
            return actions
        case .failure(let e):
            return actions + refuse(.protocolError("The LOGIN7 message is malformed: \(e)"))
        }
    }

    mutating func sspi(_ token: [UInt8]) -> [Action] {
        guard case .loggingIn(let n, true) = state else { return unexpected(.sspi) }
        state = .loggingIn(n, sspiPending: false)
        return [.deliverSSPI(token)]
    }

    /// Any other message before the login reply.
    mutating func message(_ type: TDSPacketType) -> [Action] {
        unexpected(type)
    }

    /// The framing below could not read the client's bytes as TDS.
    mutating func decodingFailed(_ error: any Error) -> [Action] {
        switch state {
        case .relaying, .closed: return []
        default: return refuse(.protocolError("The incoming tabular data stream (TDS) protocol stream is incorrect: \(error)"))
        }
    }

    // MARK: The login

    /// The login needs another SSPI leg: send its token to the client.
    mutating func sspiTokenReady(_ token: [UInt8]) -> [Action] {
        guard case .loggingIn(let n, false) = state else {
            return [.failSSPI("the client connection is closed")]
        }
        state = .loggingIn(n, sspiPending: true)
        return [.sendSSPI(token)]
    }

    /// The client did not answer an SSPI leg in time.
    mutating func sspiTimedOut(after seconds: Int) -> [Action] {
        guard case .loggingIn(let n, true) = state else { return [] }
        state = .loggingIn(n, sspiPending: false)
        return [.failSSPI("the client sent no SSPI reply within \(seconds) s")]
    }

    mutating func loginSucceeded() -> [Action] {
        guard case .loggingIn = state else { return [.discardBackend] }
        state = .relaying
        return [.handOff]
    }

    mutating func loginFailed(_ refusal: LoginRefusal) -> [Action] {
        guard case .loggingIn = state else { return [] }
        state = .closed
        return [.refuse(refusal, ending: .refused(refusal.message))]
    }

    // MARK: Time and closing

    /// `login_timeout_s` has passed since the client connected.
    mutating func deadlineFired() -> [Action] {
        let seconds = settings.loginTimeoutSeconds
        switch state {
        case .awaitingPrelogin, .tlsHandshake:
            // No PRELOGIN answer yet, or TLS half done: no TDS message can reach the client.
            state = .closed
            return [.close(.loginTimeout)]
        case .awaitingLogin:
            return refuse(LoginRefusal(number: 17830, severity: 20, state: 1,
                                       message: "tdsgate closed the connection: the client did not send its login within \(seconds) s (listener '\(settings.listener)', login_timeout_s)."),
                          as: .loginTimeout)
        case .loggingIn(_, let sspiPending):
            let refusal = sspiPending
                ? LoginRefusal(number: 17830, severity: 20, state: 2,
                               message: "tdsgate closed the connection: the client did not complete its integrated (Kerberos) login within \(seconds) s (listener '\(settings.listener)', login_timeout_s).")
                : LoginRefusal(number: 40613, severity: 17, state: 3,
                               message: "tdsgate could not complete the login within \(seconds) s (listener '\(settings.listener)', login_timeout_s): the backend login is still in progress. Retrying may help.")
            return refuse(refusal, as: .loginTimeout)
        case .relaying, .closed:
            return []
        }
    }

    /// tdsgate ends the session (shutdown, drain) before it reached the relay.
    mutating func closeRequested(_ reason: SessionEndReason) -> [Action] {
        switch state {
        case .relaying, .closed:
            return []
        case .loggingIn:
            state = .closed
            return [.cancelLogin, .close(reason)]
        default:
            state = .closed
            return [.close(reason)]
        }
    }

    /// The client's connection closed.
    mutating func channelInactive() -> [Action] {
        switch state {
        case .relaying, .closed:
            state = .closed
            return []
        case .loggingIn:
            state = .closed
            return [.cancelLogin, .ended(.clientClosed)]
        default:
            state = .closed
            return [.ended(.clientClosed)]
        }
    }

    // MARK: Helpers

    private mutating func unexpected(_ type: TDSPacketType) -> [Action] {
        switch state {
        case .relaying, .closed:
            return []
        case .loggingIn:
            // Drivers wait for the login reply; anything else now is a protocol error.
            return refuse(.protocolError("The client sent a \(type) message before its login completed."))
        default:
            return refuse(.protocolError("The incoming tabular data stream (TDS) protocol stream is incorrect: unexpected \(type) message before login."))
        }
    }

    /// Refuses the session; a login still running is cancelled first.
    private mutating func refuse(_ refusal: LoginRefusal, as reason: SessionEndReason? = nil) -> [Action] {
        let cancel: [Action] = if case .loggingIn = state { [.cancelLogin] } else { [] }
        state = .closed
        return cancel + [.refuse(refusal, ending: reason ?? .refused(refusal.message))]
    }
}

extension LoginRefusal {
    /// SQL Server's answer to bytes that are not the TDS it expects (error 4002).
    static func protocolError(_ message: String) -> LoginRefusal {
        LoginRefusal(number: 4002, severity: 16, message: message)
    }
}
