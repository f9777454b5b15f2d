import NIOCore
import TDS

/// One relayed session: the bookkeeping both relay handlers report to (`RelayState`) and the
/// contexts of its two legs. It lives on the session's event loop (both legs share it), so a
/// handler writes straight into the other leg's context.
final class RelaySession {
    var state = RelayState()
    let framing: RelayFraming
    let record: SessionRecord
    /// Pooled sessions: the client left, the backend leg goes back to the pool (argument:
    /// a request was in flight). Set by `Relay.start`.
    var onClientLeft: ((_ requestInFlight: Bool) -> Void)?
    /// The backend leg was handed back to the pool instead of closed.
    private(set) var returnedToPool = false
    private var clientContext: ChannelHandlerContext?
    private var serverContext: ChannelHandlerContext?

    init(framing: RelayFraming, record: SessionRecord) {
        self.framing = framing
        self.record = record
    }

    func context(of leg: RelayState.Leg) -> ChannelHandlerContext? {
        leg == .client ? clientContext : serverContext
    }

    fileprivate func attach(_ leg: RelayState.Leg, _ context: ChannelHandlerContext?) {
        if leg == .client { clientContext = context } else { serverContext = context }
    }

    /// Ends the session for `reason` (the first reason given wins): both legs are flushed and
    /// closed, and the session record learns why.
    func end(_ reason: SessionEndReason) {
        guard state.end(reason) else { return }
        record.end(reason)
        if case .clientClosed = reason, let onClientLeft {
            self.onClientLeft = nil
            returnedToPool = true
            clientContext?.close(promise: nil)
            onClientLeft(!state.inFlight.isEmpty)
            return
        }
        for context in [serverContext, clientContext] {
            context?.flush()
            context?.close(promise: nil)
        }
    }

    /// Closes the session now, or once the replies to the requests in flight (on every MARS
    /// session) have been relayed.
    func requestClose(_ reason: SessionEndReason, afterCurrentRequest: Bool) {
        if let now = state.requestClose(reason, afterCurrentRequest: afterCurrentRequest) { end(now) }
    }
}

