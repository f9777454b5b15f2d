import Audit
import Foundation
import NIOCore
import PacketDump
import TDS

/// The audit trail's statement events: each SQL batch and RPC call a client sends, put
/// back together from its packets, with literals masked when the configuration says so.
/// Requests larger than `maxRequest` are cut (their text is marked truncated).
final class StatementAuditor: SessionTapObserver {
    private let audit: AuditLog
    private let session: String
    private let mask: Bool
    /// A request being put together, per MARS session (nil without MARS).
    private struct Pending {
        var type: TDSPacketType
        var payload = ByteBuffer()
        var truncated = false
    }
    private var pending: [UInt16?: Pending] = [:]

    static let maxRequest = 1 << 20
    static let maxValue = 200

    init(audit: AuditLog, session: String, mask: Bool) {
        self.audit = audit
        self.session = session
        self.mask = mask
    }

    var requestsOnly: Bool { true }

    func packet(_ p: TappedPacket) {
        // Requests as the client sent them: the client leg, towards tdsgate.
        guard p.leg == .client, p.towardsServer, p.packet.readableBytes >= TDSPacketHeader.size else { return }
        let header = p.packet.getInteger(at: p.packet.readerIndex, as: UInt8.self).map(TDSPacketType.init(rawValue:))
        let status = p.packet.getInteger(at: p.packet.readerIndex + 1, as: UInt8.self) ?? 0
        guard let kind = header, kind == .sqlBatch || kind == .rpc else {
            pending[p.sid] = nil
            return
        }
        let body = p.packet.getSlice(at: p.packet.readerIndex + TDSPacketHeader.size, length: p.packet.readableBytes - TDSPacketHeader.size)!
        let ends = status & TDSPacketStatus.endOfMessage.rawValue != 0
        if ends, pending.isEmpty || pending[p.sid] == nil {
            // The usual request: one packet, parsed where it lies.
            emit(kind, body, truncated: false)
            return
        }
        var request = pending[p.sid].flatMap { $0.type == kind ? $0 : nil } ?? Pending(type: kind)
        if request.payload.readableBytes + body.readableBytes <= Self.maxRequest {
            var b = body
            request.payload.writeBuffer(&b)
        } else {
            request.truncated = true
        }
        guard ends else {
            pending[p.sid] = request
            return
        }
        pending[p.sid] = nil
        emit(kind, request.payload, truncated: request.truncated)
    }

    /// Hands the request to the audit writer's thread: decoding and masking happen there, so
    /// the event loop only copies the request's bytes (tens of microseconds a query otherwise).
    private func emit(_ kind: TDSPacketType, _ payload: ByteBuffer, truncated: Bool) {
        let bytes = Array(payload.readableBytesView)
        let (session, mask, now) = (session, mask, Date())
        _ = audit.record(estimatedBytes: bytes.count / 2 + 160) {
            Self.event(kind, bytes, truncated: truncated, session: session, mask: mask, at: now)
        }
    }

    /// The `sql_batch` or `rpc` event for one request.
    static func event(_ kind: TDSPacketType, _ bytes: [UInt8], truncated: Bool, session: String, mask: Bool, at time: Date) -> AuditEvent {
        let payload = ByteBuffer(bytes: bytes)
        if kind == .sqlBatch {
            let text = (try? SQLBatch(parsing: payload).text) ?? "<batch that could not be decoded>"
            return .sqlBatch(session: session, text: (mask ? SQLLiteralMasker.mask(text) : text) + (truncated ? " …" : ""), time: time)
        }
        guard let rpc = try? RPCRequest(parsing: payload) else {
            return .rpc(session: session, procedure: truncated ? "<request larger than 1 MiB>" : "<RPC that could not be decoded>",
                        parameters: [], time: time)
        }
        let parameters = rpc.parameters.map { p in
            AuditEvent.RPCParameter(name: p.name, type: p.type.sqlName, value: text(p.value, mask: mask, sql: p.value == .string(rpc.sqlText ?? "\u{0}")))
        }
        return .rpc(session: session, procedure: rpc.procedure.displayName, parameters: parameters, time: time)
    }

    /// A parameter's value for the trail. With masking, SQL text keeps its shape (literals
    /// masked) and every other value is hidden.
    static func text(_ value: TDSValue, mask: Bool, sql: Bool) -> String? {
        if value == .null { return nil }
        if mask {
            if sql, case .string(let s) = value { return SQLLiteralMasker.mask(s) }
            return "<masked>"
        }
        let full: String = switch value {
        case .int(let v): String(v)
        case .bit(let v): v ? "1" : "0"
        case .float(let v): String(v)
        case .string(let s): s
        case .bytes(let b): "0x" + b.prefix(maxValue / 2).map { String(format: "%02x", $0) }.joined()
        default: "\(value)"
        }
        return full.count > maxValue ? String(full.prefix(maxValue)) + "… (\(full.count) chars)" : full
    }

    func identified(_ info: SessionInfo) {}
    func closed() {}
}
