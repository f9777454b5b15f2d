import NIOCore

/// SMP ([MC-SMP]) control flags. Exactly one is set in a valid packet.
public struct SMPFlags: OptionSet, Hashable, Sendable, CustomStringConvertible {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let syn = SMPFlags(rawValue: 0x01)
    public static let ack = SMPFlags(rawValue: 0x02)
    public static let fin = SMPFlags(rawValue: 0x04)
    public static let data = SMPFlags(rawValue: 0x08)

    public var description: String {
        switch self {
        case .syn: return "SYN"
        case .ack: return "ACK"
        case .fin: return "FIN"
        case .data: return "DATA"
        default: return "0x" + String(rawValue, radix: 16)
        }
    }
}

/// The 16-byte SMP header, all integers little-endian. After PRELOGIN negotiates MARS (and
/// after TLS when it is on) every byte of a TDS connection travels in SMP packets.
public struct SMPHeader: Hashable, Sendable {
    public static let size = 16
    public static let smid: UInt8 = 0x53

    public var flags: SMPFlags
    public var sid: UInt16
    /// Whole SMP packet length, header included.
    public var length: UInt32
    /// DATA: this packet's number (1, 2, ... wrapping). SYN/ACK/FIN: the last DATA sent.
    public var seqnum: UInt32
    /// The highest SEQNUM the sender of this header will accept from its peer.
    public var window: UInt32

    public init(flags: SMPFlags, sid: UInt16, length: UInt32 = UInt32(SMPHeader.size), seqnum: UInt32, window: UInt32) {
        self.flags = flags
        self.sid = sid
        self.length = length
        self.seqnum = seqnum
        self.window = window
    }

    /// Looks at the next header without consuming it: nil when fewer than 16 bytes are
    /// readable; throws when the bytes are not an SMP header (wrong SMID, flags that are not
    /// exactly one of SYN/ACK/FIN/DATA, a length below 16 or above `maxLength`, or a control
    /// packet that carries a payload).
    public static func peek(from buffer: ByteBuffer, maxLength: Int = 1 << 20) throws -> SMPHeader? {
        guard buffer.readableBytes >= size else { return nil }
        var b = buffer
        let smid = try b.tdsU8("SMP header.SMID")
        guard smid == Self.smid else {
            throw TDSDecodingError(field: "SMP header.SMID", reason: "0x\(String(smid, radix: 16)) is not 0x53: not an SMP packet")
        }
        let flags = SMPFlags(rawValue: try b.tdsU8("SMP header.FLAGS"))
        guard [SMPFlags.syn, .ack, .fin, .data].contains(flags) else {
            throw TDSDecodingError(field: "SMP header.FLAGS", reason: "0x\(String(flags.rawValue, radix: 16)) is not exactly one of SYN, ACK, FIN, DATA")
        }
        let sid = try b.tdsU16LE("SMP header.SID")
        let length = try b.tdsU32LE("SMP header.LENGTH")
        let seqnum = try b.tdsU32LE("SMP header.SEQNUM")
        let window = try b.tdsU32LE("SMP header.WNDW")
        guard length >= UInt32(size), UInt64(length) <= UInt64(max(maxLength, size)) else {
            throw TDSDecodingError(field: "SMP header.LENGTH", reason: "length \(length) is outside 16...\(maxLength)")
        }
        guard flags == .data || length == UInt32(size) else {
            throw TDSDecodingError(field: "SMP header.LENGTH", reason: "\(flags) packet with length \(length): only DATA carries a payload")
        }
        return SMPHeader(flags: flags, sid: sid, length: length, seqnum: seqnum, window: window)
    }

    public func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(Self.smid)
        buffer.writeInteger(flags.rawValue)
        buffer.writeInteger(sid, endianness: .little)
        buffer.writeInteger(length, endianness: .little)
        buffer.writeInteger(seqnum, endianness: .little)
        buffer.writeInteger(window, endianness: .little)
    }

    /// Rewrites SEQNUM and WNDW of the header at the start of `buffer` in place.
    public static func rewrite(_ buffer: inout ByteBuffer, seqnum: UInt32, window: UInt32) {
        buffer.setInteger(seqnum, at: buffer.readerIndex + 8, endianness: .little)
        buffer.setInteger(window, at: buffer.readerIndex + 12, endianness: .little)
    }
}

/// One SMP packet: header and (DATA only) payload.
public struct SMPFrame: Hashable, Sendable {
    public var header: SMPHeader
    public var payload: ByteBuffer

    public init(header: SMPHeader, payload: ByteBuffer = ByteBuffer()) {
        self.header = header
        self.payload = payload
    }

    /// Reads one whole packet if available (nil if incomplete); throws on a bad header.
    public static func read(from buffer: inout ByteBuffer, maxLength: Int = 1 << 20) throws -> SMPFrame? {
        guard let header = try SMPHeader.peek(from: buffer, maxLength: maxLength) else { return nil }
        let length = Int(header.length)
        guard buffer.readableBytes >= length else { return nil }
        buffer.moveReaderIndex(forwardBy: SMPHeader.size)
        let payload = buffer.readSlice(length: length - SMPHeader.size) ?? ByteBuffer()
        return SMPFrame(header: header, payload: payload)
    }

    /// Length of the whole packet at the start of `buffer`, or nil when its header is not
    /// complete yet; throws on a bad header. For relays that move packets unparsed.
    public static func wholeLength(in buffer: ByteBuffer, maxLength: Int = 1 << 20) throws -> Int? {
        try SMPHeader.peek(from: buffer, maxLength: maxLength).map { Int($0.length) }
    }

    /// Header (with its length fixed up to match the payload) followed by the payload.
    public func write(into buffer: inout ByteBuffer) {
        var h = header
        h.length = UInt32(SMPHeader.size + payload.readableBytes)
        h.write(into: &buffer)
        buffer.writeImmutableBuffer(payload)
    }
}

/// Serial-number comparison for 32-bit SMP sequence numbers that wrap.
public enum SMPSerial {
    /// a <= b in wrapping sequence space.
    @inlinable public static func lessOrEqual(_ a: UInt32, _ b: UInt32) -> Bool {
        Int32(bitPattern: b &- a) >= 0
    }
}
