import NIOCore
import TDS

/// One direction's view of a relayed session, TDS packets or (MARS) SMP packets as its
/// `RelayFraming` says. Both legs live on the same event loop, so a handler writes straight
/// into its peer's context.
final class RelayHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let label: String
    weak var peer: RelayHandler?
    /// The session's dump and statement audit, after login.
    var tapPoint: RelayTapPoint?
    private var context: ChannelHandlerContext?
    private var pending: ByteBuffer?
    private var wroteSinceFlush = false
    let framing: RelayFraming
    /// This handler reads the client leg (else the backend leg).
    private let towardsServer: Bool
    private let onClose: @Sendable (String) -> Void
    private(set) var bytesIn: Int = 0
    private var closing = false
    /// On the server-to-client handler: the (MARS) sessions with a client request sent whose
    /// reply has not ended yet (a packet with EOM from the server ends it).
    private var inFlight: Set<UInt16> = []
    private var closeAfterReply = false

    init(label: String, framing: RelayFraming = .tds, onClose: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.towardsServer = label == "client"
        self.framing = framing
        self.onClose = onClose
    }

    /// How much a leg may hold unsent before the other leg stops reading. NIO's default
    /// (32/64 KiB) made a streaming session stop and restart reading every few packets: two
    /// epoll_ctl calls each time, and a stalled sender.
    static let writeBufferWaterMark = ChannelOptions.Types.WriteBufferWaterMark(low: 128 << 10, high: 512 << 10)

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        context.channel.setOption(ChannelOptions.writeBufferWaterMark, value: Self.writeBufferWaterMark).whenFailure { _ in }
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Moves whole units (TDS or SMP packets). The whole units of one read go out as one
    /// write (a slice of the read, not a copy), which ends on a unit boundary: TLS then cuts
    /// it into full-size records, and every flush still ends where a packet ends. Partial
    /// units wait for the rest.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        bytesIn += bytes.readableBytes
        guard let peer, let peerContext = peer.context else {
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
                closeBoth(reason: "\(label) sent bytes that are not a \(framing.unitName)")
                return
            }
            var rest = bytes.readSlice(length: min(length - p.readableBytes, bytes.readableBytes))!
            p.writeBuffer(&rest)
            guard p.readableBytes == length else {
                pending = p
                return
            }
            let attention = note(&p, peer: peer, peerContext: peerContext)
            send(p, attention: attention, peer: peer, peerContext: peerContext)
        }
        // Units that are rewritten in place (SMP renumbering) must go out one by one.
        let batch = !framing.rewritesUnits
        let run = bytes
        var attention = false
        while bytes.readableBytes >= header {
            guard let length = framing.unitLength(bytes) else {
                // Not TDS (or SMP) any more: the session cannot continue.
                closeBoth(reason: "\(label) sent bytes that are not a \(framing.unitName)")
                return
            }
            guard bytes.readableBytes >= length else { break }
            var unit = bytes.readSlice(length: length)!
            let urgent = note(&unit, peer: peer, peerContext: peerContext)
            if batch {
                attention = attention || urgent
            } else {
                send(unit, attention: urgent, peer: peer, peerContext: peerContext)
            }
        }
        if batch, bytes.readerIndex > run.readerIndex {
            send(run.getSlice(at: run.readerIndex, length: bytes.readerIndex - run.readerIndex)!, attention: attention, peer: peer, peerContext: peerContext)
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
    private func note(_ unit: inout ByteBuffer, peer: RelayHandler, peerContext: ChannelHandlerContext) -> Bool {
        let info = framing.inspect(&unit, towardsServer: towardsServer)
        // Requests in flight are kept on the server-to-client handler.
        if info.endsMessage {
            if towardsServer { peer.inFlight.insert(info.sid) } else { inFlight.remove(info.sid) }
        } else if info.endsSession {
            if towardsServer { peer.inFlight.remove(info.sid) } else { inFlight.remove(info.sid) }
        }
        tapPoint?.relayed(unit, source: context, destination: peerContext)
        return info.attention
    }

    private func send(_ bytes: ByteBuffer, attention: Bool, peer: RelayHandler, peerContext: ChannelHandlerContext) {
        peerContext.write(NIOAny(bytes), promise: nil)
        peer.wroteSinceFlush = true
        if attention {
            // Cancels go out at once, never behind a batch.
            peerContext.flush()
            peer.wroteSinceFlush = false
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let peer, peer.wroteSinceFlush, let pc = peer.context {
            peer.wroteSinceFlush = false
            pc.flush()
        }
        if !towardsServer, closeAfterReply, inFlight.isEmpty {
            closeBoth(reason: "the endpoint was demoted; session closed after its request")
        }
    }

    /// Closes the session now, or once the replies to the requests in flight (on every MARS
    /// session) have been relayed (call on the server-to-client handler, on its event loop).
    func requestClose(afterCurrentRequest: Bool) {
        if afterCurrentRequest && !inFlight.isEmpty {
            closeAfterReply = true
        } else {
            closeBoth(reason: "the endpoint was demoted; session closed")
        }
    }

    /// When this side cannot take more, stop reading the other side (and resume later), so a
    /// slow reader never makes tdsgate buffer without bound.
    func channelWritabilityChanged(context: ChannelHandlerContext) {
        guard let peerContext = peer?.context else { return }
        let writable = context.channel.isWritable
        peerContext.channel.setOption(ChannelOptions.autoRead, value: writable).whenFailure { _ in }
        if writable { peerContext.read() }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        closeBoth(reason: "\(label) closed the connection")
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        closeBoth(reason: "\(label) failed: \(error)")
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let request = event as? SessionCloseRequest {
            closeBoth(reason: request.reason.description)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func closeBoth(reason: String) {
        guard !closing else { return }
        closing = true
        peer?.closing = true
        onClose(reason)
        if let pc = peer?.context {
            pc.flush()
            pc.close(promise: nil)
        }
        context?.close(promise: nil)
    }
}
