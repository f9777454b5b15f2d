import NIOCore
import TDS
import TDSNIO

/// Asks a node connection to close once the request it is running has been answered (a
/// planned failover lets requests in flight finish on the old primary).
struct NodeDrainRequest: Sendable {}

/// Executes a `NodeSession`'s actions on a channel: writes, TLS changes, delays and row
/// streams (with backpressure), and cancels them when an attention arrives.
final class NodeChannelHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = TDSMessage
    typealias OutboundOut = ByteBuffer

    private var session: NodeSession
    private var queue: [NodeAction] = []
    private var waiting: [TDSMessage] = []
    private var writer: StreamingPacketWriter?
    private var delayTask: Scheduled<Void>?
    private var stream: (next: Int, end: Int)?
    private var running = false
    private var busy = false
    private var closeWhenIdle = false
    private let onClose: @Sendable () -> Void

    init(session: NodeSession, onClose: @escaping @Sendable () -> Void) {
        self.session = session
        self.onClose = onClose
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let message = unwrapInboundIn(data)
        if message.type == .attention && busy {
            cancelForAttention(context: context)
            return
        }
        if busy {
            waiting.append(message)
            return
        }
        queue += session.receive(message)
        run(context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .strictTLSStarted? = event as? TDSTransportEvent {
            session.strictTLSStarted()
        }
        if event is NodeDrainRequest {
            if busy || running || !queue.isEmpty || stream != nil {
                closeWhenIdle = true
            } else {
                context.close(promise: nil)
            }
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, stream != nil { run(context: context) }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        delayTask?.cancel()
        onClose()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // Malformed framing or a TLS failure: the connection cannot continue. A TDS error
        // goes out first when the stream is still in plain TDS framing.
        if error is TDSDecodingError {
            var body = context.channel.allocator.buffer(capacity: 256)
            ReplyEncoding.error(4002, severity: 16, message: "The incoming tabular data stream (TDS) protocol stream is incorrect: \(error)", server: session.serverName, into: &body)
            ReplyEncoding.done(.done, status: .error, into: &body)
            var out = context.channel.allocator.buffer(capacity: body.readableBytes + 8)
            TDSMessage(type: .tabularResult, payload: body).writePackets(into: &out, packetSize: 4096)
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        }
        context.close(promise: nil)
    }

    private func cancelForAttention(context: ChannelHandlerContext) {
        delayTask?.cancel()
        delayTask = nil
        stream = nil
        queue.removeAll()
        busy = false
        var w = writer ?? StreamingPacketWriter(packetSize: session.packetSize, spid: UInt16(truncatingIfNeeded: session.spid))
        var tokens = session.attentionAckTokens()
        w.pending.writeBuffer(&tokens)
        var out = context.channel.allocator.buffer(capacity: 64)
        w.finish(into: &out)
        writer = nil
        context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        drainWaiting(context: context)
    }

    private func drainWaiting(context: ChannelHandlerContext) {
        if closeWhenIdle {
            // Draining: requests that arrived behind the one in flight are not run.
            context.close(promise: nil)
            return
        }
        while !busy, !waiting.isEmpty, context.channel.isActive {
            let m = waiting.removeFirst()
            if m.type == .attention { continue }
            queue += session.receive(m)
            run(context: context)
        }
    }

    static let rowsPerWrite = 800

    private func run(context: ChannelHandlerContext) {
        guard !running else { return }
        running = true
        defer { running = false }
        while true {
            if let s = stream {
                guard context.channel.isWritable else { busy = true; return }
                // About 60 KB a write: under glibc's mmap threshold, so the buffers are reused
                // instead of being mapped and trimmed (madvise) every time.
                let n = min(s.end - s.next, Self.rowsPerWrite)
                var w = writer ?? StreamingPacketWriter(packetSize: session.packetSize, spid: UInt16(truncatingIfNeeded: session.spid))
                let bytes = n * RowGenerator.rowSize
                var out = context.channel.allocator.buffer(capacity: bytes + (bytes / 512 + 2) * TDSPacketHeader.size + w.pending.readableBytes)
                let first = s.next
                w.append(generated: bytes, into: &out) { RowGenerator.fill($0, offset: $1, first: first) }
                writer = w
                context.writeAndFlush(wrapOutboundOut(out), promise: nil)
                stream = s.next + n >= s.end ? nil : (s.next + n, s.end)
                continue
            }
            guard !queue.isEmpty else {
                busy = false
                context.flush()
                if closeWhenIdle {
                    context.close(promise: nil)
                    return
                }
                if !waiting.isEmpty { drainWaiting(context: context) }
                return
            }
            let action = queue.removeFirst()
            switch action {
            case .write(let b):
                context.write(wrapOutboundOut(b), promise: nil)
            case .replyTokens(var b):
                var w = writer ?? StreamingPacketWriter(packetSize: session.packetSize, spid: UInt16(truncatingIfNeeded: session.spid))
                w.pending.writeBuffer(&b)
                var out = context.channel.allocator.buffer(capacity: w.pending.readableBytes + 64)
                w.drainFullPackets(into: &out)
                writer = w
                if out.readableBytes > 0 { context.write(wrapOutboundOut(out), promise: nil) }
            case .replyEnd:
                var w = writer ?? StreamingPacketWriter(packetSize: session.packetSize, spid: UInt16(truncatingIfNeeded: session.spid))
                var out = context.channel.allocator.buffer(capacity: w.pending.readableBytes + 64)
                w.finish(into: &out)
                writer = nil
                context.write(wrapOutboundOut(out), promise: nil)
            case .startTLS(let loginOnly):
                context.flush()
                context.triggerUserOutboundEvent(TDSTransportCommand.startTLSInPrelogin(loginOnly: loginOnly), promise: nil)
            case .dropTLS:
                context.flush()
                context.triggerUserOutboundEvent(TDSTransportCommand.dropTLS, promise: nil)
            case .delay(let ms):
                busy = true
                context.flush()
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                delayTask = context.eventLoop.scheduleTask(in: .milliseconds(Int64(ms))) {
                    let (handler, ctx) = loopBound.value
                    handler.delayTask = nil
                    handler.busy = false
                    handler.run(context: ctx)
                }
                return
            case .streamRows(let count):
                busy = true
                stream = count > 0 ? (1, count + 1) : nil
            case .close:
                context.flush()
                context.close(promise: nil)
                queue.removeAll()
                return
            case .startSMP:
                context.flush()
                queue.removeAll()
                do {
                    try SMPNodeHandler.takeOver(context: context, session: session, onClose: onClose)
                } catch {
                    context.close(promise: nil)
                }
                return
            }
        }
    }
}
