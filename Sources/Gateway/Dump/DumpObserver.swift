import Foundation
import NIOCore
import PacketDump
import Spool

/// One session's dump on its event loop: copies each tapped packet once and offers it to
/// the writer (never waits; a full queue drops the record and counts it). When the filter
/// needs the login's outcome (principal, cluster, database), the login-phase packets are
/// held, up to `maxHeldBytes`, until `identified` decides.
final class DumpObserver: SessionTapObserver {
    static let maxHeldBytes = 256 << 10

    private enum Mode { case forwarding, holding, off }

    let key: String
    private let writer: SpoolWriter
    private let filter: DumpFilter
    private let onDrop: @Sendable (Int) -> Void
    private var mode: Mode
    private var held: [[UInt8]] = []
    private var heldBytes = 0
    private var heldLost = 0
    private var clientAddresses: (local: SocketAddress?, remote: SocketAddress?, bytes: [UInt8])?
    private var backendAddresses: (local: SocketAddress?, remote: SocketAddress?, bytes: [UInt8])?

    init(sessionID: Int, generation: Int, client: SocketAddress?, settings: DumpSettings, writer: SpoolWriter,
         onDrop: @escaping @Sendable (Int) -> Void) {
        key = DumpSink.sessionKey(sessionID)
        self.writer = writer
        self.filter = settings.filter
        self.onDrop = onDrop
        mode = settings.filter.needsLogin ? .holding : .forwarding
        let clientText = client.map { "\($0.ipAddress ?? "0.0.0.0") \($0.port ?? 0)" } ?? ""
        send(DumpEvent.open(session: sessionID, generation: generation, client: clientText,
                            settings: DumpEvent.Flags(settings), at: Self.now()).encoded())
    }

    var requestsOnly: Bool { false }

    func packet(_ p: TappedPacket) {
        guard mode != .off else { return }
        let direction: DumpDirection = p.leg == .client ? (p.towardsServer ? .clientToProxy : .proxyToClient)
            : (p.towardsServer ? .proxyToBackend : .backendToProxy)
        send(DumpEvent.encodePacket(direction: direction, sid: p.sid, at: Self.nanoseconds(p.at),
                                    addresses: addresses(p), packet: p.packet.readableBytesView))
    }

    func identified(_ info: SessionInfo) {
        if mode == .holding {
            guard filter.matches(info) else {
                mode = .off
                held = []
                return
            }
            mode = .forwarding
            let records = held
            held = []
            for r in records { send(r) }
            if heldLost > 0 {
                send(DumpEvent.note("\(heldLost) login-phase bytes were not kept (more than \(Self.maxHeldBytes) before login finished)",
                                    at: Self.now()).encoded())
            }
        }
        send(DumpEvent.identified(fields: DumpEvent.identity(info), at: Self.now()).encoded())
    }

    func closed() { end(note: nil) }

    /// The dump was switched off or re-filtered while the session runs.
    func detach(note: String) { end(note: note) }

    private func end(note: String?) {
        defer {
            mode = .off
            held = []
        }
        guard mode == .forwarding else { return }
        if let note { send(DumpEvent.note(note, at: Self.now()).encoded()) }
        let bytes = DumpEvent.closed(at: Self.now()).encoded()
        if !writer.offer(.close(key: key, bytes: bytes)) { onDrop(1) }
    }

    private func send(_ bytes: [UInt8]) {
        switch mode {
        case .forwarding:
            if !writer.offer(SpoolRecord(key: key, bytes: bytes)) { onDrop(1) }
        case .holding:
            if heldBytes + bytes.count <= Self.maxHeldBytes {
                held.append(bytes)
                heldBytes += bytes.count
            } else {
                heldLost += bytes.count
            }
        case .off:
            break
        }
    }

    private func addresses(_ p: TappedPacket) -> [UInt8] {
        if p.leg == .client {
            if let c = clientAddresses, c.local == p.local, c.remote == p.remote { return c.bytes }
            let b = Self.encode(p.local, p.remote)
            clientAddresses = (p.local, p.remote, b)
            return b
        }
        if let c = backendAddresses, c.local == p.local, c.remote == p.remote { return c.bytes }
        let b = Self.encode(p.local, p.remote)
        backendAddresses = (p.local, p.remote, b)
        return b
    }

    private static func encode(_ local: SocketAddress?, _ remote: SocketAddress?) -> [UInt8] {
        func text(_ a: SocketAddress?) -> String { "\(a?.ipAddress ?? "0.0.0.0") \(a?.port ?? 0)" }
        return Array((text(local) + "|" + text(remote)).utf8)
    }

    static func nanoseconds(_ date: Date) -> UInt64 {
        UInt64(max(0, date.timeIntervalSince1970 * 1_000_000_000))
    }

    static func now() -> UInt64 { nanoseconds(Date()) }
}
