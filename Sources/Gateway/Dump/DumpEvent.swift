import PacketDump

/// What the event loop hands the dump's writer thread, as the bytes of a spool record:
/// a kind byte, then fields. Built with one copy of the packet on the loop; everything
/// else (redaction, decoding, framing, files) happens on the writer thread.
enum DumpEvent: Equatable {
    /// The session starts being dumped.
    case open(session: Int, generation: Int, client: String, settings: Flags, at: UInt64)
    /// One whole TDS packet. `addresses` is "local|remote" of the leg's socket.
    case packet(direction: DumpDirection, sid: UInt16?, at: UInt64, addresses: String, bytes: ArraySlice<UInt8>)
    /// Login done: `fields` in `DumpEvent.identityFields` order.
    case identified(fields: [String], at: UInt64)
    case note(String, at: UInt64)
    case closed(at: UInt64)

    struct Flags: OptionSet, Equatable {
        let rawValue: UInt8
        static let text = Flags(rawValue: 1)
        static let pcapng = Flags(rawValue: 2)
        static let pcapngPerDump = Flags(rawValue: 4)
        static let hex = Flags(rawValue: 8)
        static let maskLiterals = Flags(rawValue: 16)

        init(rawValue: UInt8) { self.rawValue = rawValue }

        init(_ s: DumpSettings) {
            var f: Flags = []
            if s.formats.contains(.text) { f.insert(.text) }
            if s.formats.contains(.pcapng) { f.insert(.pcapng) }
            if s.pcapngFiles == .dump { f.insert(.pcapngPerDump) }
            if s.hex { f.insert(.hex) }
            if s.maskLiterals { f.insert(.maskLiterals) }
            self = f
        }
    }

    static let identityFields = ["principal", "auth_method", "cluster", "endpoint", "intent", "database", "backend_identity"]

    static func identity(_ info: SessionInfo) -> [String] {
        [info.principal, info.authMethod, info.cluster, info.endpoint, info.intent, info.database, info.backendIdentity]
    }

    // MARK: encoding

    /// The hot path: a packet event straight from the tapped buffer.
    static func encodePacket(direction: DumpDirection, sid: UInt16?, at: UInt64, addresses: [UInt8], packet: some Collection<UInt8>) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(16 + addresses.count + packet.count)
        out.append(2)
        out.append(UInt8(DumpDirection.allCases.firstIndex(of: direction)!))
        put16(&out, sid ?? 0xFFFF)
        put64(&out, at)
        put16(&out, UInt16(min(addresses.count, 0xFFFF)))
        out += addresses.prefix(0xFFFF)
        out += packet
        return out
    }

    func encoded() -> [UInt8] {
        var out = [UInt8]()
        switch self {
        case .open(let session, let generation, let client, let settings, let at):
            out.append(1)
            Self.put64(&out, UInt64(session))
            Self.put64(&out, UInt64(generation))
            out.append(settings.rawValue)
            Self.put64(&out, at)
            Self.putString(&out, client)
        case .packet(let direction, let sid, let at, let addresses, let bytes):
            return Self.encodePacket(direction: direction, sid: sid, at: at, addresses: Array(addresses.utf8), packet: bytes)
        case .identified(let fields, let at):
            out.append(3)
            Self.put64(&out, at)
            out.append(UInt8(fields.count))
            for f in fields { Self.putString(&out, f) }
        case .note(let text, let at):
            out.append(4)
            Self.put64(&out, at)
            Self.putString(&out, text)
        case .closed(let at):
            out.append(5)
            Self.put64(&out, at)
        }
        return out
    }

    static func decode(_ bytes: [UInt8]) -> DumpEvent? {
        var r = Reader(bytes: bytes)
        guard let kind = r.u8() else { return nil }
        switch kind {
        case 1:
            guard let s = r.u64(), let g = r.u64(), let f = r.u8(), let at = r.u64(), let client = r.string() else { return nil }
            return .open(session: Int(truncatingIfNeeded: s), generation: Int(truncatingIfNeeded: g), client: client,
                         settings: Flags(rawValue: f), at: at)
        case 2:
            guard let d = r.u8(), Int(d) < DumpDirection.allCases.count, let sid = r.u16(), let at = r.u64(),
                  let n = r.u16(), let addresses = r.bytes(Int(n)) else { return nil }
            return .packet(direction: DumpDirection.allCases[Int(d)], sid: sid == 0xFFFF ? nil : sid, at: at,
                           addresses: String(decoding: addresses, as: UTF8.self), bytes: bytes[r.at...])
        case 3:
            guard let at = r.u64(), let n = r.u8() else { return nil }
            var fields: [String] = []
            for _ in 0..<n {
                guard let f = r.string() else { return nil }
                fields.append(f)
            }
            return .identified(fields: fields, at: at)
        case 4:
            guard let at = r.u64(), let text = r.string() else { return nil }
            return .note(text, at: at)
        case 5:
            guard let at = r.u64() else { return nil }
            return .closed(at: at)
        default:
            return nil
        }
    }

    private static func put16(_ b: inout [UInt8], _ v: UInt16) {
        b.append(UInt8(v >> 8))
        b.append(UInt8(truncatingIfNeeded: v))
    }

    private static func put64(_ b: inout [UInt8], _ v: UInt64) {
        for shift in stride(from: 56, through: 0, by: -8) { b.append(UInt8(truncatingIfNeeded: v >> UInt64(shift))) }
    }

    private static func putString(_ b: inout [UInt8], _ s: String) {
        let u = Array(s.utf8.prefix(0xFFFF))
        put16(&b, UInt16(u.count))
        b += u
    }

    private struct Reader {
        let data: [UInt8]
        var at = 0

        init(bytes: [UInt8]) { data = bytes }

        mutating func u8() -> UInt8? {
            guard at < data.count else { return nil }
            defer { at += 1 }
            return data[at]
        }

        mutating func u16() -> UInt16? {
            guard let a = u8(), let b = u8() else { return nil }
            return UInt16(a) << 8 | UInt16(b)
        }

        mutating func u64() -> UInt64? {
            var v: UInt64 = 0
            for _ in 0..<8 {
                guard let b = u8() else { return nil }
                v = v << 8 | UInt64(b)
            }
            return v
        }

        mutating func bytes(_ n: Int) -> ArraySlice<UInt8>? {
            guard n >= 0, at + n <= data.count else { return nil }
            defer { at += n }
            return data[at..<(at + n)]
        }

        mutating func string() -> String? {
            guard let n = u16(), let b = bytes(Int(n)) else { return nil }
            return String(decoding: b, as: UTF8.self)
        }
    }
}
