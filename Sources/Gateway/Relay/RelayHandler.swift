import NIOCore
import TDS

/// One direction's view of a relayed session. Both legs live on the same event loop, so a
/// handler writes straight into its peer's context.
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
    private let maxPacketSize = 32_768
    private let onClose: @Sendable (String) -> Void
    private(set) var bytesIn: Int = 0
    private var closing = false
    /// On the server-to-client handler: a client request was sent and its reply has not
    /// ended yet (a packet with EOM from the server ends it).
    private var requestInFlight = false
    private var closeAfterReply = false

    init(label: String, onClose: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.onClose = onClose
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    /// Moves whole TDS packets, one write each: over TLS every packet gets its own record,
    /// which is what drivers expect. Partial packets wait for the rest.
    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        bytesIn += bytes.readableBytes
        guard let peer, let peerContext = peer.context else {
            context.close(promise: nil)
            return
        }
        // A packet split across reads: copy only the bytes that complete it, not the whole
        // read (streaming reads almost always end mid-packet).
        if var p = pending {
            if p.readableBytes < TDSPacketHeader.size {
                var head = bytes.readSlice(length: min(TDSPacketHeader.size - p.readableBytes, bytes.readableBytes))!
                p.writeBuffer(&head)
            }
            if p.readableBytes >= TDSPacketHeader.size {
                guard let length = packetLength(p) else {
                    closeBoth(reason: "\(label) sent bytes that are not a TDS packet")
                    return
                }
                var rest = bytes.readSlice(length: min(length - p.readableBytes, bytes.readableBytes))!
                p.writeBuffer(&rest)
                if p.readableBytes == length {
                    pending = nil
                    forward(p, peer: peer, peerContext: peerContext)
                } else {
                    pending = p
                    return
                }
            } else {
                pending = p
                return
            }
        }
        while bytes.readableBytes >= TDSPacketHeader.size {
            guard let length = packetLength(bytes) else {
                // Not TDS any more: the session cannot continue.
                closeBoth(reason: "\(label) sent bytes that are not a TDS packet")
                return
            }
            guard bytes.readableBytes >= length else { break }
            forward(bytes.readSlice(length: length)!, peer: peer, peerContext: peerContext)
        }
        // The tail stays a slice of this read; it is copied only when the next read completes it.
        pending = bytes.readableBytes > 0 ? bytes.readSlice(length: bytes.readableBytes) : nil
    }

    private func packetLength(_ buffer: ByteBuffer) -> Int? {
        guard let length = buffer.getInteger(at: buffer.readerIndex + 2, endianness: .big, as: UInt16.self),
              length >= 8, Int(length) <= maxPacketSize else { return nil }
        return Int(length)
    }

    private func forward(_ packet: ByteBuffer, peer: RelayHandler, peerContext: ChannelHandlerContext) {
        let isAttention = packet.getInteger(at: packet.readerIndex, as: UInt8.self) == TDSPacketType.attention.rawValue
        let endsMessage = (packet.getInteger(at: packet.readerIndex + 1, as: UInt8.self) ?? 0) & TDSPacketStatus.endOfMessage.rawValue != 0
        if endsMessage {
            if label == "client" { peer.requestInFlight = true } else { requestInFlight = false }
        }
        tapPoint?.relayed(packet, source: context, destination: peerContext)
        peerContext.write(NIOAny(packet), promise: nil)
        peer.wroteSinceFlush = true
        if isAttention {
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
        if label == "server", closeAfterReply, !requestInFlight {
            closeBoth(reason: "the endpoint was demoted; session closed after its request")
        }
    }

    /// Closes the session now, or once the reply to the request in flight has been relayed
    /// (call on the server-to-client handler, on its event loop).
    func requestClose(afterCurrentRequest: Bool) {
        if afterCurrentRequest && requestInFlight {
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
