import Foundation
import NIOCore

/// Which connection of a session a tapped packet travelled on.
enum TapLeg: String, Sendable {
    /// Client <-> tdsgate.
    case client
    /// tdsgate <-> Azure SQL (one per login attempt; redirects open new ones).
    case backend
}

/// One whole TDS packet seen in the clear.
struct TappedPacket {
    var leg: TapLeg
    /// Towards the server: client -> tdsgate on the client leg, tdsgate -> backend on the
    /// backend leg.
    var towardsServer: Bool
    var sid: UInt16?
    var packet: ByteBuffer
    var at: Date
    /// The socket pair of this leg: (client side, server side).
    var local: SocketAddress? = nil
    var remote: SocketAddress? = nil
}

/// Something that wants to see a session's packets (the packet dump, the statement audit).
/// Called on the session's event loop; must not block it.
protocol SessionTapObserver: AnyObject {
    /// Sees only what the client sends (client leg, towards the server), without socket
    /// addresses: the relay then skips replies, which are most of the bytes.
    var requestsOnly: Bool { get }
    func packet(_ packet: TappedPacket)
    /// Login done: who the session is and where it went.
    func identified(_ info: SessionInfo)
    func closed()
}

/// A session's observers. Lives on the session's event loop (both legs share it).
final class SessionTap {
    let sessionID: Int
    private(set) var observers: [any SessionTapObserver] = []
    private(set) var info: SessionInfo?

    init(sessionID: Int) { self.sessionID = sessionID }

    var isActive: Bool { !observers.isEmpty }
    /// Every observer is `requestsOnly`.
    private(set) var requestsOnly = true

    func add(_ observer: any SessionTapObserver) {
        observers.append(observer)
        requestsOnly = requestsOnly && observer.requestsOnly
        if let info { observer.identified(info) }
    }

    /// Drops observers (the dump switched off or re-filtered mid-session).
    func remove(where match: (any SessionTapObserver) -> Bool) {
        observers.removeAll(where: match)
        requestsOnly = observers.allSatisfy(\.requestsOnly)
    }

    func packet(_ p: TappedPacket) {
        for o in observers { o.packet(p) }
    }

    func identified(_ info: SessionInfo) {
        self.info = info
        for o in observers { o.identified(info) }
    }

    func closed() {
        for o in observers { o.closed() }
        observers = []
        requestsOnly = true
    }
}
