import NIOCore
import NIOEmbedded
import Testing
import TDSNIO

/// Builds v2 headers the way HAProxy writes them (proxy-protocol.txt section 2.2).
enum V2 {
    static let signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    static func header(command: UInt8 = 0x21, family: UInt8, block: [UInt8]) -> [UInt8] {
        signature + [command, family, UInt8(block.count >> 8), UInt8(block.count & 0xFF)] + block
    }

    static func tlv(_ type: UInt8, _ value: [UInt8]) -> [UInt8] {
        [type, UInt8(value.count >> 8), UInt8(value.count & 0xFF)] + value
    }

    static func port(_ p: Int) -> [UInt8] { [UInt8(p >> 8), UInt8(p & 0xFF)] }

    static func ipv4(_ src: [UInt8], _ dst: [UInt8], _ sport: Int, _ dport: Int, tlvs: [UInt8] = []) -> [UInt8] {
        header(family: 0x11, block: src + dst + port(sport) + port(dport) + tlvs)
    }

    static func unixPath(_ s: String) -> [UInt8] {
        let bytes = Array(s.utf8)
        return bytes + [UInt8](repeating: 0, count: 108 - bytes.count)
    }
}

/// A deterministic generator (SplitMix64) so that a failing fuzz case is the same on every run.
struct SeededRandom: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

private let tdsPrelogin: [UInt8] = [0x12, 0x01, 0x00, 0x2F, 0x00, 0x00, 0x01, 0x00]

private func address(_ ip: String, _ port: Int) -> SocketAddress { try! SocketAddress(ipAddress: ip, port: port) }

/// Feeds `bytes` cut at `cut` the way a handler sees two reads: the first part must need
/// more, the whole must parse.
private func parseSplit(_ bytes: [UInt8], at cut: Int, versions: Set<ProxyProtocolVersion> = [.v1, .v2]) throws -> (ProxyParseResult, ByteBuffer) {
    var first = ByteBuffer(bytes: bytes[..<cut])
    let early = try ProxyHeaderParser.parse(&first, versions: versions)
    #expect(early == .needMore, "cut at \(cut) of \(bytes.count)")
    #expect(first.readableBytes == cut, "needMore must not consume")
    var whole = ByteBuffer(bytes: bytes)
    let result = try ProxyHeaderParser.parse(&whole, versions: versions)
    return (result, whole)
}

