import Logging
import NIOCore
import Routing
import TDS
import TDSNIO

/// The relay of a MARS session. Drivers (ODBC Driver 18, SqlClient) start SMP once the login
/// reply has arrived: tdsgate logs in on both legs in plain TDS, and from the hand-over on
/// both legs carry SMP packets end to end (the client's SYN for SID 0 is the first). A pair of
/// `SMPRelayHandler`s moves them whole. tdsgate consumes and produces no SMP packets itself,
/// so SID 0 numbering is the same on both legs (identity translation); the relay keeps the
/// `SMPSequenceTranslation` hook for a proxy that would take part in SID 0.
enum SMPRelay {
    /// A linked pair for `Relay.start`: client-to-server and server-to-client.
    static func pair(onClose: @escaping @Sendable (String) -> Void,
                     translation t: SMPSequenceTranslation = SMPSequenceTranslation(up: 0, down: 0)) -> (SMPRelayHandler, SMPRelayHandler) {
        let toBackend = SMPRelayHandler(label: "client", translation: t, onClose: onClose)
        let toClient = SMPRelayHandler(label: "server", translation: t, onClose: onClose)
        toBackend.peer = toClient
        toClient.peer = toBackend
        return (toBackend, toClient)
    }
}
