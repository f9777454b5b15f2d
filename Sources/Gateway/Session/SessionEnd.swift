import Audit
import NIOCore

/// Why a session ended, decided once by whoever ends it and carried as a value to the
/// audit trail, metrics and logs (never recovered from a message's wording).
enum SessionEndReason: Sendable, Equatable, CustomStringConvertible {
    /// The client closed its connection.
    case clientClosed
    /// The backend (Azure SQL) closed its connection.
    case backendClosed
    /// Its endpoint stopped being primary (`demotion:`).
    case demoted
    /// An operator drained or disabled its endpoint.
    case drained
    /// tdsgate is shutting down (SIGTERM, grace period over).
    case shutdown
    /// The login did not finish within the listener's `login_timeout_s`.
    case loginTimeout
    /// tdsgate refused the login (the text is the error the client was sent).
    case refused(String)
    /// A protocol or transport failure (the text says which).
    case error(String)

    var audit: AuditEvent.EndReason {
        switch self {
        case .clientClosed: .clientClosed
        case .backendClosed: .backendClosed
        case .demoted: .demoted
        case .drained: .drained
        case .shutdown: .shutdown
        case .loginTimeout, .refused, .error: .error
        }
    }

    /// The text for the audit trail's `error` field (nil for an orderly end).
    var errorText: String? {
        switch self {
        case .clientClosed, .backendClosed, .demoted, .drained, .shutdown: nil
        case .loginTimeout: "the login did not complete within the listener's login timeout"
        case .refused(let message), .error(let message): message
        }
    }

    var description: String {
        switch self {
        case .clientClosed: "client closed the connection"
        case .backendClosed: "server closed the connection"
        case .demoted: "the endpoint was demoted"
        case .drained: "the endpoint was drained"
        case .shutdown: "tdsgate is shutting down"
        case .loginTimeout: "login timed out"
        case .refused: "login refused (the 'login refused' line says why)"
        case .error(let message): message
        }
    }
}

/// Asks a session to end with a reason: fired inbound on the session's client channel, on
/// its event loop (`Channel.requestSessionClose`). The session handler in charge at that
/// moment (login or relay) records the reason and closes both legs.
struct SessionCloseRequest: Sendable {
    var reason: SessionEndReason
}

extension Channel {
    /// Ends the session on this client channel with `reason` (safe from any thread).
    func requestSessionClose(_ reason: SessionEndReason) {
        let channel = self
        eventLoop.execute {
            channel.pipeline.fireUserInboundEventTriggered(SessionCloseRequest(reason: reason))
        }
    }
}