@Suite struct ProxyHeaderParserTests {
    @Test func v2IPv4WithTLVsAtEverySplitOffset() throws {
        let azure = V2.tlv(0xEE, [0x01, 0x78, 0x56, 0x34, 0x12])
        let authority = V2.tlv(0x02, Array("db.example".utf8))
        let header = V2.ipv4([192, 0, 2, 10], [10, 0, 0, 5], 51234, 1433, tlvs: azure + authority)
        let stream = header + tdsPrelogin
        for cut in 0..<header.count {
            let (result, rest) = try parseSplit(stream, at: cut)
            guard case .header(let h, let consumed) = result else {
                Issue.record("no header at cut \(cut)")
                continue
            }
            #expect(consumed == header.count)
            #expect(Array(rest.readableBytesView) == tdsPrelogin)
            #expect(h.version == .v2)
            #expect(h.source == address("192.0.2.10", 51234))
            #expect(h.destination == address("10.0.0.5", 1433))
            #expect(h.tlvs == [ProxyTLV(type: 0xEE, value: [0x01, 0x78, 0x56, 0x34, 0x12]),
                               ProxyTLV(type: 0x02, value: Array("db.example".utf8))])
            #expect(h.azurePrivateLinkID == 0x1234_5678)
        }
    }

    @Test func v2IPv6() throws {
        var src = [UInt8](repeating: 0, count: 16)
        src[0] = 0x20; src[1] = 0x01; src[2] = 0x0D; src[3] = 0xB8; src[15] = 0x01
        var dst = [UInt8](repeating: 0, count: 16)
        dst[15] = 0x01
        let bytes = V2.header(family: 0x21, block: src + dst + V2.port(40000) + V2.port(1433))
        for cut in 0..<bytes.count {
            let (result, _) = try parseSplit(bytes, at: cut)
            #expect(result == .header(ProxyHeader(version: .v2, addresses: .inet(source: address("2001:db8::1", 40000),
                                                                                 destination: address("::1", 1433))),
                                      consumed: bytes.count))
        }
    }

    @Test func v2UnixSocketPaths() throws {
        let bytes = V2.header(family: 0x31, block: V2.unixPath("/run/haproxy/client.sock") + V2.unixPath("/run/tdsgate.sock"))
        var buffer = ByteBuffer(bytes: bytes)
        let result = try ProxyHeaderParser.parse(&buffer)
        #expect(result == .header(ProxyHeader(version: .v2, addresses: .unix(source: "/run/haproxy/client.sock", destination: "/run/tdsgate.sock")),
                                  consumed: 16 + 216))
        guard case .header(let h, _) = result else { return }
        #expect(h.source == nil)
    }

    @Test func v2LocalIsAcceptedAndItsBlockDiscarded() throws {
        // HAProxy's check-send-proxy health check: LOCAL, AF_UNSPEC, no block.
        var empty = ByteBuffer(bytes: V2.header(command: 0x20, family: 0x00, block: []))
        #expect(try ProxyHeaderParser.parse(&empty) == .header(ProxyHeader(version: .v2, addresses: .local), consumed: 16))
        // LOCAL with an address block: still the socket's own addresses, block discarded.
        var withBlock = ByteBuffer(bytes: V2.header(command: 0x20, family: 0x11, block: [1, 2, 3, 4, 5, 6, 7, 8, 0, 1, 0, 2, 0xFF]))
        #expect(try ProxyHeaderParser.parse(&withBlock) == .header(ProxyHeader(version: .v2, addresses: .local), consumed: 29))
    }

    @Test func v2UnspecifiedProxyKeepsTLVs() throws {
        var buffer = ByteBuffer(bytes: V2.header(family: 0x00, block: V2.tlv(0x04, [0, 0])))
        #expect(try ProxyHeaderParser.parse(&buffer) == .header(
            ProxyHeader(version: .v2, addresses: .unspecified, tlvs: [ProxyTLV(type: 0x04, value: [0, 0])]), consumed: 21))
    }

    @Test func v1TCP4TCP6AndUnknownAtEverySplitOffset() throws {
        let cases: [(String, ProxyHeader.Addresses)] = [
            ("PROXY TCP4 192.0.2.10 10.0.0.5 51234 1433\r\n", .inet(source: address("192.0.2.10", 51234), destination: address("10.0.0.5", 1433))),
            ("PROXY TCP6 2001:db8::1 ::1 40000 1433\r\n", .inet(source: address("2001:db8::1", 40000), destination: address("::1", 1433))),
            ("PROXY UNKNOWN\r\n", .unspecified),
            ("PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n", .unspecified),
        ]
        for (line, addresses) in cases {
            let header = Array(line.utf8)
            for cut in 0..<header.count {
                let (result, rest) = try parseSplit(header + tdsPrelogin, at: cut)
                #expect(result == .header(ProxyHeader(version: .v1, addresses: addresses), consumed: header.count), "\(line) cut \(cut)")
                #expect(Array(rest.readableBytesView) == tdsPrelogin)
            }
        }
    }

    @Test func v1LongestValidLineIsAccepted() throws {
        // The spec's worst case: 107 bytes with CRLF.
        let line = "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"
        #expect(line.utf8.count == 104)
        var buffer = ByteBuffer(string: line)
        guard case .header(_, let consumed) = try ProxyHeaderParser.parse(&buffer) else {
            Issue.record("not parsed")
            return
        }
        #expect(consumed == 104)
        let unknown = "PROXY UNKNOWN " + String(repeating: "x", count: 107 - 16) + "\r\n"
        #expect(unknown.utf8.count == 107)
        var longest = ByteBuffer(string: unknown)
        #expect(try ProxyHeaderParser.parse(&longest) == .header(ProxyHeader(version: .v1, addresses: .unspecified), consumed: 107))
    }

    @Test(arguments: [
        ("PROXY UNKNOWN " + String(repeating: "x", count: 93) + "\r\n", ProxyProtocolError.v1LineTooLong),
        ("PROXY " + String(repeating: "A", count: 120), .v1LineTooLong),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", .v1Malformed("CR not followed by LF")),
        ("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", .v1Malformed("unknown protocol 'UDP4' (expected TCP4, TCP6 or UNKNOWN)")),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", .v1Malformed("expected 'TCP4 <source> <destination> <source port> <destination port>'")),
        ("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", .v1Malformed("expected 'TCP4 <source> <destination> <source port> <destination port>'")),
        ("PROXY TCP4 ::1 5.6.7.8 1 2\r\n", .v1Malformed("'::1' is not an IPv4 address")),
        ("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", .v1Malformed("'1.2.3.4' is not an IPv6 address")),
        ("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", .v1Malformed("'1.2.3.256' is not an IPv4 address")),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n", .v1Malformed("'65536' is not a port number")),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", .v1Malformed("'-1' is not a port number")),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 +2\r\n", .v1Malformed("'+2' is not a port number")),
        ("PROXY\r\n", .notProxyProtocol),
        ("PROXY \r\n", .v1Malformed("no protocol after PROXY")),
        ("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\u{7F}\r\n", .v1Malformed("a byte that is not printable ASCII")),
    ])
    func v1Corruptions(line: String, expected: ProxyProtocolError) {
        var buffer = ByteBuffer(string: line)
        #expect(throws: expected) { _ = try ProxyHeaderParser.parse(&buffer) }
        #expect(buffer.readableBytes == line.utf8.count, "an error consumes nothing")
    }

    @Test func v2Corruptions() {
        let good = V2.ipv4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2)
        func expectError(_ bytes: [UInt8], _ expected: ProxyProtocolError, sourceLocation: SourceLocation = #_sourceLocation) {
            var buffer = ByteBuffer(bytes: bytes)
            #expect(throws: expected, sourceLocation: sourceLocation) { _ = try ProxyHeaderParser.parse(&buffer) }
        }
        var badVersion = good; badVersion[12] = 0x11
        expectError(badVersion, .v2BadVersion(1))
        var badCommand = good; badCommand[12] = 0x22
        expectError(badCommand, .v2BadCommand(2))
        var datagram = good; datagram[13] = 0x12
        expectError(datagram, .v2BadFamily(0x12))
        var unknownFamily = good; unknownFamily[13] = 0x41
        expectError(unknownFamily, .v2BadFamily(0x41))
        // IPv6 family with an IPv4-sized block.
        var short = good; short[13] = 0x21
        expectError(short, .v2AddressBlockTooShort(length: 12, needed: 36))
        expectError(V2.header(family: 0x31, block: [UInt8](repeating: 0, count: 200)), .v2AddressBlockTooShort(length: 200, needed: 216))
        // A TLV whose length runs past the block, and a TLV cut inside its own 3-byte head.
        expectError(V2.ipv4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, tlvs: [0x02, 0x00, 0x05, 0x61]), .v2BadTLV(offset: 28))
        expectError(V2.ipv4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, tlvs: [0x02, 0x00]), .v2BadTLV(offset: 28))
        // A v2 signature spelled wrong after the first byte is no PROXY header at all.
        var signature = good; signature[8] = 0x58
        expectError(signature, .notProxyProtocol)
    }

    @Test func v2LengthAboveTheCapIsRefusedWithoutWaitingForTheBytes() {
        let head = V2.signature + [0x21, 0x11, 0x10, 0x01]   // 4097 bytes announced
        var buffer = ByteBuffer(bytes: head)
        #expect(throws: ProxyProtocolError.v2TooLong(length: 4097, limit: 4096)) { _ = try ProxyHeaderParser.parse(&buffer) }
        var small = ByteBuffer(bytes: V2.ipv4([1, 2, 3, 4], [5, 6, 7, 8], 1, 2, tlvs: V2.tlv(0x05, [UInt8](repeating: 7, count: 64))))
        #expect(throws: ProxyProtocolError.v2TooLong(length: 79, limit: 32)) { _ = try ProxyHeaderParser.parse(&small, maxV2Length: 32) }
    }

    @Test func clientsThatSpeakTDSOrTLSAreNotProxyProtocol() {
        for first in [tdsPrelogin, [0x16, 0x03, 0x01, 0x02, 0x00], [0x50, 0x52, 0x4F, 0x58, 0x59, 0x21], [0x0D, 0x0A, 0x0D, 0x0B]] {
            var buffer = ByteBuffer(bytes: first)
            #expect(throws: ProxyProtocolError.notProxyProtocol) { _ = try ProxyHeaderParser.parse(&buffer) }
            #expect(ProxyHeaderParser.detect(buffer) == .notProxyProtocol)
        }
        #expect(ProxyHeaderParser.detect(ByteBuffer()) == .needMore)
        #expect(ProxyHeaderParser.detect(ByteBuffer(string: "PROX")) == .needMore)
        #expect(ProxyHeaderParser.detect(ByteBuffer(string: "PROXY ")) == .signature(.v1))
        #expect(ProxyHeaderParser.detect(ByteBuffer(bytes: V2.signature)) == .signature(.v2))
    }

    @Test func versionsNotAllowedAreRefused() {
        var v1 = ByteBuffer(string: "PROXY UNKNOWN\r\n")
        #expect(throws: ProxyProtocolError.versionNotAllowed(.v1)) { _ = try ProxyHeaderParser.parse(&v1, versions: [.v2]) }
        var v2 = ByteBuffer(bytes: V2.header(command: 0x20, family: 0, block: []))
        #expect(throws: ProxyProtocolError.versionNotAllowed(.v2)) { _ = try ProxyHeaderParser.parse(&v2, versions: [.v1]) }
    }

    @Test func azureLinkIDNeedsItsSubtypeAndFiveBytes() {
        #expect(ProxyHeader(version: .v2, addresses: .unspecified, tlvs: [ProxyTLV(type: 0xEE, value: [0x02, 1, 0, 0, 0])]).azurePrivateLinkID == nil)
        #expect(ProxyHeader(version: .v2, addresses: .unspecified, tlvs: [ProxyTLV(type: 0xEE, value: [0x01, 1, 0, 0])]).azurePrivateLinkID == nil)
        #expect(ProxyHeader(version: .v2, addresses: .unspecified, tlvs: [ProxyTLV(type: 0xEE, value: [0x01, 1, 0, 0, 0])]).azurePrivateLinkID == 1)
    }

    /// Random valid headers round-trip; random corruptions and truncations of them never
    /// crash, never consume on needMore or error, never read past the bound, and parse the
    /// same whether the bytes come whole or split.
    @Test func seededFuzz() throws {
        var rng = SeededRandom(state: 0x7D5_6A7E)
        var parsed = 0, failed = 0, waiting = 0
        for _ in 0..<4000 {
            let (valid, expected) = randomHeader(&rng)
            var whole = ByteBuffer(bytes: valid)
            #expect(try ProxyHeaderParser.parse(&whole) == .header(expected, consumed: valid.count))

            var bytes = valid + tdsPrelogin
            switch Int.random(in: 0..<4, using: &rng) {
            case 0: bytes[Int.random(in: 0..<bytes.count, using: &rng)] = UInt8.random(in: 0...255, using: &rng)
            case 1: bytes.removeLast(Int.random(in: 1...bytes.count, using: &rng))
            case 2: bytes.insert(UInt8.random(in: 0...255, using: &rng), at: Int.random(in: 0...bytes.count, using: &rng))
            default:
                for _ in 0..<Int.random(in: 1...8, using: &rng) {
                    bytes[Int.random(in: 0..<bytes.count, using: &rng)] ^= UInt8(1) << UInt8.random(in: 0...7, using: &rng)
                }
            }
            let outcome = fuzzOutcome(bytes)
            switch outcome {
            case .parsed(let consumed):
                parsed += 1
                #expect(consumed <= bytes.count)
                #expect(consumed <= 16 + ProxyHeaderParser.defaultMaxV2Length)
            case .failed: failed += 1
            case .needMore: waiting += 1
            }
            let cut = Int.random(in: 0...bytes.count, using: &rng)
            #expect(fuzzOutcomeSplit(bytes, at: cut) == outcome, "split at \(cut) of \(bytes)")
        }
        // The corpus reaches all three outcomes, so the loop is not vacuous.
        #expect(parsed > 100 && failed > 100 && waiting > 100, "\(parsed) parsed, \(failed) failed, \(waiting) waiting")
    }

    private enum Outcome: Equatable {
        case parsed(Int), failed(ProxyProtocolError), needMore
    }

    private func fuzzOutcome(_ bytes: [UInt8]) -> Outcome {
        var buffer = ByteBuffer(bytes: bytes)
        do {
            switch try ProxyHeaderParser.parse(&buffer) {
            case .needMore:
                #expect(buffer.readableBytes == bytes.count)
                return .needMore
            case .header(_, let consumed):
                #expect(buffer.readableBytes == bytes.count - consumed)
                return .parsed(consumed)
            }
        } catch {
            #expect(buffer.readableBytes == bytes.count)
            return .failed(error)
        }
    }

    /// The outcome as a handler sees it: the first part, and if that needs more, the whole.
    private func fuzzOutcomeSplit(_ bytes: [UInt8], at cut: Int) -> Outcome {
        let first = fuzzOutcome(Array(bytes[..<cut]))
        return first == .needMore ? fuzzOutcome(bytes) : (first == fuzzOutcome(bytes) ? first : .failed(.v1Malformed("split changed the outcome")))
    }

    private func randomHeader(_ rng: inout SeededRandom) -> ([UInt8], ProxyHeader) {
        let sport = Int.random(in: 0...65535, using: &rng), dport = Int.random(in: 0...65535, using: &rng)
        switch Int.random(in: 0..<5, using: &rng) {
        case 0:
            let s = (0..<4).map { _ in UInt8.random(in: 0...255, using: &rng) }, d = (0..<4).map { _ in UInt8.random(in: 0...255, using: &rng) }
            let line = "PROXY TCP4 \(s.map(String.init).joined(separator: ".")) \(d.map(String.init).joined(separator: ".")) \(sport) \(dport)\r\n"
            let src = try! SocketAddress(packedIPAddress: ByteBuffer(bytes: s), port: sport)
            let dst = try! SocketAddress(packedIPAddress: ByteBuffer(bytes: d), port: dport)
            return (Array(line.utf8), ProxyHeader(version: .v1, addresses: .inet(source: src, destination: dst)))
        case 1:
            return (Array("PROXY UNKNOWN\r\n".utf8), ProxyHeader(version: .v1, addresses: .unspecified))
        case 2:
            return (V2.header(command: 0x20, family: 0, block: []), ProxyHeader(version: .v2, addresses: .local))
        default:
            let v6 = Bool.random(using: &rng)
            let width = v6 ? 16 : 4
            let s = (0..<width).map { _ in UInt8.random(in: 0...255, using: &rng) }, d = (0..<width).map { _ in UInt8.random(in: 0...255, using: &rng) }
            var tlvs: [ProxyTLV] = []
            for _ in 0..<Int.random(in: 0...3, using: &rng) {
                tlvs.append(ProxyTLV(type: UInt8.random(in: 0...255, using: &rng),
                                     value: (0..<Int.random(in: 0...40, using: &rng)).map { _ in UInt8.random(in: 0...255, using: &rng) }))
            }
            let block = s + d + V2.port(sport) + V2.port(dport) + tlvs.flatMap { V2.tlv($0.type, $0.value) }
            let src = try! SocketAddress(packedIPAddress: ByteBuffer(bytes: s), port: sport)
            let dst = try! SocketAddress(packedIPAddress: ByteBuffer(bytes: d), port: dport)
            return (V2.header(family: v6 ? 0x21 : 0x11, block: block),
                    ProxyHeader(version: .v2, addresses: .inet(source: src, destination: dst), tlvs: tlvs))
        }
    }
}

