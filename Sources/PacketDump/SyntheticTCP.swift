import NIOCore

/// Builds IPv4/IPv6 + TCP packets around TDS bytes so a decrypted session can be opened in
/// Wireshark as if it had been captured on the wire: handshake first, sequence and
/// acknowledgement numbers tracked per side, checksums correct.
public struct SyntheticTCPConnection: Sendable {
    public let client: DumpSocketAddress
    public let server: DumpSocketAddress
    /// Largest TCP payload per segment (an IPv4 packet must stay under 65,535 bytes).
    public static let maxSegmentPayload = 65_000

    private var clientNext: UInt32
    private var serverNext: UInt32
    private var ipID: UInt16 = 1
    public private(set) var isOpen = false
    public private(set) var isClosed = false

    public init(client: DumpSocketAddress, server: DumpSocketAddress,
                clientInitialSequence: UInt32 = 0x1000_0000, serverInitialSequence: UInt32 = 0x2000_0000) {
        // Both ends must be of one family: map IPv4 into IPv6 when they are mixed.
        if client.isIPv6 != server.isIPv6 {
            self.client = client.isIPv6 ? client : DumpSocketAddress(bytes: SyntheticTCPConnection.mapped(client.address), port: client.port)
            self.server = server.isIPv6 ? server : DumpSocketAddress(bytes: SyntheticTCPConnection.mapped(server.address), port: server.port)
        } else {
            self.client = client
            self.server = server
        }
        clientNext = clientInitialSequence
        serverNext = serverInitialSequence
    }

    static func mapped(_ v4: [UInt8]) -> [UInt8] { [UInt8](repeating: 0, count: 10) + [0xFF, 0xFF] + v4 }

    static let fin: UInt8 = 0x01, syn: UInt8 = 0x02, psh: UInt8 = 0x08, ack: UInt8 = 0x10

    /// SYN, SYN-ACK, ACK.
    public mutating func handshake() -> [[UInt8]] {
        guard !isOpen else { return [] }
        isOpen = true
        var out: [[UInt8]] = []
        out.append(segment(fromClient: true, seq: clientNext, ack: 0, flags: Self.syn, payload: []))
        clientNext &+= 1
        out.append(segment(fromClient: false, seq: serverNext, ack: clientNext, flags: Self.syn | Self.ack, payload: []))
        serverNext &+= 1
        out.append(segment(fromClient: true, seq: clientNext, ack: serverNext, flags: Self.ack, payload: []))
        return out
    }

    /// Data segments (PSH|ACK) of at most `maxSegmentPayload` bytes; opens the connection first
    /// if needed.
    public mutating func send(_ data: ByteBuffer, fromClient: Bool) -> [[UInt8]] {
        var out = handshake()
        var rest = data
        repeat {
            let n = min(rest.readableBytes, Self.maxSegmentPayload)
            let part = rest.readBytes(length: n) ?? []
            if fromClient {
                out.append(segment(fromClient: true, seq: clientNext, ack: serverNext, flags: Self.psh | Self.ack, payload: part))
                clientNext &+= UInt32(n)
            } else {
                out.append(segment(fromClient: false, seq: serverNext, ack: clientNext, flags: Self.psh | Self.ack, payload: part))
                serverNext &+= UInt32(n)
            }
        } while rest.readableBytes > 0
        return out
    }

    /// FIN from `fromClient`'s side, FIN-ACK back, final ACK.
    public mutating func close(fromClient: Bool = true) -> [[UInt8]] {
        guard isOpen, !isClosed else { return [] }
        isClosed = true
        var out: [[UInt8]] = []
        if fromClient {
            out.append(segment(fromClient: true, seq: clientNext, ack: serverNext, flags: Self.fin | Self.ack, payload: []))
            clientNext &+= 1
            out.append(segment(fromClient: false, seq: serverNext, ack: clientNext, flags: Self.fin | Self.ack, payload: []))
            serverNext &+= 1
            out.append(segment(fromClient: true, seq: clientNext, ack: serverNext, flags: Self.ack, payload: []))
        } else {
            out.append(segment(fromClient: false, seq: serverNext, ack: clientNext, flags: Self.fin | Self.ack, payload: []))
            serverNext &+= 1
            out.append(segment(fromClient: true, seq: clientNext, ack: serverNext, flags: Self.fin | Self.ack, payload: []))
            clientNext &+= 1
            out.append(segment(fromClient: false, seq: serverNext, ack: clientNext, flags: Self.ack, payload: []))
        }
        return out
    }

