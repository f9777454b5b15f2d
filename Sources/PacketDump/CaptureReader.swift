/// Errors of the offline readers, worded for the command line.
public struct DumpReadError: Error, Hashable, Sendable, CustomStringConvertible {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One link-layer frame from a capture file.
public struct CapturedFrame: Hashable, Sendable {
    public var linkType: UInt32
    public var timestamp: DumpTimestamp
    public var data: [UInt8]
}

/// A TCP segment found in a frame.
public struct TCPSegment: Hashable, Sendable {
    public var source: DumpSocketAddress
    public var destination: DumpSocketAddress
    public var sequence: UInt32
    public var flags: UInt8
    public var payload: ArraySlice<UInt8>
    public var timestamp: DumpTimestamp

    public var isSYN: Bool { flags & 0x02 != 0 }
    public var isFIN: Bool { flags & 0x01 != 0 }
    public var isRST: Bool { flags & 0x04 != 0 }
}

/// Reads pcapng and classic pcap (both byte orders, microsecond and nanosecond) files held in
/// memory. Never traps on corrupt input: a broken block ends the read with an error, or, past
/// the first frame, with the frames read so far and a note.
public enum CaptureFileReader {
    public enum Format: String, Sendable { case pcapng, pcap, hex }

    public static func detect(_ bytes: [UInt8]) -> Format? {
        guard bytes.count >= 4 else { return bytes.isEmpty ? nil : .hex }
        let m = bytes.prefix(4)
        if m.elementsEqual([0x0A, 0x0D, 0x0D, 0x0A]) { return .pcapng }
        let pcapMagics: [[UInt8]] = [[0xD4, 0xC3, 0xB2, 0xA1], [0xA1, 0xB2, 0xC3, 0xD4], [0x4D, 0x3C, 0xB2, 0xA1], [0xA1, 0xB2, 0x3C, 0x4D]]
        if pcapMagics.contains(where: { m.elementsEqual($0) }) { return .pcap }
        return HexDumpReader.looksLikeHex(bytes) ? .hex : nil
    }

    /// Frames of a pcap or pcapng file, with a note when the file ended early or was damaged.
    public static func frames(_ bytes: [UInt8]) throws -> (frames: [CapturedFrame], note: String?) {
        switch detect(bytes) {
        case .pcapng?: return try pcapng(bytes)
        case .pcap?: return try pcap(bytes)
        default: throw DumpReadError("not a pcap or pcapng file")
        }
    }

    struct Reader {
        let bytes: [UInt8]
        var bigEndian = false
        func u16(_ at: Int) -> UInt16? {
            guard at >= 0, at + 2 <= bytes.count else { return nil }
            let a = UInt16(bytes[at]), b = UInt16(bytes[at + 1])
            return bigEndian ? a << 8 | b : b << 8 | a
        }
        func u32(_ at: Int) -> UInt32? {
            guard let a = u16(at), let b = u16(at + 2) else { return nil }
            return bigEndian ? UInt32(a) << 16 | UInt32(b) : UInt32(b) << 16 | UInt32(a)
        }
    }

    static func pcap(_ bytes: [UInt8]) throws -> (frames: [CapturedFrame], note: String?) {
        guard bytes.count >= 24 else { throw DumpReadError("pcap file shorter than its 24-byte header") }
        var r = Reader(bytes: bytes)
        let magic = r.u32(0) ?? 0
        var nanos = false
        switch magic {
        case 0xA1B2_C3D4: break
        case 0xA1B2_3C4D: nanos = true
        default:
            r.bigEndian = true
            nanos = r.u32(0) == 0xA1B2_3C4D
        }
        let linkType = (r.u32(20) ?? 0) & 0x0FFF_FFFF
        var frames: [CapturedFrame] = []
        var at = 24
        while at < bytes.count {
            guard let sec = r.u32(at), let frac = r.u32(at + 4), let incl = r.u32(at + 8) else {
                return (frames, "the file ends inside a record header at byte \(at)")
            }
            let start = at + 16
            guard Int(incl) <= bytes.count - start else {
                return (frames, "record at byte \(at) claims \(incl) bytes but the file ends first")
            }
            let ns = UInt64(sec) * 1_000_000_000 + UInt64(frac) * (nanos ? 1 : 1000)
            frames.append(CapturedFrame(linkType: linkType, timestamp: DumpTimestamp(nanosecondsSinceEpoch: ns),
                                        data: Array(bytes[start..<start + Int(incl)])))
            at = start + Int(incl)
        }
        return (frames, nil)
    }