/// Collects what the PROXY handler tells the handlers after it.
private final class EventRecorder: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    var events: [ProxyProtocolEvent] = []
    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let e = event as? ProxyProtocolEvent { events.append(e) }
        context.fireUserInboundEventTriggered(event)
    }
}

@Suite struct ProxyProtocolHandlerTests {
    let balancer = address("127.0.0.1", 40001)
    let stranger = address("203.0.113.9", 40002)

    /// A connected channel from `peer`, with the handler trusting 127.0.0.1 only.
    private func channel(peer: SocketAddress?, versions: Set<ProxyProtocolVersion> = [.v1, .v2]) throws -> (EmbeddedChannel, EventRecorder) {
        let recorder = EventRecorder()
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(ProxyProtocolHandler(versions: versions) { $0.ipAddress == "127.0.0.1" })
        try channel.pipeline.syncOperations.addHandler(recorder)
        try channel.connect(to: address("127.0.0.1", 1433)).wait()
        channel.remoteAddress = peer
        return (channel, recorder)
    }

    private func handlerIsGone(_ channel: EmbeddedChannel) -> Bool {
        (try? channel.pipeline.syncOperations.handler(type: ProxyProtocolHandler.self)) == nil
    }

    private func reads(_ channel: EmbeddedChannel) throws -> [UInt8] {
        var out: [UInt8] = []
        while let b = try channel.readInbound(as: ByteBuffer.self) { out += Array(b.readableBytesView) }
        return out
    }

