import Foundation
import NIOCore

/// The session tap after login. The relay already cuts whole packets (or SMP frames), so the
/// tap handler leaves the pipeline at the hand-over (an extra handler on the hot path cost
/// tens of microseconds per query) and the relay hands its units here: one branch per unit
/// while nobody listens.
final class RelayTapPoint {
    let tap: SessionTap
    /// The client-to-server relay handler (else server-to-client).
    let towardsServer: Bool
    private var cutter = PacketCutter()
    private var listening = false

    init(tap: SessionTap, towardsServer: Bool) {
        self.tap = tap
        self.towardsServer = towardsServer
    }

    /// `unit` went from `source`'s channel to `destination`'s unchanged: both legs saw it.
    func relayed(_ unit: ByteBuffer, source: ChannelHandlerContext?, destination: ChannelHandlerContext) {
        guard tap.isActive, towardsServer || !tap.requestsOnly else {
            listening = false
            return
        }
        if !listening {
            // Units arrive whole, so a fresh cutter is in step (SMP payloads included).
            cutter = PacketCutter()
            listening = true
        }
        let now = Date()
        if tap.requestsOnly, cutter.isIdle, unit.getInteger(at: unit.readerIndex, as: UInt8.self) != PacketCutter.smpID {
            // A plain TDS packet (the relay moves whole ones): nothing to cut.
            tap.packet(TappedPacket(leg: .client, towardsServer: true, sid: nil, packet: unit, at: now))
            return
        }
        let cuts = cutter.feed(unit)
        guard !cuts.isEmpty else { return }
        if tap.requestsOnly {
            for cut in cuts {
                tap.packet(TappedPacket(leg: .client, towardsServer: true, sid: cut.sid, packet: cut.packet, at: now))
            }
            return
        }
        let client = towardsServer ? source?.channel : destination.channel
        let backend = towardsServer ? destination.channel : source?.channel
        for cut in cuts {
            tap.packet(TappedPacket(leg: .client, towardsServer: towardsServer, sid: cut.sid, packet: cut.packet, at: now,
                                    local: client?.localAddress, remote: client?.remoteAddress))
            tap.packet(TappedPacket(leg: .backend, towardsServer: towardsServer, sid: cut.sid, packet: cut.packet, at: now,
                                    local: backend?.localAddress, remote: backend?.remoteAddress))
        }
    }
}