    static func pcapng(_ bytes: [UInt8]) throws -> (frames: [CapturedFrame], note: String?) {
        var r = Reader(bytes: bytes)
        var interfaces: [(linkType: UInt32, unitsPerSecond: UInt64)] = []
        var frames: [CapturedFrame] = []
        var at = 0
        while at < bytes.count {
            guard at + 12 <= bytes.count else { return (frames, "the file ends inside a block header at byte \(at)") }
            let type = r.u32(at) ?? 0
            if type == 0x0A0D_0D0A {
                // A new section may switch byte order.
                guard let bom = Reader(bytes: bytes).u32(at + 8) else { break }
                if bom == 0x1A2B_3C4D { r.bigEndian = false } else if bom == 0x4D3C_2B1A { r.bigEndian = true } else {
                    throw DumpReadError("pcapng section header with a bad byte-order magic at byte \(at)")
                }
                interfaces = []
            }
            guard let length32 = r.u32(at + 4), length32 >= 12, length32 % 4 == 0, Int(length32) <= bytes.count - at else {
                if frames.isEmpty && interfaces.isEmpty { throw DumpReadError("pcapng block at byte \(at) has an impossible length") }
                return (frames, "pcapng block at byte \(at) has an impossible length; reading stopped there")
            }
            let length = Int(length32)
            let body = at + 8
            let bodyEnd = at + length - 4
            switch type {
            case 1:  // Interface Description Block
                let link = UInt32(r.u16(body) ?? 0)
                var units: UInt64 = 1_000_000
                var o = body + 8
                while o + 4 <= bodyEnd, let code = r.u16(o), let len = r.u16(o + 2), code != 0 {
                    if code == 9, len >= 1, o + 4 < bodyEnd {
                        let v = bytes[o + 4]
                        let exp = Int(v & 0x7F)
                        if exp <= 19 {
                            units = 1
                            for _ in 0..<exp { units *= (v & 0x80 != 0) ? 2 : 10 }
                        }
                    }
                    o += 4 + (Int(len) + 3) / 4 * 4
                }
                interfaces.append((link, max(units, 1)))
            case 6:  // Enhanced Packet Block
                guard let iface = r.u32(body), let hi = r.u32(body + 4), let lo = r.u32(body + 8),
                      let cap = r.u32(body + 12), Int(iface) < interfaces.count,
                      Int(cap) <= bodyEnd - (body + 20) else {
                    return (frames, "damaged enhanced packet block at byte \(at); reading stopped there")
                }
                let ticks = UInt64(hi) << 32 | UInt64(lo)
                let units = interfaces[Int(iface)].unitsPerSecond
                let ns = units >= 1_000_000_000 ? ticks / (units / 1_000_000_000) : ticks.multipliedReportingOverflow(by: 1_000_000_000 / units).partialValue
                frames.append(CapturedFrame(linkType: interfaces[Int(iface)].linkType,
                                            timestamp: DumpTimestamp(nanosecondsSinceEpoch: ns),
                                            data: Array(bytes[(body + 20)..<(body + 20 + Int(cap))])))
            case 3:  // Simple Packet Block
                guard let first = interfaces.first, let orig = r.u32(body) else { break }
                let cap = min(Int(orig), bodyEnd - (body + 4))
                if cap > 0 {
                    frames.append(CapturedFrame(linkType: first.linkType, timestamp: DumpTimestamp(nanosecondsSinceEpoch: 0),
                                                data: Array(bytes[(body + 4)..<(body + 4 + cap)])))
                }
            default:
                break
            }
            at += length
        }
        return (frames, nil)
    }

