import NIOCore

/// pcapng blocks as bytes (no file I/O: the caller appends them to a file per session or per
/// dump). One interface with LINKTYPE_RAW, so every packet may be IPv4 or IPv6.
public struct PcapngWriter: Sendable {
    public enum TimestampResolution: Sendable {
        case microseconds
        case nanoseconds

        var exponent: UInt8 { self == .microseconds ? 6 : 9 }
    }

    public static let linkTypeRaw: UInt16 = 101
    public var resolution: TimestampResolution
    public var application: String
    public var comment: String

    public init(resolution: TimestampResolution = .nanoseconds, application: String = "tdsgate",
                comment: String? = nil) {
        self.resolution = resolution
        self.application = application
        self.comment = comment ?? "Written by \(application) dump mode from decrypted TDS traffic. Secrets (LOGIN7 password, "
            + "change-password, SSPI, FEDAUTH tokens) were redacted in place: their bytes are overwritten, lengths kept. "
            + "IP and TCP framing is synthetic, built from the real addresses and ports of each leg."
    }

    /// Section Header Block followed by the Interface Description Block: the start of a file.
    public func fileHeader() -> [UInt8] {
        var shb = [UInt8]()
        le32(&shb, 0x1A2B_3C4D)
        le16(&shb, 1)
        le16(&shb, 0)
        shb += [UInt8](repeating: 0xFF, count: 8)  // section length unknown
        option(&shb, 1, Array(comment.utf8))  // shb_comment
        option(&shb, 4, Array(application.utf8))  // shb_userappl
        endOfOptions(&shb)
        var idb = [UInt8]()
        le16(&idb, PcapngWriter.linkTypeRaw)
        le16(&idb, 0)
        le32(&idb, 0)  // no snap length limit
        option(&idb, 2, Array("tdsgate-dump".utf8))  // if_name
        option(&idb, 3, Array("decrypted TDS with synthetic IP/TCP framing".utf8))  // if_description
        option(&idb, 9, [resolution.exponent])  // if_tsresol: 10^-6 or 10^-9
        endOfOptions(&idb)
        return block(0x0A0D_0D0A, shb) + block(1, idb)
    }

    /// One Enhanced Packet Block holding a raw IP packet.
    public func enhancedPacket(_ packet: [UInt8], at time: DumpTimestamp, comment: String? = nil) -> [UInt8] {
        let ticks = resolution == .nanoseconds ? time.nanosecondsSinceEpoch : time.nanosecondsSinceEpoch / 1000
        var body = [UInt8]()
        body.reserveCapacity(packet.count + 40)
        le32(&body, 0)  // interface 0
        le32(&body, UInt32(truncatingIfNeeded: ticks >> 32))
        le32(&body, UInt32(truncatingIfNeeded: ticks))
        le32(&body, UInt32(packet.count))
        le32(&body, UInt32(packet.count))
        body += packet
        pad(&body)
        if let comment {
            option(&body, 1, Array(comment.utf8))
            endOfOptions(&body)
        }
        return block(6, body)
    }

    private func block(_ type: UInt32, _ body: [UInt8]) -> [UInt8] {
        var out = [UInt8]()
        let total = UInt32(12 + body.count)
        le32(&out, type)
        le32(&out, total)
        out += body
        le32(&out, total)
        return out
    }

    private func option(_ b: inout [UInt8], _ code: UInt16, _ value: [UInt8]) {
        let v = value.prefix(65_000)
        le16(&b, code)
        le16(&b, UInt16(v.count))
        b += v
        pad(&b)
    }

    private func endOfOptions(_ b: inout [UInt8]) { le32(&b, 0) }
    private func pad(_ b: inout [UInt8]) { while b.count % 4 != 0 { b.append(0) } }
    private func le16(_ b: inout [UInt8], _ v: UInt16) { b.append(UInt8(truncatingIfNeeded: v)); b.append(UInt8(v >> 8)) }
    private func le32(_ b: inout [UInt8], _ v: UInt32) {
        le16(&b, UInt16(truncatingIfNeeded: v))
        le16(&b, UInt16(v >> 16))
    }
}

/// One session's capture for a relay tap: fed the TDS packets of both legs as they pass,
/// returns pcapng blocks to append. Redacts secrets (holding a LOGIN7 until its last packet)
/// and opens each leg's synthetic TCP connection on its first packet.
public struct DumpCaptureRecorder: Sendable {
    public let endpoints: DumpEndpoints
    public let writer: PcapngWriter
    private var connections: [DumpLeg: SyntheticTCPConnection] = [:]
    private var redactors: [DumpDirection: StreamingRedactor] = [:]

    public init(endpoints: DumpEndpoints, writer: PcapngWriter = PcapngWriter()) {
        self.endpoints = endpoints
        self.writer = writer
        for leg in DumpLeg.allCases {
            let s = endpoints.sockets(of: leg)
            // Distinct initial sequence numbers per leg keep Wireshark's conversations apart.
            connections[leg] = SyntheticTCPConnection(client: s.client, server: s.server,
                                                      clientInitialSequence: leg == .client ? 0x1000_0000 : 0x3000_0000,
                                                      serverInitialSequence: leg == .client ? 0x2000_0000 : 0x4000_0000)
        }
        for d in DumpDirection.allCases { redactors[d] = StreamingRedactor() }
    }

    /// File header (SHB + IDB) for a file that holds just this session.
    public func fileHeader() -> [UInt8] { writer.fileHeader() }

    /// Records one TDS packet (header + payload); returns the blocks ready to append (none
    /// while a secret-bearing message is still incomplete).
    public mutating func record(packet: ByteBuffer, direction: DumpDirection, at time: DumpTimestamp) -> [UInt8] {
        let ready = redactors[direction]?.process(packet: packet, context: time.nanosecondsSinceEpoch) ?? []
        var out = [UInt8]()
        for r in ready {
            out += emit(r.packet, direction: direction, at: DumpTimestamp(nanosecondsSinceEpoch: r.context))
        }
        return out
    }

    /// Closes a leg with FIN / FIN-ACK / ACK (from the side that hung up).
    public mutating func close(leg: DumpLeg, byClientSide: Bool = true, at time: DumpTimestamp) -> [UInt8] {
        var out = [UInt8]()
        for d in [DumpDirection.requests(on: leg), DumpDirection.replies(on: leg)] {
            for r in redactors[d]?.flush() ?? [] {
                out += emit(r.packet, direction: d, at: DumpTimestamp(nanosecondsSinceEpoch: r.context))
            }
        }
        for p in connections[leg]?.close(fromClient: byClientSide) ?? [] { out += writer.enhancedPacket(p, at: time) }
        return out
    }

    private mutating func emit(_ packet: ByteBuffer, direction: DumpDirection, at time: DumpTimestamp) -> [UInt8] {
        var out = [UInt8]()
        for p in connections[direction.leg]?.send(packet, fromClient: direction.isFromClientSide) ?? [] {
            out += writer.enhancedPacket(p, at: time)
        }
        return out
    }
}
