import NIOCore
import TDS

/// What redaction did to one message.
public struct RedactionReport: Hashable, Sendable {
    public struct Range: Hashable, Sendable {
        /// "password", "changePassword", "sspi", "fedAuthToken", "fedAuthData", "payload".
        public var kind: String
        /// Offset in the message payload (after the 8-byte headers of its packets).
        public var offset: Int
        public var length: Int
    }

    public var ranges: [Range] = []
    /// The message could not be parsed, so all of its payload was treated as secret.
    public var failedClosed = false
    /// Why it failed closed.
    public var note: String?

    public var redactedByteCount: Int { ranges.reduce(0) { $0 + $1.length } }
}

/// Overwrites credentials in TDS messages in place with a filler byte. Lengths and offsets are
/// kept so the message still parses (ours, Wireshark's) and packet sizes do not change.
///
/// Covered: LOGIN7 password, change-password, SSPI and FEDAUTH token (or the whole LOGIN7 when
/// it does not parse), the token bytes of a FEDAUTH token message (0x08), and SSPI messages
/// (0x11) entirely.
public enum SecretRedactor {
    public static let filler: UInt8 = 0x00

    /// True for message types that may carry credentials; everything else passes untouched.
    public static func mayCarrySecrets(_ type: TDSPacketType) -> Bool {
        type == .login7 || type == .federatedAuthToken || type == .sspi
    }

    /// Ranges to overwrite in a whole message payload (without packet headers).
    public static func secretRanges(type: TDSPacketType, payload: ByteBuffer) -> RedactionReport {
        var report = RedactionReport()
        let total = payload.readableBytes
        func all(_ note: String?) {
            if total > 0 { report.ranges = [.init(kind: "payload", offset: 0, length: total)] }
            report.failedClosed = note != nil
            report.note = note
        }
        switch type {
        case .login7:
            do {
                report.ranges = try Login7.secretRanges(in: payload).map {
                    .init(kind: $0.kind.rawValue, offset: $0.offset, length: $0.length)
                }
            } catch {
                all("LOGIN7 could not be parsed (\(error)); the whole payload was redacted")
            }
        case .federatedAuthToken:
            // data length u32, token length u32, token, optional nonce.
            guard total >= 8, let tokenLength = payload.getInteger(at: payload.readerIndex + 4, endianness: .little, as: UInt32.self),
                  Int(tokenLength) <= total - 8
            else {
                all("FEDAUTH token message could not be parsed; the whole payload was redacted")
                return report
            }
            if tokenLength > 0 { report.ranges = [.init(kind: "fedAuthToken", offset: 8, length: Int(tokenLength))] }
        case .sspi:
            all(nil)
            if total > 0 { report.ranges[0].kind = "sspi" }
        default:
            break
        }
        return report
    }

    /// Redacts a whole reassembled message payload in place.
    @discardableResult
    public static func redact(type: TDSPacketType, payload: inout ByteBuffer) -> RedactionReport {
        let report = secretRanges(type: type, payload: payload)
        for r in report.ranges {
            payload.setRepeatingByte(filler, count: r.length, at: payload.readerIndex + r.offset)
        }
        return report
    }

    /// Redacts one message given as its packets (8-byte header + payload each), in place.
    /// Packet sizes and headers never change; a range that crosses packets is cut accordingly.
    @discardableResult
    public static func redact(packets: inout [ByteBuffer]) -> RedactionReport {
        guard let first = packets.first, let typeByte = first.getInteger(at: first.readerIndex, as: UInt8.self) else {
            return RedactionReport()
        }
        let type = TDSPacketType(rawValue: typeByte)
        guard mayCarrySecrets(type) else { return RedactionReport() }
        var payload = ByteBuffer()
        var starts: [Int] = []
        for p in packets {
            starts.append(payload.readableBytes)
            if p.readableBytes > TDSPacketHeader.size {
                var slice = p
                slice.moveReaderIndex(forwardBy: TDSPacketHeader.size)
                payload.writeBuffer(&slice)
            }
        }
        let report = secretRanges(type: type, payload: payload)
        for r in report.ranges {
            let end = r.offset + r.length
            for (i, start) in starts.enumerated() {
                let size = max(0, packets[i].readableBytes - TDSPacketHeader.size)
                let lo = max(r.offset, start)
                let hi = min(end, start + size)
                guard lo < hi else { continue }
                packets[i].setRepeatingByte(filler, count: hi - lo,
                                            at: packets[i].readerIndex + TDSPacketHeader.size + lo - start)
            }
        }
        return report
    }
}

