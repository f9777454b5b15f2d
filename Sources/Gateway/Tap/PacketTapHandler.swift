import Foundation
import NIOCore

/// Sits right above TLS in a session's pipeline (client leg and backend legs) and shows the
/// session's observers every TDS packet in the clear, both ways. Bytes pass through
/// unchanged and unbuffered; with no observer it only keeps packet boundaries in step, so
/// an observer added mid-session (a dump switched on) starts at a packet boundary.
final class PacketTapHandler: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    let leg: TapLeg
    let tap: SessionTap
    private var inbound = PacketCutter()
    private var outbound = PacketCutter()

    init(leg: TapLeg, tap: SessionTap) {
        self.leg = leg
        self.tap = tap
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        observe(unwrapInboundIn(data), cutter: &inbound, towardsServer: leg == .client, context: context)
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        observe(unwrapOutboundIn(data), cutter: &outbound, towardsServer: leg == .backend, context: context)
        context.write(data, promise: promise)
    }

    private func observe(_ bytes: ByteBuffer, cutter: inout PacketCutter, towardsServer: Bool, context: ChannelHandlerContext) {
        guard tap.isActive else {
            cutter.skip(bytes)
            return
        }
        let cuts = cutter.feed(bytes)
        guard !cuts.isEmpty else { return }
        let now = Date()
        let (local, remote) = (context.channel.localAddress, context.channel.remoteAddress)
        for cut in cuts {
            tap.packet(TappedPacket(leg: leg, towardsServer: towardsServer, sid: cut.sid, packet: cut.packet, at: now,
                                    local: local, remote: remote))
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        if leg == .client { tap.closed() }
        context.fireChannelInactive()
    }
}
