import NIOCore
import NIOPosix
import Synchronization
import Testing
import TDS
import TDSNIO
@testable import AzureEmulator

/// Collects every byte a raw test connection receives.
private final class Collector: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    let bytes = Mutex<ByteBuffer>(ByteBuffer())
    let closed = Mutex(false)

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var b = unwrapInboundIn(data)
        bytes.withLock { _ = $0.writeBuffer(&b) }
    }

    func channelInactive(context: ChannelHandlerContext) {
        closed.withLock { $0 = true }
        context.fireChannelInactive()
    }
}

/// A bare MARS client: sends SMP frames and waits for what comes back.
private final class RawMARSClient {
    let channel: any Channel
    let collector: Collector
    var seq: [UInt16: UInt32] = [:]
    /// ACK frames the node sent (window updates), set aside by `nextFrame`.
    var acks: [SMPHeader] = []

    init(channel: any Channel, collector: Collector) {
        self.channel = channel
        self.collector = collector
    }

    func send(_ b: ByteBuffer) async throws { try await channel.writeAndFlush(b) }

    /// Waits until `take` finds something in the received bytes (it consumes what it uses).
    func waitFor<T: Sendable>(_ what: String, timeout: Duration = .seconds(10), _ take: (inout ByteBuffer) throws -> T?) async throws -> T {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let r = try collector.bytes.withLock({ b -> T? in
                var copy = b
                guard let r = try take(&copy) else { return nil }
                copy.discardReadBytes()
                b = copy
                return r
            }) { return r }
            try await Task.sleep(for: .milliseconds(5))
        }
        throw EmulatorConfigError("timed out waiting for \(what)")
    }

    /// The next DATA or FIN frame (ACKs are set aside).
    func nextFrame() async throws -> SMPFrame {
        while true {
            let f = try await self.waitFor("an SMP frame") { try SMPFrame.read(from: &$0) }
            if f.header.flags == .ack { acks.append(f.header); continue }
            return f
        }
    }

    /// Frames that arrived so far, without waiting.
    func framesNow() throws -> [SMPFrame] {
        try collector.bytes.withLock { b in
            var out: [SMPFrame] = []
            while let f = try SMPFrame.read(from: &b) { if f.header.flags != .ack { out.append(f) } }
            b.discardReadBytes()
            return out
        }
    }

    func data(_ sid: UInt16, _ message: TDSMessage, window: UInt32) -> ByteBuffer {
        var packets = ByteBuffer()
        message.writePackets(into: &packets, packetSize: 4096)
        var out = ByteBuffer()
        while let p = try? TDSPacket.read(from: &packets, maxPacketSize: 4096) {
            let n = (seq[sid] ?? 0) + 1
            seq[sid] = n
            var payload = ByteBuffer()
            p.write(into: &payload)
            SMPFrame(header: SMPHeader(flags: .data, sid: sid, seqnum: n, window: window), payload: payload).write(into: &out)
        }
        return out
    }

    static func control(_ flags: SMPFlags, _ sid: UInt16, seq: UInt32 = 0, window: UInt32) -> ByteBuffer {
        var b = ByteBuffer()
        SMPHeader(flags: flags, sid: sid, seqnum: seq, window: window).write(into: &b)
        return b
    }
}

private func batch(_ text: String) -> TDSMessage {
    var b = ByteBuffer()
    SQLBatch(text: text).write(into: &b)
    return TDSMessage(type: .sqlBatch, payload: b)
}

/// Whether the frame's TDS packet carries EOM.
private func endsMessage(_ f: SMPFrame) -> Bool {
    (f.payload.getInteger(at: f.payload.readerIndex + 1, as: UInt8.self) ?? 0) & TDSPacketStatus.endOfMessage.rawValue != 0
}

/// Token stream of a reply made of the DATA frames' TDS packets; nil until EOM.
private func reply(_ frames: [SMPFrame]) throws -> (tokens: [TDSToken], complete: Bool) {
    var stream = ByteBuffer()
    var complete = false
    for f in frames {
        var payload = f.payload
        while let p = try TDSPacket.read(from: &payload, maxPacketSize: 65_536) {
            var body = p.payload
            stream.writeBuffer(&body)
            if p.header.status.contains(.endOfMessage) { complete = true }
        }
    }
    guard complete else { return ([], false) }
    var parser = TDSTokenParser()
    return (try parser.parse(&stream), true)
}