    private mutating func segment(fromClient: Bool, seq: UInt32, ack: UInt32, flags: UInt8, payload: [UInt8]) -> [UInt8] {
        let src = fromClient ? client : server
        let dst = fromClient ? server : client
        var tcp = [UInt8]()
        tcp.reserveCapacity(20 + payload.count)
        func be16(_ v: UInt16) { tcp.append(UInt8(v >> 8)); tcp.append(UInt8(truncatingIfNeeded: v)) }
        func be32(_ v: UInt32) { be16(UInt16(v >> 16)); be16(UInt16(truncatingIfNeeded: v)) }
        be16(src.port)
        be16(dst.port)
        be32(seq)
        be32(flags & Self.ack != 0 ? ack : 0)
        tcp.append(0x50)  // 20-byte header, no options
        tcp.append(flags)
        be16(65_535)  // window
        be16(0)  // checksum, filled below
        be16(0)  // urgent pointer
        tcp += payload
        let sum = Checksum.tcp(source: src.address, destination: dst.address, segment: tcp)
        tcp[16] = UInt8(sum >> 8)
        tcp[17] = UInt8(truncatingIfNeeded: sum)
        let id = ipID
        ipID &+= 1
        return src.isIPv6 ? IPPacket.ipv6(source: src.address, destination: dst.address, tcp: tcp)
            : IPPacket.ipv4(source: src.address, destination: dst.address, id: id, tcp: tcp)
    }
}

enum IPPacket {
    static func ipv4(source: [UInt8], destination: [UInt8], id: UInt16, tcp: [UInt8]) -> [UInt8] {
        let total = 20 + tcp.count
        var h: [UInt8] = [0x45, 0x00, UInt8(truncatingIfNeeded: total >> 8), UInt8(truncatingIfNeeded: total),
                          UInt8(id >> 8), UInt8(truncatingIfNeeded: id), 0x40, 0x00,  // DF
                          64, 6, 0, 0]
        h += source
        h += destination
        let sum = Checksum.internet(h)
        h[10] = UInt8(sum >> 8)
        h[11] = UInt8(truncatingIfNeeded: sum)
        return h + tcp
    }

    static func ipv6(source: [UInt8], destination: [UInt8], tcp: [UInt8]) -> [UInt8] {
        let n = tcp.count
        var h: [UInt8] = [0x60, 0, 0, 0, UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n), 6, 64]
        h += source
        h += destination
        return h + tcp
    }
}

enum Checksum {
    /// One's-complement sum of 16-bit big-endian words, folded.
    static func sum<C: Collection>(_ bytes: C, initial: UInt32 = 0) -> UInt32 where C.Element == UInt8 {
        var s = initial
        var high = true
        var word: UInt32 = 0
        for b in bytes {
            if high { word = UInt32(b) << 8 } else { s &+= word | UInt32(b); word = 0 }
            high.toggle()
        }
        if !high { s &+= word }
        while s >> 16 != 0 { s = (s & 0xFFFF) &+ (s >> 16) }
        return s
    }

    static func internet(_ bytes: [UInt8]) -> UInt16 { ~UInt16(truncatingIfNeeded: sum(bytes)) }

    static func tcp(source: [UInt8], destination: [UInt8], segment: [UInt8]) -> UInt16 {
        var pseudo = source + destination
        let n = segment.count
        if source.count == 16 {
            pseudo += [UInt8(truncatingIfNeeded: n >> 24), UInt8(truncatingIfNeeded: n >> 16), UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n), 0, 0, 0, 6]
        } else {
            pseudo += [0, 6, UInt8(truncatingIfNeeded: n >> 8), UInt8(truncatingIfNeeded: n)]
        }
        let s = sum(segment, initial: sum(pseudo))
        return ~UInt16(truncatingIfNeeded: s)
    }
}
