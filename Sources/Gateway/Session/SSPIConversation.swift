import NIOCore
import TDS

/// The client leg of a multi-step integrated login: send the server's SSPI token (0xED) and
/// wait for the client's next SSPI message (packet type 0x11). Carried out by
/// `ClientSessionHandler` on its event loop; `SessionLogin` only sees this closure.
struct SSPIConversation: Sendable {
    /// How long a client may take to answer one leg: a driver answers in milliseconds, so
    /// this only stops a stuck client from holding the login open.
    static let legTimeout: TimeAmount = .seconds(30)

    let exchange: @Sendable (_ serverToken: [UInt8]) async throws -> [UInt8]
}

/// Why the client leg of an SSPI exchange ended.
struct SSPIConversationError: Error, CustomStringConvertible {
    var description: String
}
