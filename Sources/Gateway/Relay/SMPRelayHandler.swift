import NIOCore
import TDS

/// One direction of a relayed MARS session: moves whole SMP packets (one write each, payload
/// untouched). SID 0's SEQNUM/WNDW go through `SMPSequenceTranslation`, which is the identity
/// today (drivers start SMP after login, so tdsgate never takes part in SID 0); other SIDs
/// always pass unchanged. Attention inside a DATA packet goes out at once; requests are
/// tracked per SID so a demoted endpoint's session closes after its replies.
final class SMPRelayHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// "client" reads the client leg (frames go to the server), "server" the other way.
    let label: String
    weak var peer: SMPRelayHandler?
    /// The session's dump and statement audit, after login.
    var tapPoint: RelayTapPoint?
    let translation: SMPSequenceTranslation
    private var context: ChannelHandlerContext?
    private var pending: ByteBuffer?
    private var wroteSinceFlush = false
    private let maxFrame = 65_536
    private let onClose: @Sendable (String) -> Void
    private(set) var bytesIn: Int = 0
    private var closing = false
    /// On the server-to-client handler: SIDs with a request sent whose reply has not ended.
    private var inFlight: Set<UInt16> = []
    private var closeAfterReply = false

    init(label: String, translation: SMPSequenceTranslation, onClose: @escaping @Sendable (String) -> Void) {
        self.label = label
        self.translation = translation
        self.onClose = onClose
    }

    var requestInFlight: Bool { !inFlight.isEmpty }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        context.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        bytesIn += bytes.readableBytes
        guard let peer, let peerContext = peer.context else {
            context.close(promise: nil)
            return
        }
        do {
            // A frame split across reads: copy only the bytes that complete it.
            if var p = pending {
                if p.readableBytes < SMPHeader.size {
                    var head = bytes.readSlice(length: min(SMPHeader.size - p.readableBytes, bytes.readableBytes))!
                    p.writeBuffer(&head)
                }
                guard let length = try SMPFrame.wholeLength(in: p, maxLength: maxFrame) else {
                    pending = p
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
            while let length = try SMPFrame.wholeLength(in: bytes, maxLength: maxFrame), bytes.readableBytes >= length {
                forward(bytes.readSlice(length: length)!, peer: peer, peerContext: peerContext)
            }
        } catch {
            closeBoth(reason: "\(label) sent bytes that are not an SMP packet: \(error)")
            return
        }
        pending = bytes.readableBytes > 0 ? bytes.readSlice(length: bytes.readableBytes) : nil
    }

    private func forward(_ frame: ByteBuffer, peer: SMPRelayHandler, peerContext: ChannelHandlerContext) {
        var frame = frame
        let flags = SMPFlags(rawValue: frame.getInteger(at: frame.readerIndex + 1, as: UInt8.self) ?? 0)
        let sid = frame.getInteger(at: frame.readerIndex + 2, endianness: .little, as: UInt16.self) ?? 0
        if sid == 0, !translation.isIdentity,
           let seq = frame.getInteger(at: frame.readerIndex + 8, endianness: .little, as: UInt32.self),
           let window = frame.getInteger(at: frame.readerIndex + 12, endianness: .little, as: UInt32.self) {
            let h = SMPHeader(flags: flags, sid: sid, seqnum: seq, window: window)
            let t = label == "client" ? translation.toServer(h) : translation.toClient(h)
            SMPHeader.rewrite(&frame, seqnum: t.seqnum, window: t.window)
        }
        var isAttention = false
        if flags == .data {
            let scan = Self.scanPackets(frame)
            isAttention = scan.attention
            if scan.endsMessage {
                if label == "client" { peer.inFlight.insert(sid) } else { inFlight.remove(sid) }
            }
        } else if flags == .fin {
            if label == "client" { peer.inFlight.remove(sid) } else { inFlight.remove(sid) }
        }
        tapPoint?.relayed(frame, source: context, destination: peerContext)
        peerContext.write(NIOAny(frame), promise: nil)
        peer.wroteSinceFlush = true
        if isAttention {
            // Cancels go out at once, never behind a batch.
            peerContext.flush()
            peer.wroteSinceFlush = false
        }
    }

    /// Looks at the TDS packets in a DATA payload (normally exactly one): whether one is an
    /// attention, and whether one ends a message (EOM).
    static func scanPackets(_ frame: ByteBuffer) -> (attention: Bool, endsMessage: Bool) {
        var at = frame.readerIndex + SMPHeader.size
        let end = frame.writerIndex
        var attention = false
        var eom = false
        while at + TDSPacketHeader.size <= end {
            guard let type = frame.getInteger(at: at, as: UInt8.self),
                  let status = frame.getInteger(at: at + 1, as: UInt8.self),
                  let length = frame.getInteger(at: at + 2, endianness: .big, as: UInt16.self),
                  length >= UInt16(TDSPacketHeader.size) else { break }
            if type == TDSPacketType.attention.rawValue { attention = true }
            if status & TDSPacketStatus.endOfMessage.rawValue != 0 { eom = true }
            at += Int(length)
        }
        return (attention, eom)
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

    /// Closes the session now, or once the replies to the requests in flight (on every SID)
    /// have been relayed (call on the server-to-client handler, on its event loop).
    func requestClose(afterCurrentRequest: Bool) {
        if afterCurrentRequest && !inFlight.isEmpty {
            closeAfterReply = true
        } else {
            closeBoth(reason: "the endpoint was demoted; session closed")
        }
    }

    /// When this side cannot take more, stop reading the other side (and resume later).
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
