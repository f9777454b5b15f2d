/// The bookkeeping of one relayed session, in one place (the shape of swift-nio's
/// `HTTPServerPipelineHandler` connection state): which MARS sessions have a request whose
/// reply has not ended, whether the session closes once they have, which leg holds writes
/// not yet flushed, and why the session ended. Pure; `RelaySession` owns it and both relay
/// handlers report to it.
struct RelayState {
    /// A leg of the session, named by who is at its far end.
    enum Leg: Sendable {
        case client
        case server

        var other: Leg { self == .client ? .server : .client }
    }

    /// What to do once a read from a leg is complete.
    struct ReadComplete: Equatable {
        /// Flush the other leg (writes of this read wait there).
        var flushOther = false
        /// End the session now (its close-after-reply condition is met).
        var close: SessionEndReason?
    }

    /// Requests sent whose replies have not ended, by MARS session id (0 without MARS).
    private(set) var inFlight: Set<UInt16> = []
    /// Close as soon as no request is in flight, for this reason.
    private(set) var closeAfterReply: SessionEndReason?
    /// The first reason the session ended for; set once.
    private(set) var endReason: SessionEndReason?
    private var unflushedToClient = false
    private var unflushedToServer = false

    var isClosing: Bool { endReason != nil }

    /// A whole unit read from `leg`. A message's last packet from the client starts a
    /// request; the server's last packet of the reply ends it; FIN ends a MARS session.
    mutating func unit(_ unit: RelayFraming.Unit, from leg: Leg) {
        if unit.endsMessage {
            if leg == .client { inFlight.insert(unit.sid) } else { inFlight.remove(unit.sid) }
        } else if unit.endsSession {
            inFlight.remove(unit.sid)
        }
    }

    /// Bytes read from `leg` were written to the other leg. Returns true when they must be
    /// flushed at once (an attention is never held behind a batch).
    mutating func forwarded(from leg: Leg, urgent: Bool) -> Bool {
        if urgent {
            setUnflushed(leg.other, false)
            return true
        }
        setUnflushed(leg.other, true)
        return false
    }

    mutating func readComplete(from leg: Leg) -> ReadComplete {
        var result = ReadComplete()
        if unflushed(leg.other) {
            setUnflushed(leg.other, false)
            result.flushOther = true
        }
        if leg == .server, let reason = closeAfterReply, inFlight.isEmpty, endReason == nil {
            result.close = reason
        }
        return result
    }

    /// tdsgate wants the session closed: now (the returned reason) or, with
    /// `afterCurrentRequest`, once the replies in flight have been relayed (nil now).
    mutating func requestClose(_ reason: SessionEndReason, afterCurrentRequest: Bool) -> SessionEndReason? {
        guard endReason == nil else { return nil }
        if afterCurrentRequest && !inFlight.isEmpty {
            closeAfterReply = reason
            return nil
        }
        return reason
    }

    /// The session ends for `reason`; false when it had already ended (the first reason wins).
    mutating func end(_ reason: SessionEndReason) -> Bool {
        guard endReason == nil else { return false }
        endReason = reason
        return true
    }

    private func unflushed(_ leg: Leg) -> Bool {
        leg == .client ? unflushedToClient : unflushedToServer
    }

    private mutating func setUnflushed(_ leg: Leg, _ value: Bool) {
        if leg == .client { unflushedToClient = value } else { unflushedToServer = value }
    }
}
