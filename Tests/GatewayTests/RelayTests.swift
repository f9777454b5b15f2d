import Logging
import NIOCore
import NIOEmbedded
import Testing
import TDS
@testable import Gateway

/// `RelayState` as a pure value, then the relay handlers on two `EmbeddedChannel`s that share
/// one event loop (as both legs of a real session do).
@Suite struct RelayStateTests {
    typealias Unit = RelayFraming.Unit

    @Test func requestsInFlightFollowMessagesAndMARSSessions() {
        var s = RelayState()
        s.unit(Unit(sid: 0, endsMessage: false), from: .client)
        #expect(s.inFlight.isEmpty, "a request is in flight from its last packet on")
        s.unit(Unit(sid: 0, endsMessage: true), from: .client)
        s.unit(Unit(sid: 3, endsMessage: true), from: .client)
        #expect(s.inFlight == [0, 3])
        s.unit(Unit(sid: 3, endsMessage: true), from: .server)
        #expect(s.inFlight == [0])
        s.unit(Unit(sid: 0, endsSession: true), from: .client)
        #expect(s.inFlight.isEmpty)
    }

    @Test func closeAfterReplyWaitsForTheReplies() {
        var s = RelayState()
        s.unit(Unit(endsMessage: true), from: .client)
        #expect(s.requestClose(.demoted, afterCurrentRequest: true) == nil)
        #expect(s.readComplete(from: .client).close == nil)
        #expect(s.readComplete(from: .server).close == nil, "the reply has not ended yet")
        s.unit(Unit(endsMessage: true), from: .server)
        #expect(s.readComplete(from: .client).close == nil, "only the server leg's read ends a reply")
        #expect(s.readComplete(from: .server).close == .demoted)
    }

    @Test func closeNowWhenNothingIsInFlightOrWhenAsked() {
        var idle = RelayState()
        #expect(idle.requestClose(.demoted, afterCurrentRequest: true) == .demoted)
        var busy = RelayState()
        busy.unit(Unit(endsMessage: true), from: .client)
        #expect(busy.requestClose(.shutdown, afterCurrentRequest: false) == .shutdown)
    }

    @Test func theFirstEndReasonWins() {
        var s = RelayState()
        let first = s.end(.backendClosed)
        let second = s.end(.clientClosed)
        #expect(first && !second)
        #expect(s.endReason == .backendClosed)
        #expect(s.requestClose(.demoted, afterCurrentRequest: false) == nil, "an ended session is not closed again")
    }

    @Test func flushesAreOwedToTheOtherLegAndAttentionsGoAtOnce() {
        var s = RelayState()
        let urgent = s.forwarded(from: .client, urgent: false)
        #expect(!urgent)
        #expect(s.readComplete(from: .server).flushOther == false, "the server leg owes nothing to the client")
        #expect(s.readComplete(from: .client).flushOther == true)
        #expect(s.readComplete(from: .client).flushOther == false, "flushed once")
        _ = s.forwarded(from: .client, urgent: false)
        let flushNow = s.forwarded(from: .client, urgent: true)
        #expect(flushNow, "an attention is flushed at once")
        #expect(s.readComplete(from: .client).flushOther == false, "and with it what was waiting")
    }
}

@Suite struct RelayHandlerTests {
    struct Pair {
        let loop = EmbeddedEventLoop()
        let record: SessionRecord
        let session: RelaySession
        let client: EmbeddedChannel
        let server: EmbeddedChannel

