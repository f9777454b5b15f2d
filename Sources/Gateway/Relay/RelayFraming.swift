import NIOCore
import TDS

/// What the relay cuts a leg's byte stream into: TDS packets, or SMP packets once a session
/// has negotiated MARS. Pure: `RelayHandler` asks it where units end and what a unit means
/// for request tracking; the bytes it forwards are the ones it read (SID 0's SEQNUM/WNDW
/// aside, see `SMPSequenceTranslation`).
enum RelayFraming: Sendable {
    case tds
    case smp(SMPSequenceTranslation)

    /// What request tracking and flushing need to know of one unit.
    struct Unit: Equatable {
        /// MARS session (0 without MARS).
        var sid: UInt16 = 0
        /// Carries an attention: forwarded and flushed at once.
        var attention = false
        /// Carries the last packet of a message (EOM).
        var endsMessage = false
        /// Closes its MARS session (FIN).
        var endsSession = false
    }

    var headerSize: Int {
        switch self {
        case .tds: TDSPacketHeader.size
        case .smp: SMPHeader.size
        }
    }

    var unitName: String {
        switch self {
        case .tds: "TDS packet"
        case .smp: "SMP packet"
        }
    }

    static let maxTDSPacket = 32_768
    static let maxSMPPacket = 65_536

    /// Whether `inspect` may change a unit's bytes (SID 0 renumbering), so units cannot be
    /// forwarded as one slice of the read.
    var rewritesUnits: Bool {
        if case .smp(let translation) = self { return !translation.isIdentity }
        return false
    }

    /// The largest unit this framing accepts.
    var maxUnitLength: Int {
        switch self {
        case .tds: Self.maxTDSPacket
        case .smp: Self.maxSMPPacket
        }
    }

    /// The whole length of the unit starting at the reader index (its header must be
    /// there); nil when the bytes are not such a unit.
    func unitLength(_ buffer: ByteBuffer) -> Int? {
        switch self {
        case .tds:
            guard let length = buffer.getInteger(at: buffer.readerIndex + 2, endianness: .big, as: UInt16.self),
                  length >= 8, Int(length) <= Self.maxTDSPacket else { return nil }
            return Int(length)
        case .smp:
            return (try? SMPFrame.wholeLength(in: buffer, maxLength: Self.maxSMPPacket)) ?? nil
        }
    }

    /// Reads a whole unit going client-to-server (`towardsServer`) or back; translates SID 0
    /// numbering in place when the translation is not the identity.
    func inspect(_ unit: inout ByteBuffer, towardsServer: Bool) -> Unit {
        let at = unit.readerIndex
        switch self {
        case .tds:
            let status = unit.getInteger(at: at + 1, as: UInt8.self) ?? 0
            return Unit(attention: unit.getInteger(at: at, as: UInt8.self) == TDSPacketType.attention.rawValue,
                        endsMessage: status & TDSPacketStatus.endOfMessage.rawValue != 0)
        case .smp(let translation):
            let flags = SMPFlags(rawValue: unit.getInteger(at: at + 1, as: UInt8.self) ?? 0)
            let sid = unit.getInteger(at: at + 2, endianness: .little, as: UInt16.self) ?? 0
            if sid == 0, !translation.isIdentity,
               let seq = unit.getInteger(at: at + 8, endianness: .little, as: UInt32.self),
               let window = unit.getInteger(at: at + 12, endianness: .little, as: UInt32.self) {
                let h = SMPHeader(flags: flags, sid: sid, seqnum: seq, window: window)
                let t = towardsServer ? translation.toServer(h) : translation.toClient(h)
                SMPHeader.rewrite(&unit, seqnum: t.seqnum, window: t.window)
            }
            var result = Unit(sid: sid, endsSession: flags == .fin)
            if flags == .data {
                (result.attention, result.endsMessage) = Self.scanPackets(unit)
            }
            return result
        }
    }

    /// Looks at the TDS packets in an SMP DATA payload (normally exactly one): whether one is
    /// an attention, and whether one ends a message (EOM).
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
}