@Suite(.serialized) struct MARSNodeTests {
    @Test func twoSessionsInterleaveAndShareTheTransaction() async throws {
        let d = try demoDeployment()
        let (server, node) = d.node(named: "plain-primary")!
        let env = NodeEnvironment(deployment: d, server: server, node: node, tlsAvailable: false,
                                  tlsHost: "localhost", verifier: FakeVerifier(), log: { _ in })
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let listener = try await ServerBootstrap(group: group)
            .childChannelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    let ops = ch.pipeline.syncOperations
                    try ops.addHandler(TDSServerTransportHandler(tls: nil))
                    try ops.addHandler(TDSMessageFramingHandler(maxMessageSize: 4 * 1024 * 1024))
                    try ops.addHandler(NodeChannelHandler(session: NodeSession(env: env, spid: 61, clientAddress: "test")) {})
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        let collector = Collector()
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { ch in ch.eventLoop.makeCompletedFuture { try ch.pipeline.syncOperations.addHandler(collector) } }
            .connect(host: "127.0.0.1", port: listener.localAddress!.port!).get()
        let client = RawMARSClient(channel: channel, collector: collector)

        // PRELOGIN asks MARS: the node answers MARS=1 in plain TDS.
        var pre = preloginMessage(.notSupported)
        var p = try PreloginMessage(parsing: pre.payload)
        p.mars = true
        pre.payload = ByteBuffer()
        p.write(into: &pre.payload)
        var preBytes = ByteBuffer()
        pre.writePackets(into: &preBytes, packetSize: 4096)
        try await client.send(preBytes)
        let answer = try await client.waitFor("PRELOGIN reply") { try TDSPacket.read(from: &$0, maxPacketSize: 4096) }
        #expect(try PreloginMessage(parsing: answer.payload).mars == true)

        // LOGIN7 and its reply in plain TDS (drivers start SMP once logged in).
        var loginBytes = ByteBuffer()
        loginMessage().writePackets(into: &loginBytes, packetSize: 4096)
        try await client.send(loginBytes)
        let loginReply = try await client.waitFor("login reply") { try TDSPacket.read(from: &$0, maxPacketSize: 4096) }
        var loginTokens = loginReply.payload
        var parser = TDSTokenParser()
        #expect(try parser.parse(&loginTokens).contains { if case .loginAck = $0 { return true } else { return false } })

        // SID 0: SYN, then a request in DATA (the first DATA of SID 0 is number 1).
        try await client.send(RawMARSClient.control(.syn, 0, window: 4))
        try await client.send(client.data(0, batch("SELECT 1 AS one"), window: 4))
        let one = try await client.nextFrame()
        #expect(one.header.flags == .data && one.header.sid == 0 && one.header.seqnum == 1)
        #expect(try reply([one]).tokens.contains { if case .row(let v) = $0 { return v == [.int(1)] } else { return false } })

        // SID 1 with a window of 2 asks for a large result and then does not read it.
        try await client.send(RawMARSClient.control(.syn, 1, window: 2))
        try await client.send(client.data(1, batch("SELECT * FROM tdsgate.rows(5000)"), window: 2))
        var sid1: [SMPFrame] = []
        while sid1.count < 2 { sid1.append(try await client.nextFrame()) }
        #expect(sid1.map(\.header.sid) == [1, 1])
        #expect(sid1.map(\.header.seqnum) == [1, 2])

        // SID 0 still works while SID 1 is blocked, and its transaction is the connection's.
        try await client.send(client.data(0, batch("BEGIN TRANSACTION"), window: 5))
        let begin = try await client.nextFrame()
        #expect(begin.header.sid == 0 && begin.header.seqnum == 2)
        #expect(try reply([begin]).complete)
        try await Task.sleep(for: .milliseconds(50))
        #expect(try client.framesNow().isEmpty, "SID 1 must not exceed its window")

        // Open SID 1's window step by step and read the whole result.
        var window: UInt32 = 2
        while true {
            window += 8
            try await client.send(RawMARSClient.control(.ack, 1, seq: 1, window: window))
            var got = 0
            while got < 8 {
                let f = try await client.nextFrame()
                #expect(f.header.sid == 1 && f.header.seqnum == UInt32(sid1.count + 1))
                sid1.append(f)
                got += 1
                if endsMessage(f) { break }
            }
            if endsMessage(sid1.last!) { break }
        }
        let rows = try reply(sid1).tokens.filter { if case .row = $0 { return true } else { return false } }
        #expect(rows.count == 5000)
        #expect(SMPSerial.lessOrEqual(sid1.last!.header.seqnum, window))

        // The transaction begun on SID 0 is visible on SID 1 (shared per connection).
        try await client.send(client.data(1, batch("SELECT @@TRANCOUNT AS n"), window: window + 4))
        let tc = try await client.nextFrame()
        #expect(tc.header.sid == 1)
        #expect(try reply([tc]).tokens.contains { if case .row(let v) = $0 { return v == [.int(1)] } else { return false } })

        // FIN on SID 1 is answered with FIN.
        try await client.send(RawMARSClient.control(.fin, 1, seq: 2, window: window + 4))
        let fin = try await client.nextFrame()
        #expect(fin.header.flags == .fin && fin.header.sid == 1)

        try await channel.close()
        try await listener.close()
        try await group.shutdownGracefully()
    }
}
