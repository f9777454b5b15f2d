import NIOCore

/// One SMP session's flow-control variables ([MC-SMP] 3.1.1), from this end's point of view.
public struct SMPSessionState: Hashable, Sendable {
    /// SeqNumForSend: SEQNUM of the last DATA packet sent (0 before the first).
    public var sendSeq: UInt32 = 0
    /// HighWaterForSend: the highest SEQNUM the peer accepts (its last WNDW).
    public var sendHighWater: UInt32 = SMPConnection.defaultPeerWindow
    /// SeqNumForRecv: SEQNUM of the last DATA packet received.
    public var recvSeq: UInt32 = 0
    /// SEQNUM of the last DATA packet the layer above has taken.
    public var consumed: UInt32 = 0
    /// LastHighWaterForRecv: the last WNDW this end sent.
    public var announcedHighWater: UInt32
    public var finSent = false
    public var finReceived = false

    public init(announcedHighWater: UInt32) {
        self.announcedHighWater = announcedHighWater
    }

    /// Whether one more DATA packet may go out now.
    public var canSend: Bool { !finSent && SMPSerial.lessOrEqual(sendSeq &+ 1, sendHighWater) }
    /// How many more DATA packets may go out now.
    public var sendCredit: Int {
        let d = Int32(bitPattern: sendHighWater &- sendSeq)
        return finSent ? 0 : max(0, Int(d))
    }
}

/// A peer broke the SMP rules.
public enum SMPProtocolError: Error, Hashable, Sendable, CustomStringConvertible {
    case unknownSession(sid: UInt16, flags: SMPFlags)
    case duplicateSyn(sid: UInt16)
    case synFromServer(sid: UInt16)
    case outOfOrder(sid: UInt16, expected: UInt32, got: UInt32)
    case beyondWindow(sid: UInt16, seqnum: UInt32, window: UInt32)
    case dataAfterFin(sid: UInt16)
    case tooManySessions(limit: Int)

    public var description: String {
        switch self {
        case .unknownSession(let sid, let flags): return "SMP \(flags) for session \(sid), which is not open"
        case .duplicateSyn(let sid): return "SMP SYN for session \(sid), which is already open"
        case .synFromServer(let sid): return "SMP SYN for session \(sid) from the server side"
        case .outOfOrder(let sid, let expected, let got): return "SMP DATA on session \(sid) with SEQNUM \(got), expected \(expected)"
        case .beyondWindow(let sid, let seqnum, let window): return "SMP DATA on session \(sid) with SEQNUM \(seqnum) beyond the announced window \(window)"
        case .dataAfterFin(let sid): return "SMP DATA on session \(sid) after its FIN"
        case .tooManySessions(let limit): return "more than \(limit) SMP sessions open on one connection"
        }
    }
}

/// The SMP side of one connection: sessions by SID, sequence numbers, windows and when to
/// ACK. Pure: it takes headers and returns events and headers to send; the caller moves the
/// bytes. Used by the emulator (server role) and by tdsgate's login legs (both roles).
public struct SMPConnection: Sendable {
    public enum Role: Sendable { case server, client }

    /// What the other end may assume before it hears a WNDW ([MC-SMP]: 4).
    public static let defaultPeerWindow: UInt32 = 4

    public enum Event: Hashable, Sendable {
        /// The peer opened a session (server role).
        case opened(sid: UInt16)
        /// A DATA payload for the layer above; report it with `consumed(sid:)` once taken.
        case data(sid: UInt16, payload: ByteBuffer)
        /// The peer's window grew: queued DATA may go out.
        case windowOpened(sid: UInt16)
        /// The peer sent FIN.
        case closed(sid: UInt16)
    }

    public let role: Role
    /// How many DATA packets beyond the last one consumed this end accepts.
    public let receiveWindow: UInt32
    public let maxSessions: Int
    public private(set) var sessions: [UInt16: SMPSessionState] = [:]

    public init(role: Role, receiveWindow: UInt32 = 4, maxSessions: Int = 1024) {
        self.role = role
        self.receiveWindow = max(1, receiveWindow)
        self.maxSessions = maxSessions
    }

    public func session(_ sid: UInt16) -> SMPSessionState? { sessions[sid] }

    /// Client role: opens a session; the SYN to send.
    public mutating func open(sid: UInt16) -> SMPHeader {
        var s = SMPSessionState(announcedHighWater: receiveWindow)
        s.sendHighWater = Self.defaultPeerWindow
        sessions[sid] = s
        return SMPHeader(flags: .syn, sid: sid, seqnum: 0, window: receiveWindow)
    }