    @Test func trustedPeerHeaderIsReportedAndTheRestPassedOn() throws {
        let (channel, recorder) = try channel(peer: balancer)
        let header = V2.ipv4([192, 0, 2, 10], [10, 0, 0, 5], 51234, 1433, tlvs: V2.tlv(0xEE, [1, 9, 0, 0, 0]))
        try channel.writeInbound(ByteBuffer(bytes: header + tdsPrelogin))
        guard case .received(let h)? = recorder.events.first else {
            Issue.record("no header event: \(recorder.events)")
            return
        }
        #expect(recorder.events.count == 1)
        #expect(h.source == address("192.0.2.10", 51234))
        #expect(h.azurePrivateLinkID == 9)
        #expect(try reads(channel) == tdsPrelogin)
        #expect(handlerIsGone(channel))
        // Later bytes go straight through.
        try channel.writeInbound(ByteBuffer(bytes: [1, 2, 3]))
        #expect(try reads(channel) == [1, 2, 3])
        #expect(channel.isActive)
    }

    @Test func headerSplitAcrossReadsAtEveryOffset() throws {
        let header = Array("PROXY TCP4 198.51.100.7 10.0.0.5 60000 1433\r\n".utf8)
        let stream = header + tdsPrelogin
        for cut in 1..<stream.count {
            let (channel, recorder) = try channel(peer: balancer)
            try channel.writeInbound(ByteBuffer(bytes: stream[..<cut]))
            try channel.writeInbound(ByteBuffer(bytes: stream[cut...]))
            #expect(recorder.events == [.received(ProxyHeader(version: .v1, addresses: .inet(
                source: address("198.51.100.7", 60000), destination: address("10.0.0.5", 1433))))], "cut \(cut)")
            #expect(try reads(channel) == tdsPrelogin, "cut \(cut)")
            #expect(handlerIsGone(channel))
        }
    }

    @Test func localHealthCheckIsReceivedAsLocal() throws {
        let (channel, recorder) = try channel(peer: balancer)
        try channel.writeInbound(ByteBuffer(bytes: V2.header(command: 0x20, family: 0, block: [])))
        #expect(recorder.events == [.received(ProxyHeader(version: .v2, addresses: .local))])
        #expect(try reads(channel) == [])
        #expect(handlerIsGone(channel))
    }

    @Test func trustedPeerWithoutHeaderIsRejectedAndClosed() throws {
        let (channel, recorder) = try channel(peer: balancer)
        try channel.writeInbound(ByteBuffer(bytes: tdsPrelogin))
        #expect(recorder.events == [.rejected(.headerMissing(peer: "\(balancer)"))])
        #expect(try reads(channel) == [])
        #expect(!channel.isActive)
    }

    @Test func trustedPeerWithAVersionTheListenerDoesNotAcceptIsRejected() throws {
        let (channel, recorder) = try channel(peer: balancer, versions: [.v2])
        try channel.writeInbound(ByteBuffer(string: "PROXY UNKNOWN\r\n"))
        #expect(recorder.events == [.rejected(.malformed(peer: "\(balancer)", .versionNotAllowed(.v1)))])
        #expect(!channel.isActive)
    }

    @Test func malformedHeaderIsRejectedWithItsReason() throws {
        let (channel, recorder) = try channel(peer: balancer)
        try channel.writeInbound(ByteBuffer(string: "PROXY TCP4 1.2.3.4 5.6.7.8 99999 1433\r\n"))
        #expect(recorder.events == [.rejected(.malformed(peer: "\(balancer)", .v1Malformed("'99999' is not a port number")))])
        #expect("\(recorder.events)".contains("99999"))
        #expect(!channel.isActive)
        // Nothing more is read from a rejected connection.
        #expect(try reads(channel) == [])
    }

    @Test func untrustedPeerSpeakingTDSPassesThroughUntouched() throws {
        let (channel, recorder) = try channel(peer: stranger)
        try channel.writeInbound(ByteBuffer(bytes: tdsPrelogin))
        #expect(recorder.events == [])
        #expect(try reads(channel) == tdsPrelogin)
        #expect(handlerIsGone(channel))
        #expect(channel.isActive)
    }

    @Test func untrustedPeerSendingAHeaderIsRejected() throws {
        let (channel, recorder) = try channel(peer: stranger)
        // Its first bytes are only a prefix of the signature: nothing is decided, nothing read.
        try channel.writeInbound(ByteBuffer(bytes: Array(V2.signature[..<5])))
        #expect(recorder.events == [])
        #expect(try reads(channel) == [])
        try channel.writeInbound(ByteBuffer(bytes: Array(V2.signature[5...]) + [0x21, 0x11, 0, 12]))
        #expect(recorder.events == [.rejected(.untrustedSourceSentHeader(peer: "\(stranger)", version: .v2))])
        #expect(try reads(channel) == [])
        #expect(!channel.isActive)
    }

    @Test func peerWithoutAnAddressIsUntrusted() throws {
        let (channel, recorder) = try channel(peer: nil)
        try channel.writeInbound(ByteBuffer(string: "PROXY UNKNOWN\r\n"))
        #expect(recorder.events == [.rejected(.untrustedSourceSentHeader(peer: "unknown peer", version: .v1))])
    }

    @Test func closeInTheMiddleOfAHeaderIsTruncation() throws {
        let (channel, recorder) = try channel(peer: balancer)
        try channel.writeInbound(ByteBuffer(bytes: Array(V2.signature) + [0x21]))
        #expect(recorder.events == [])
        try channel.close().wait()
        #expect(recorder.events == [.rejected(.truncated(peer: "\(balancer)", received: 13))])
    }

    @Test func closeBeforeAnyByteIsNoRejection() throws {
        let (channel, recorder) = try channel(peer: balancer)
        try channel.close().wait()
        #expect(recorder.events == [])
    }

    @Test func rejectionMessagesSayWhatHappened() {
        #expect(ProxyProtocolRejection.headerMissing(peer: "[IPv4]127.0.0.1/127.0.0.1:40001").description
            == "[IPv4]127.0.0.1/127.0.0.1:40001 is a trusted PROXY protocol source but its connection did not start with a PROXY header")
        #expect(ProxyProtocolRejection.untrustedSourceSentHeader(peer: "x", version: .v2).description.contains("not a trusted source"))
        #expect(ProxyProtocolRejection.malformed(peer: "x", .v2TooLong(length: 5000, limit: 4096)).description
            == "x: PROXY protocol v2 header of 5000 bytes, more than the 4096 tdsgate reads")
    }
}
