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
    private let onClose: @Sendable (String) -> Void
    private(set) var bytesIn: Int = 0
    private var closing = false
    /// On the server-to-client handler: the (MARS) sessions with a client request sent whose
    /// reply has not ended yet (a packet with EOM from the server ends it).
    private var inFlight: Set<UInt16> = []
    private var closeAfterReply = false

    init(label: String, framing: RelayFraming = .tds, onClose: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.framing = framing
        self.onClose = onClose
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Moves whole units (TDS or SMP packets), one write each: over TLS every packet gets its
    /// own record, which is what drivers expect. Partial units wait for the rest.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        bytesIn += bytes.readableBytes
        guard let peer, let peerContext = peer.context else {
            context.close(promise: nil)
            return
        }
        let header = framing.headerSize
        // A unit split across reads: copy only the bytes that complete it, not the whole
        // read (streaming reads almost always end mid-packet).
        if var p = pending {
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
            pending = nil
            forward(p, peer: peer, peerContext: peerContext)
        }
        while bytes.readableBytes >= header {
            guard let length = framing.unitLength(bytes) else {
                // Not TDS (or SMP) any more: the session cannot continue.
                closeBoth(reason: "\(label) sent bytes that are not a \(framing.unitName)")
                return
            }
            guard bytes.readableBytes >= length else { break }
            forward(bytes.readSlice(length: length)!, peer: peer, peerContext: peerContext)
        }
        // The tail stays a slice of this read; it is copied only when the next read completes it.
        pending = bytes.readableBytes > 0 ? bytes.readSlice(length: bytes.readableBytes) : nil
    }

    private func forward(_ unit: ByteBuffer, peer: RelayHandler, peerContext: ChannelHandlerContext) {
        var unit = unit
        let towardsServer = label == "client"
        let info = framing.inspect(&unit, towardsServer: towardsServer)
        // Requests in flight are kept on the server-to-client handler.
        if info.endsMessage {
            if towardsServer { peer.inFlight.insert(info.sid) } else { inFlight.remove(info.sid) }
        } else if info.endsSession {
            if towardsServer { peer.inFlight.remove(info.sid) } else { inFlight.remove(info.sid) }
        }
        tapPoint?.relayed(unit, source: context, destination: peerContext)
        peerContext.write(NIOAny(unit), promise: nil)
        peer.wroteSinceFlush = true
        if info.attention {
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
        if label == "server", closeAfterReply, inFlight.isEmpty {
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