/// Per-direction streaming redactor for a relay tap: fed packets (header + payload) in order,
/// hands back packets that are safe to record. Messages that may carry secrets are held until
/// their last packet so ranges spanning packets are found; everything else passes at once.
public struct StreamingRedactor: Sendable {
    public typealias Output = (packet: ByteBuffer, context: UInt64, report: RedactionReport?)

    /// A held message larger than this is recorded with every payload byte redacted.
    public var maxHeldBytes: Int
    private var held: [(packet: ByteBuffer, context: UInt64)] = []
    private var heldBytes = 0
    /// Inside an oversized secret-bearing message: blank each packet as it comes.
    private var blankingRest = false

    public init(maxHeldBytes: Int = 1 << 20) {
        self.maxHeldBytes = maxHeldBytes
    }

    /// Feeds one packet; `context` travels with it (e.g. a timestamp). Returns packets ready to
    /// record, in order, each with its context and, on a message's last packet, the report.
    public mutating func process(packet: ByteBuffer, context: UInt64 = 0) -> [Output] {
        let typeByte = packet.getInteger(at: packet.readerIndex, as: UInt8.self) ?? 0
        let status = packet.getInteger(at: packet.readerIndex + 1, as: UInt8.self) ?? 0x01
        let eom = status & TDSPacketStatus.endOfMessage.rawValue != 0
        if blankingRest {
            var p = packet
            let n = StreamingRedactor.blank(&p)
            blankingRest = !eom
            return [(p, context, RedactionReport(ranges: [.init(kind: "payload", offset: 0, length: n)], failedClosed: true,
                                                 note: "message too large to hold; payload redacted"))]
        }
        guard SecretRedactor.mayCarrySecrets(TDSPacketType(rawValue: typeByte)) || !held.isEmpty else {
            return [(packet, context, nil)]
        }
        held.append((packet, context))
        heldBytes += packet.readableBytes
        var packets = held.map(\.packet)
        let report: RedactionReport
        if heldBytes > maxHeldBytes {
            var r = RedactionReport(ranges: [], failedClosed: true, note: "message too large to hold; payload redacted")
            for i in packets.indices {
                r.ranges.append(.init(kind: "payload", offset: 0, length: StreamingRedactor.blank(&packets[i])))
            }
            report = r
            blankingRest = !eom
        } else if eom {
            report = SecretRedactor.redact(packets: &packets)
        } else {
            return []
        }
        let contexts = held.map(\.context)
        held = []
        heldBytes = 0
        return packets.indices.map { i in (packets[i], contexts[i], i == packets.count - 1 ? report : nil) }
    }

    /// Packets still held (a message without its last packet) when the stream ends, blanked.
    public mutating func flush() -> [Output] {
        var out: [Output] = []
        for (p, c) in held {
            var packet = p
            let n = StreamingRedactor.blank(&packet)
            out.append((packet, c, RedactionReport(ranges: [.init(kind: "payload", offset: 0, length: n)], failedClosed: true,
                                                   note: "incomplete message; payload redacted")))
        }
        held = []
        heldBytes = 0
        return out
    }

    private static func blank(_ packet: inout ByteBuffer) -> Int {
        let n = max(0, packet.readableBytes - TDSPacketHeader.size)
        if n > 0 { packet.setRepeatingByte(SecretRedactor.filler, count: n, at: packet.readerIndex + TDSPacketHeader.size) }
        return n
    }
}
