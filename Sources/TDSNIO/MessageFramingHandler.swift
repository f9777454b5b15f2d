import NIOCore
import TDS

/// Turns the byte stream above the transport into whole TDS messages, and whole messages
/// (already split into packets by the writer) back into bytes. It accepts plaintext both as
/// reads and as `TDSTransportEvent.bypass` events, which is how login-only TLS hands over.
public final class TDSMessageFramingHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = TDSMessage

    private var cumulation: ByteBuffer?
    private var assembler: TDSMessageAssembler
    private let maxPacketSize: Int
    private var failed = false
    private let packetTap: (@Sendable (TDSPacket) -> Void)?

    /// `maxMessageSize` bounds reassembly (LOGIN7 is at most 128 KiB - 1; requests may be
    /// larger). `maxPacketSize` is the largest packet length accepted (TDS allows 32767).
    /// `packetTap` sees every inbound packet as it arrived (after TLS), for captures.
    public init(maxMessageSize: Int = 16 * 1024 * 1024, maxPacketSize: Int = 32_768,
                packetTap: (@Sendable (TDSPacket) -> Void)? = nil) {
        self.assembler = TDSMessageAssembler(maxMessageSize: maxMessageSize)
        self.maxPacketSize = maxPacketSize
        self.packetTap = packetTap
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = unwrapInboundIn(data)
        append(&bytes)
        drain(context: context)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .bypass(var bytes) = event as? TDSTransportEvent {
            append(&bytes)
            drain(context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// When the relay takes over, bytes not yet framed go on to it unchanged.
    public func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if let rest = cumulation, rest.readableBytes > 0 {
            cumulation = nil
            context.fireChannelRead(NIOAny(rest))
        }
        context.leavePipeline(removalToken: removalToken)
    }

    private func append(_ bytes: inout ByteBuffer) {
        if cumulation == nil {
            cumulation = bytes
        } else {
            cumulation!.writeBuffer(&bytes)
        }
    }

    private func drain(context: ChannelHandlerContext) {
        guard !failed, var buffer = cumulation else { return }
        cumulation = nil
        do {
            while let packet = try TDSPacket.read(from: &buffer, maxPacketSize: maxPacketSize) {
                packetTap?(packet)
                if let message = try assembler.append(packet) {
                    context.fireChannelRead(wrapInboundOut(message))
                }
            }
        } catch {
            failed = true
            context.fireErrorCaught(error)
            return
        }
        if buffer.readableBytes > 0 {
            buffer.discardReadBytes()
            cumulation = buffer
        }
    }
}
