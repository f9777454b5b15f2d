import NIOCore
import TDS

/// Turns the byte stream above the transport into whole TDS messages, and whole messages
/// (already split into packets by the writer) back into bytes. It accepts plaintext both as
/// reads and as `TDSTransportEvent.bypass` events, which is how login-only TLS hands over.
/// The framing itself is `TDSMessageFramer`; this handler only carries out what it returns.
public final class TDSMessageFramingHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = TDSMessage

    private var framer: TDSMessageFramer
    private let packetTap: (@Sendable (TDSPacket) -> Void)?

    /// `maxMessageSize` bounds reassembly per message type (a client before login:
    /// `TDSMessageCaps.clientBeforeLogin`). `maxPacketSize` is the largest packet length
    /// accepted (TDS allows 32767). `packetTap` sees every inbound packet as it arrived
    /// (after TLS), for captures.
    public init(maxMessageSize: @escaping TDSMessageSizeCap, maxPacketSize: Int = 32_768,
                packetTap: (@Sendable (TDSPacket) -> Void)? = nil) {
        self.framer = TDSMessageFramer(maxMessageSize: maxMessageSize, maxPacketSize: maxPacketSize,
                                       reportsPackets: packetTap != nil)
        self.packetTap = packetTap
    }

    /// One cap for every message type (a server's replies, a node's requests).
    public convenience init(maxMessageSize: Int = 16 * 1024 * 1024, maxPacketSize: Int = 32_768,
                            packetTap: (@Sendable (TDSPacket) -> Void)? = nil) {
        self.init(maxMessageSize: { _ in maxMessageSize }, maxPacketSize: maxPacketSize, packetTap: packetTap)
    }

    /// A client connection up to the end of its login, with the caps real drivers stay under
    /// (`TDSMessageCaps.clientBeforeLogin`: PRELOGIN 4 KiB, LOGIN7 128 KiB - 1, ...).
    public static func clientBeforeLogin(packetTap: (@Sendable (TDSPacket) -> Void)? = nil) -> TDSMessageFramingHandler {
        TDSMessageFramingHandler(maxMessageSize: TDSMessageCaps.clientBeforeLogin, packetTap: packetTap)
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        receive(context: context, unwrapInboundIn(data))
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .bypass(let bytes) = event as? TDSTransportEvent {
            receive(context: context, bytes)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// When the relay takes over, bytes not yet framed go on to it unchanged.
    public func removeHandler(context: ChannelHandlerContext, removalToken: ChannelHandlerContext.RemovalToken) {
        if let rest = framer.takeUnframed() {
            context.fireChannelRead(NIOAny(rest))
        }
        context.leavePipeline(removalToken: removalToken)
    }

    private func receive(context: ChannelHandlerContext, _ bytes: ByteBuffer) {
        let (outputs, error) = framer.receive(bytes)
        for output in outputs {
            switch output {
            case .packet(let packet): packetTap?(packet)
            case .message(let message): context.fireChannelRead(wrapInboundOut(message))
            }
        }
        if let error { context.fireErrorCaught(error) }
    }
}