        init(framing: RelayFraming = .tds) throws {
            record = SessionRecord(id: 7, listener: "main", clientAddress: "192.0.2.1", clientPort: 50000, audit: nil,
                                   metrics: nil, logger: Logger(label: "test"))
            session = RelaySession(framing: framing, record: record)
            client = EmbeddedChannel(loop: loop)
            server = EmbeddedChannel(loop: loop)
            try client.pipeline.syncOperations.addHandler(RelayHandler(reads: .client, session: session))
            try server.pipeline.syncOperations.addHandler(RelayHandler(reads: .server, session: session))
            _ = try client.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            _ = try server.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 2)).wait()
        }

        /// Everything written to `channel` so far, as one buffer.
        func written(_ channel: EmbeddedChannel) throws -> ByteBuffer {
            var all = ByteBuffer()
            while var b = try channel.readOutbound(as: ByteBuffer.self) { all.writeBuffer(&b) }
            return all
        }
    }

    func packet(_ type: TDSPacketType, eom: Bool = true, payload: [UInt8]) -> ByteBuffer {
        var b = ByteBuffer()
        TDSPacketHeader(type: type, status: eom ? .endOfMessage : [], length: UInt16(8 + payload.count)).write(into: &b)
        b.writeBytes(payload)
        return b
    }

    @Test func unitsSplitAtEveryOffsetArriveWholeAndInOrder() throws {
        var stream = packet(.sqlBatch, eom: false, payload: Array(repeating: 0x41, count: 20))
        var second = packet(.sqlBatch, payload: Array(repeating: 0x42, count: 13))
        stream.writeBuffer(&second)
        let whole = Array(stream.readableBytesView)
        for cut in 1..<whole.count {
            let p = try Pair()
            try p.client.writeInbound(ByteBuffer(bytes: whole[..<cut]))
            try p.client.writeInbound(ByteBuffer(bytes: whole[cut...]))
            p.client.pipeline.fireChannelReadComplete()
            let out = try p.written(p.server)
            #expect(Array(out.readableBytesView) == whole, "cut at \(cut)")
            #expect(p.record.bytesClientToServer == whole.count)
            #expect(p.session.state.inFlight == [0], "the batch's last packet put a request in flight")
        }
    }

    @Test func writesWaitForReadCompleteButAttentionsAreFlushedAtOnce() throws {
        let p = try Pair()
        p.client.pipeline.fireChannelRead(packet(.sqlBatch, payload: [1, 2, 3]))
        #expect(try p.written(p.server).readableBytes == 0, "held until the read completes")
        p.client.pipeline.fireChannelReadComplete()
        #expect(try p.written(p.server).readableBytes == 11)
        p.client.pipeline.fireChannelRead(packet(.attention, payload: []))
        #expect(try p.written(p.server).readableBytes == 8, "an attention does not wait for read-complete")
    }

    /// Sees the `read()` calls that reach a channel (autoRead's resume).
    final class ReadRecorder: ChannelOutboundHandler {
        typealias OutboundIn = ByteBuffer
        var reads = 0
        func read(context: ChannelHandlerContext) {
            reads += 1
            context.read()
        }
    }

    @Test func aSlowReaderStopsTheOtherLegAndResumesItWhenWritable() throws {
        let p = try Pair()
        let recorder = ReadRecorder()
        try p.server.pipeline.syncOperations.addHandler(recorder, position: .first)
        p.client.isWritable = false
        p.client.pipeline.fireChannelWritabilityChanged()
        #expect(recorder.reads == 0)
        p.client.isWritable = true
        p.client.pipeline.fireChannelWritabilityChanged()
        #expect(recorder.reads == 1, "reading the server leg resumes")
    }

    @Test func aDemotedPrimaryClosesTheSessionAfterTheReplyInFlight() throws {
        let p = try Pair()
        try p.client.writeInbound(packet(.sqlBatch, payload: [1]))
        p.client.pipeline.fireChannelReadComplete()
        p.session.requestClose(.demoted, afterCurrentRequest: true)
        #expect(p.client.isActive && p.server.isActive, "the request in flight gets its reply first")
        try p.server.writeInbound(packet(.tabularResult, eom: false, payload: [9]))
        p.server.pipeline.fireChannelReadComplete()
        #expect(p.client.isActive, "the reply has not ended")
        try p.server.writeInbound(packet(.tabularResult, payload: [9]))
        p.server.pipeline.fireChannelReadComplete()
        p.loop.run()
        #expect(!p.client.isActive && !p.server.isActive)
        #expect(try p.written(p.client).readableBytes == 18, "the whole reply reached the client before the close")
        #expect(p.record.reason == .demoted)
    }

    @Test func eitherLegClosingEndsTheSessionWithItsReason() throws {
        let p = try Pair()
        p.server.pipeline.fireChannelInactive()
        p.loop.run()
        #expect(p.record.reason == .backendClosed)
        #expect(!p.client.isActive)
    }

    @Test func aCloseRequestOnTheClientChannelIsObeyed() throws {
        let p = try Pair()
        p.client.pipeline.fireUserInboundEventTriggered(SessionCloseRequest(reason: .shutdown))
        p.loop.run()
        #expect(p.record.reason == .shutdown)
        #expect(!p.client.isActive && !p.server.isActive)
    }

    @Test func bytesThatAreNotPacketsEndTheSession() throws {
        let p = try Pair()
        // A length below the header size is not a TDS packet.
        try p.client.writeInbound(ByteBuffer(bytes: [0x01, 0x01, 0x00, 0x03, 0, 0, 0, 0]))
        p.loop.run()
        #expect(p.record.reason == .error("client sent bytes that are not a TDS packet"))
        #expect(!p.server.isActive)
    }
}