/// Reads one leg of a relayed session and writes what it reads to the other leg: TDS packets,
/// or (MARS) SMP packets, as the session's `RelayFraming` says. What the units mean for the
/// session (requests in flight, flushes owed, closing) is `RelayState`'s, through the session.
final class RelayHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// The leg this handler reads (and the one it writes to is the other).
    let leg: RelayState.Leg
    let session: RelaySession
    /// The session's dump and statement audit, after login.
    var tapPoint: RelayTapPoint?
    private var context: ChannelHandlerContext?
    private var pending: ByteBuffer?
    /// Part of a unit was read and not yet sent on (the leg is mid-packet).
    var holdsPartialUnit: Bool { pending != nil }
    private let framing: RelayFraming

    init(reads leg: RelayState.Leg, session: RelaySession) {
        self.leg = leg
        self.session = session
        self.framing = session.framing
    }

    /// How much a leg may hold unsent before the other leg stops reading. NIO's default
    /// (32/64 KiB) made a streaming session stop and restart reading every few packets: two
    /// epoll_ctl calls each time, and a stalled sender.
    static let writeBufferWaterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 128 << 10, high: 512 << 10)

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        session.attach(leg, context)
        context.channel.setOption(ChannelOptions.writeBufferWaterMark, value: Self.writeBufferWaterMark).whenFailure { _ in }
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
        session.attach(leg, nil)
    }

    /// Moves whole units (TDS or SMP packets). The whole units of one read go out as one
    /// write (a slice of the read, not a copy), which ends on a unit boundary: TLS then cuts
    /// it into full-size records, and every flush still ends where a packet ends. Partial
    /// units wait for the rest.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        if leg == .client {
            session.record.bytesClientToServer += bytes.readableBytes
        } else {
            session.record.bytesServerToClient += bytes.readableBytes
        }
        guard let peerContext = session.context(of: leg.other) else {
            context.close(promise: nil)
            return
        }
        let header = framing.headerSize
        // A unit split across reads: the part already held is our own copy (sized for the
        // whole unit), so only the bytes that complete it are copied from this read.
        if var p = pending {
            pending = nil  // `p` must be the only reference, or every write below copies it
            if p.readableBytes < header {
                var head = bytes.readSlice(length: min(header - p.readableBytes, bytes.readableBytes))!
                p.writeBuffer(&head)
            }
            guard p.readableBytes >= header else {
                pending = p
                return
            }
            guard let length = framing.unitLength(p) else {
                session.end(.error("\(leg) sent bytes that are not a \(framing.unitName)"))
                return
            }
            var rest = bytes.readSlice(length: min(length - p.readableBytes, bytes.readableBytes))!
            p.writeBuffer(&rest)
            guard p.readableBytes == length else {
                pending = p
                return
            }
            let attention = note(&p, peerContext: peerContext)
            send(p, attention: attention, peerContext: peerContext)
        }
        // Units that are rewritten in place (SMP renumbering) must go out one by one.
        let batch = !framing.rewritesUnits
        let run = bytes
        var attention = false
        while bytes.readableBytes >= header {
            guard let length = framing.unitLength(bytes) else {
                session.end(.error("\(leg) sent bytes that are not a \(framing.unitName)"))
                return
            }
            guard bytes.readableBytes >= length else { break }
            var unit = bytes.readSlice(length: length)!
            let urgent = note(&unit, peerContext: peerContext)
            if batch {
                attention = attention || urgent
            } else {
                send(unit, attention: urgent, peerContext: peerContext)
            }
        }
        if batch, bytes.readerIndex > run.readerIndex {
            send(run.getSlice(at: run.readerIndex, length: bytes.readerIndex - run.readerIndex)!, attention: attention, peerContext: peerContext)
        }
        // The unfinished tail is copied, not kept as a slice: a slice would pin the TLS
        // handler's read buffer, which it then copies whole (copy-on-write) on its next read.
        if bytes.readableBytes > 0 {
            let whole = bytes.readableBytes >= header ? framing.unitLength(bytes) : nil
            var copy = context.channel.allocator.buffer(capacity: whole ?? framing.maxUnitLength)
            copy.writeBuffer(&bytes)
            pending = copy
        }
    }

    /// Request tracking and the session tap for one whole unit; true when it carries an
    /// attention.
    private func note(_ unit: inout ByteBuffer, peerContext: ChannelHandlerContext) -> Bool {
        let info = framing.inspect(&unit, towardsServer: leg == .client)
        session.state.unit(info, from: leg)
        tapPoint?.relayed(unit, source: context, destination: peerContext)
        return info.attention
    }

    private func send(_ bytes: ByteBuffer, attention: Bool, peerContext: ChannelHandlerContext) {
        peerContext.write(NIOAny(bytes), promise: nil)
        if session.state.forwarded(from: leg, urgent: attention) {
            // Cancels go out at once, never behind a batch.
            peerContext.flush()
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        let next = session.state.readComplete(from: leg)
        if next.flushOther { session.context(of: leg.other)?.flush() }
        if let reason = next.close { session.end(reason) }
    }

    /// When this side cannot take more, stop reading the other side (and resume later), so a
    /// slow reader never makes tdsgate buffer without bound.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        guard let peerContext = session.context(of: leg.other) else { return }
        let writable = context.channel.isWritable
        peerContext.channel.setOption(ChannelOptions.autoRead, value: writable).whenFailure { _ in }
        if writable { peerContext.read() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        session.end(leg == .client ? .clientClosed : .backendClosed)
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        session.end(.error("the \(leg) connection failed: \(error)"))
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let request = event as? SessionCloseRequest {
            session.end(request.reason)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }
}