    /// The TCP segment inside a frame, or nil when the frame holds something else.
    public static func tcpSegment(_ frame: CapturedFrame) -> TCPSegment? {
        let d = frame.data
        var ipStart: Int
        switch frame.linkType {
        case 0:  // BSD loopback: 4-byte address family in the capturing host's byte order
            ipStart = 4
        case 1:  // Ethernet
            guard d.count >= 14 else { return nil }
            var typeAt = 12
            var etherType = UInt16(d[12]) << 8 | UInt16(d[13])
            while etherType == 0x8100 || etherType == 0x88A8 {
                typeAt += 4
                guard d.count >= typeAt + 2 else { return nil }
                etherType = UInt16(d[typeAt]) << 8 | UInt16(d[typeAt + 1])
            }
            guard etherType == 0x0800 || etherType == 0x86DD else { return nil }
            ipStart = typeAt + 2
        case 101, 228, 229, 12, 14:
            ipStart = 0
        case 113:  // Linux cooked v1
            guard d.count >= 16 else { return nil }
            let proto = UInt16(d[14]) << 8 | UInt16(d[15])
            guard proto == 0x0800 || proto == 0x86DD else { return nil }
            ipStart = 16
        case 276:  // Linux cooked v2
            guard d.count >= 20 else { return nil }
            let proto = UInt16(d[0]) << 8 | UInt16(d[1])
            guard proto == 0x0800 || proto == 0x86DD else { return nil }
            ipStart = 20
        default:
            return nil
        }
        return parseIP(d, at: ipStart, timestamp: frame.timestamp)
    }

    static func parseIP(_ d: [UInt8], at start: Int, timestamp: DumpTimestamp) -> TCPSegment? {
        guard start < d.count else { return nil }
        let version = d[start] >> 4
        var tcpStart: Int
        var end: Int
        var src: [UInt8], dst: [UInt8]
        if version == 4 {
            guard d.count >= start + 20 else { return nil }
            let ihl = Int(d[start] & 0x0F) * 4
            let total = Int(UInt16(d[start + 2]) << 8 | UInt16(d[start + 3]))
            let fragment = UInt16(d[start + 6]) << 8 | UInt16(d[start + 7])
            guard ihl >= 20, d[start + 9] == 6, fragment & 0x3FFF == 0 else { return nil }
            // Captures with TSO show total length 0: trust the frame then.
            end = total == 0 ? d.count : min(d.count, start + total)
            tcpStart = start + ihl
            guard tcpStart <= end else { return nil }
            src = Array(d[(start + 12)..<(start + 16)])
            dst = Array(d[(start + 16)..<(start + 20)])
        } else if version == 6 {
            guard d.count >= start + 40 else { return nil }
            let payloadLength = Int(UInt16(d[start + 4]) << 8 | UInt16(d[start + 5]))
            var next = d[start + 6]
            src = Array(d[(start + 8)..<(start + 24)])
            dst = Array(d[(start + 24)..<(start + 40)])
            end = payloadLength == 0 ? d.count : min(d.count, start + 40 + payloadLength)
            tcpStart = start + 40
            var hops = 0
            while next != 6 {
                // Hop-by-hop, routing, destination options: skip; anything else is not TCP for us.
                guard [0, 43, 60].contains(next), tcpStart + 8 <= end, hops < 8 else { return nil }
                next = d[tcpStart]
                tcpStart += (Int(d[tcpStart + 1]) + 1) * 8
                hops += 1
            }
        } else {
            return nil
        }
        guard tcpStart + 20 <= end else { return nil }
        let t = tcpStart
        let sport = UInt16(d[t]) << 8 | UInt16(d[t + 1])
        let dport = UInt16(d[t + 2]) << 8 | UInt16(d[t + 3])
        let seq = UInt32(d[t + 4]) << 24 | UInt32(d[t + 5]) << 16 | UInt32(d[t + 6]) << 8 | UInt32(d[t + 7])
        let offset = Int(d[t + 12] >> 4) * 4
        guard offset >= 20, t + offset <= end else { return nil }
        return TCPSegment(source: DumpSocketAddress(bytes: src, port: sport), destination: DumpSocketAddress(bytes: dst, port: dport),
                          sequence: seq, flags: d[t + 13], payload: d[(t + offset)..<end], timestamp: timestamp)
    }
}
