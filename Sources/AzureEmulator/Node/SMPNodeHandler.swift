import NIOCore
import TDS
import TDSNIO

/// A node connection after PRELOGIN negotiated MARS: every byte is SMP. It replaces the
/// message framing and `NodeChannelHandler`, demultiplexes SMP sessions (SIDs) into TDS
/// messages for the connection's one `NodeSession` (so transaction and session state are
/// shared by every SID, as in SQL Server), and runs each SID's replies on their own: a SID
/// whose window is closed (the client is not reading it) stops producing, while the others
/// go on. Each DATA packet carries exactly one TDS packet, as SQL Server sends them.
final class SMPNodeHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// Per-SID request execution, the same steps `NodeChannelHandler` runs for the whole
    /// connection without MARS.
    private final class SIDState {
        var inbound: ByteBuffer?
        var assembler = TDSMessageAssembler(maxMessageSize: 4 * 1024 * 1024)
        var queue: [NodeAction] = []
        var waiting: [TDSMessage] = []
        var writer: StreamingPacketWriter?
        var stream: (next: Int, end: Int)?
        var delayTask: Scheduled<Void>?
        var busy = false
        var running = false
        /// Whole TDS packets waiting for the client's window on this SID.
        var out = CircularBuffer<ByteBuffer>()
    }

    /// Packets a SID may hold back while its window is closed before it stops producing.
    static let maxQueuedPackets = 16

    private var session: NodeSession
    private var smp = SMPConnection(role: .server, receiveWindow: 4)
    private var sids: [UInt16: SIDState] = [:]
    private var cumulation: ByteBuffer?
    private var failed = false
    private let onClose: @Sendable () -> Void

    init(session: NodeSession, onClose: @escaping @Sendable () -> Void) {
        self.session = session
        self.onClose = onClose
    }

    /// Called by `NodeChannelHandler` when PRELOGIN negotiated MARS: from now on this handler
    /// serves the connection in place of the framing handler and the caller.
    static func takeOver(context: ChannelHandlerContext, session: NodeSession, onClose: @escaping @Sendable () -> Void) throws {
        let ops = context.pipeline.syncOperations
        let framing = try ops.handler(type: TDSMessageFramingHandler.self)
        try ops.addHandler(SMPNodeHandler(session: session, onClose: onClose))
        ops.removeHandler(context: context, promise: nil)
        ops.removeHandler(framing, promise: nil)
    }

    // MARK: Inbound

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        receive(context: context, &bytes)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .bypass(var bytes) = event as? TDSTransportEvent {
            receive(context: context, &bytes)
            return
        }
        if event is NodeDrainRequest {
            // MARS connections are closed at once: waiting for every SID is not modelled.
            context.close(promise: nil)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    private func receive(context: ChannelHandlerContext, _ bytes: inout ByteBuffer) {
        guard !failed else { return }
        if cumulation == nil { cumulation = bytes } else { cumulation!.writeBuffer(&bytes) }
        var buffer = cumulation!
        cumulation = nil
        var control = context.channel.allocator.buffer(capacity: 0)
        do {
            while let frame = try SMPFrame.read(from: &buffer, maxLength: 65_536) {
                for event in try smp.receive(frame.header, payload: frame.payload) {
                    switch event {
                    case .opened(let sid):
                        sids[sid] = SIDState()
                    case .data(let sid, let payload):
                        if let ack = smp.consumed(sid: sid) { ack.write(into: &control) }
                        try deliver(context: context, sid: sid, payload)
                    case .windowOpened(let sid):
                        run(context: context, sid: sid)
                    case .closed(let sid):
                        if let st = sids.removeValue(forKey: sid) { st.delayTask?.cancel() }
                        smp.fin(sid: sid)?.write(into: &control)
                        smp.remove(sid: sid)
                    }
                    guard context.channel.isActive else { return }
                }
            }
        } catch {
            failed = true
            session.env.log("session node=\(session.env.node.name) client=\(session.clientAddress) MARS protocol error: \(error)")
            context.close(promise: nil)
            return
        }
        if control.readableBytes > 0 { context.writeAndFlush(wrapOutboundOut(control), promise: nil) }
        if buffer.readableBytes > 0 {
            buffer.discardReadBytes()
            cumulation = buffer
        }
    }

    /// One DATA payload: TDS packets (normally exactly one) for this SID's message.
    private func deliver(context: ChannelHandlerContext, sid: UInt16, _ payload: ByteBuffer) throws {
        guard let st = sids[sid] else { return }
        var payload = payload
        if st.inbound == nil { st.inbound = payload } else { st.inbound!.writeBuffer(&payload) }
        var buffer = st.inbound!
        st.inbound = nil
        while let packet = try TDSPacket.read(from: &buffer, maxPacketSize: 32_768) {
            if let message = try st.assembler.append(packet) {
                handle(context: context, sid: sid, st, message)
            }
        }
        if buffer.readableBytes > 0 { st.inbound = buffer }
    }

    private func handle(context: ChannelHandlerContext, sid: UInt16, _ st: SIDState, _ message: TDSMessage) {
        if message.type == .attention && st.busy {
            cancelForAttention(context: context, sid: sid, st)
            return
        }
        if st.busy {
            st.waiting.append(message)
            return
        }
        st.queue += session.receive(message)
        run(context: context, sid: sid)
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable {
            for sid in sids.keys.sorted() { run(context: context, sid: sid) }
        }
        context.fireChannelWritabilityChanged()
    }

    func channelInactive(context: ChannelHandlerContext) {
        for st in sids.values { st.delayTask?.cancel() }
        sids.removeAll()
        onClose()
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    // MARK: Replies

    private func newWriter() -> StreamingPacketWriter {
        StreamingPacketWriter(packetSize: session.packetSize, spid: UInt16(truncatingIfNeeded: session.spid))
    }

    /// Splits complete TDS packets into this SID's send queue.
    private func enqueue(_ st: SIDState, _ bytes: ByteBuffer) {
        var bytes = bytes
        while bytes.readableBytes > 0 {
            var n = bytes.readableBytes
            if let length = bytes.getInteger(at: bytes.readerIndex + 2, endianness: .big, as: UInt16.self),
               Int(length) >= TDSPacketHeader.size, Int(length) <= bytes.readableBytes {
                n = Int(length)
            }
            st.out.append(bytes.readSlice(length: n)!)
        }
    }

    /// Sends what the client's window on this SID allows; true if anything went out.
    @discardableResult
    private func send(context: ChannelHandlerContext, sid: UInt16, _ st: SIDState) -> Bool {
        var wrote = false
        while let packet = st.out.first, let header = smp.nextData(sid: sid, payloadLength: packet.readableBytes) {
            st.out.removeFirst()
            var frame = context.channel.allocator.buffer(capacity: SMPHeader.size + packet.readableBytes)
            header.write(into: &frame)
            frame.writeImmutableBuffer(packet)
            context.write(wrapOutboundOut(frame), promise: nil)
            wrote = true
        }
        return wrote
    }

    private func cancelForAttention(context: ChannelHandlerContext, sid: UInt16, _ st: SIDState) {
        st.delayTask?.cancel()
        st.delayTask = nil
        st.stream = nil
        st.queue.removeAll()
        st.busy = false
        var w = st.writer ?? newWriter()
        var tokens = session.attentionAckTokens()
        w.pending.writeBuffer(&tokens)
        var out = context.channel.allocator.buffer(capacity: 64)
        w.finish(into: &out)
        st.writer = nil
        enqueue(st, out)
        run(context: context, sid: sid)
    }

    private func run(context: ChannelHandlerContext, sid: UInt16) {
        guard let st = sids[sid], !st.running else { return }
        st.running = true
        defer {
            st.running = false
            context.flush()
        }
        while context.channel.isActive {
            send(context: context, sid: sid, st)
            if let s = st.stream {
                // Bounded memory: produce only while the client drains this SID and the
                // socket takes bytes; a window update or writability resumes the stream.
                guard st.out.count < Self.maxQueuedPackets, context.channel.isWritable else { st.busy = true; return }
                let n = min(s.end - s.next, max(1, (session.packetSize * 4) / RowGenerator.rowSize))
                var w = st.writer ?? newWriter()
                let bytes = n * RowGenerator.rowSize
                var out = context.channel.allocator.buffer(capacity: bytes + (bytes / 512 + 2) * TDSPacketHeader.size + w.pending.readableBytes)
                let first = s.next
                w.append(generated: bytes, into: &out) { RowGenerator.fill($0, offset: $1, first: first) }
                st.writer = w
                enqueue(st, out)
                st.stream = s.next + n >= s.end ? nil : (s.next + n, s.end)
                continue
            }
            guard !st.queue.isEmpty else {
                if st.delayTask == nil { st.busy = false }
                if !st.busy, !st.waiting.isEmpty {
                    let m = st.waiting.removeFirst()
                    if m.type != .attention { st.queue += session.receive(m) }
                    continue
                }
                return
            }
            let action = st.queue.removeFirst()
            switch action {
            case .write(let b):
                enqueue(st, b)
            case .replyTokens(var b):
                var w = st.writer ?? newWriter()
                w.pending.writeBuffer(&b)
                var out = context.channel.allocator.buffer(capacity: w.pending.readableBytes + 64)
                w.drainFullPackets(into: &out)
                st.writer = w
                if out.readableBytes > 0 { enqueue(st, out) }
            case .replyEnd:
                var w = st.writer ?? newWriter()
                var out = context.channel.allocator.buffer(capacity: w.pending.readableBytes + 64)
                w.finish(into: &out)
                st.writer = nil
                enqueue(st, out)
            case .startTLS, .startSMP:
                break   // PRELOGIN is over before SMP starts
            case .dropTLS:
                // Login-only TLS ends after LOGIN7: what is already queued stays encrypted.
                send(context: context, sid: sid, st)
                context.flush()
                context.triggerUserOutboundEvent(TDSTransportCommand.dropTLS, promise: nil)
            case .delay(let ms):
                st.busy = true
                let loopBound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
                st.delayTask = context.eventLoop.scheduleTask(in: .milliseconds(Int64(ms))) {
                    let (handler, ctx) = loopBound.value
                    guard let st = handler.sids[sid] else { return }
                    st.delayTask = nil
                    st.busy = false
                    handler.run(context: ctx, sid: sid)
                }
                return
            case .streamRows(let count):
                st.busy = true
                st.stream = count > 0 ? (1, count + 1) : nil
            case .close:
                send(context: context, sid: sid, st)
                context.flush()
                context.close(promise: nil)
                st.queue.removeAll()
                return
            }
        }
    }
}