    /// Takes one received header (and the DATA payload).
    public mutating func receive(_ header: SMPHeader, payload: ByteBuffer = ByteBuffer()) throws(SMPProtocolError) -> [Event] {
        let sid = header.sid
        switch header.flags {
        case .syn:
            guard role == .server else { throw .synFromServer(sid: sid) }
            guard sessions[sid] == nil else { throw .duplicateSyn(sid: sid) }
            guard sessions.count < maxSessions else { throw .tooManySessions(limit: maxSessions) }
            // The client assumes our window is 4 until it hears otherwise.
            var s = SMPSessionState(announcedHighWater: Self.defaultPeerWindow)
            s.sendHighWater = header.window
            sessions[sid] = s
            return [.opened(sid: sid)]
        case .ack:
            guard var s = sessions[sid] else { throw .unknownSession(sid: sid, flags: .ack) }
            let grew = !SMPSerial.lessOrEqual(header.window, s.sendHighWater)
            s.sendHighWater = header.window
            sessions[sid] = s
            return grew ? [.windowOpened(sid: sid)] : []
        case .fin:
            guard var s = sessions[sid] else { throw .unknownSession(sid: sid, flags: .fin) }
            s.finReceived = true
            sessions[sid] = s
            return [.closed(sid: sid)]
        default:
            guard var s = sessions[sid] else { throw .unknownSession(sid: sid, flags: .data) }
            guard !s.finReceived else { throw .dataAfterFin(sid: sid) }
            let expected = s.recvSeq &+ 1
            guard header.seqnum == expected else { throw .outOfOrder(sid: sid, expected: expected, got: header.seqnum) }
            guard SMPSerial.lessOrEqual(header.seqnum, s.announcedHighWater) else {
                throw .beyondWindow(sid: sid, seqnum: header.seqnum, window: s.announcedHighWater)
            }
            s.recvSeq = header.seqnum
            let grew = !SMPSerial.lessOrEqual(header.window, s.sendHighWater)
            s.sendHighWater = header.window
            sessions[sid] = s
            var events: [Event] = [.data(sid: sid, payload: payload)]
            if grew { events.append(.windowOpened(sid: sid)) }
            return events
        }
    }

    /// The layer above took one DATA payload of `sid`: the ACK to send, if the window this
    /// end announced should move (when at least half a window has been freed).
    public mutating func consumed(sid: UInt16) -> SMPHeader? {
        guard var s = sessions[sid] else { return nil }
        s.consumed = s.recvSeq
        let highWater = s.consumed &+ receiveWindow
        let freed = Int32(bitPattern: highWater &- s.announcedHighWater)
        guard freed >= Int32(max(1, receiveWindow / 2)), !s.finSent else {
            sessions[sid] = s
            return nil
        }
        s.announcedHighWater = highWater
        sessions[sid] = s
        return SMPHeader(flags: .ack, sid: sid, seqnum: s.sendSeq, window: highWater)
    }

    /// The header of the next DATA packet on `sid`, or nil while the peer's window is closed
    /// (or the session is not open). Every DATA also announces this end's window.
    public mutating func nextData(sid: UInt16, payloadLength: Int) -> SMPHeader? {
        guard var s = sessions[sid], s.canSend else { return nil }
        s.sendSeq &+= 1
        let highWater = s.consumed &+ receiveWindow
        if !SMPSerial.lessOrEqual(highWater, s.announcedHighWater) { s.announcedHighWater = highWater }
        sessions[sid] = s
        return SMPHeader(flags: .data, sid: sid, length: UInt32(SMPHeader.size + payloadLength),
                         seqnum: s.sendSeq, window: s.announcedHighWater)
    }

    /// This end closes `sid`: the FIN to send (nil if already sent or not open).
    public mutating func fin(sid: UInt16) -> SMPHeader? {
        guard var s = sessions[sid], !s.finSent else { return nil }
        s.finSent = true
        sessions[sid] = s
        return SMPHeader(flags: .fin, sid: sid, seqnum: s.sendSeq, window: s.announcedHighWater)
    }

    /// Forgets a session once both ends have sent FIN.
    public mutating func remove(sid: UInt16) {
        sessions[sid] = nil
    }
}

/// SID 0 numbering across a proxy that consumed and produced a different number of DATA
/// packets on each leg during login. Other SIDs start fresh on both legs and pass unchanged.
///
/// With c_in/c_out the DATA packets the proxy received from / sent to the client on SID 0,
/// and b_out/b_in those it sent to / received from the server, a client packet numbered n
/// is the server's n + (b_out - c_in), and a server packet numbered m is the client's
/// m + (c_out - b_in). SEQNUM moves by the delta of its own direction; WNDW names packets of
/// the opposite direction, so it moves back by the other delta.
public struct SMPSequenceTranslation: Hashable, Sendable {
    /// Added to the client's SEQNUMs on the way to the server.
    public var up: UInt32
    /// Added to the server's SEQNUMs on the way to the client.
    public var down: UInt32

    public init(up: UInt32, down: UInt32) {
        self.up = up
        self.down = down
    }

    public init(clientReceived: UInt32, clientSent: UInt32, serverSent: UInt32, serverReceived: UInt32) {
        up = serverSent &- clientReceived
        down = clientSent &- serverReceived
    }

    public var isIdentity: Bool { up == 0 && down == 0 }

    public func toServer(_ h: SMPHeader) -> SMPHeader {
        var h = h
        h.seqnum &+= up
        h.window &-= down
        return h
    }

    public func toClient(_ h: SMPHeader) -> SMPHeader {
        var h = h
        h.seqnum &+= down
        h.window &-= up
        return h
    }
}
