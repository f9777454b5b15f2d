import NIOCore
import Testing
@testable import TDS

@Suite struct PacketTests {
    @Test func headerRoundTripIsBigEndian() throws {
        let h = TDSPacketHeader(type: .login7, status: [.endOfMessage, .resetConnection], length: 0x1234, spid: 0x5678,
                                packetID: 9, window: 0)
        let b = encode { h.write(into: &$0) }
        #expect(b.bytes == [0x10, 0x09, 0x12, 0x34, 0x56, 0x78, 0x09, 0x00])
        #expect(try TDSPacketHeader.peek(from: b) == h)
        #expect(b.readableBytes == 8, "peek must not consume")
    }

    @Test func peekNeedsEightBytesAndRejectsShortLength() throws {
        #expect(try TDSPacketHeader.peek(from: ByteBuffer(bytes: [0x12, 0x01, 0x00, 0x08, 0, 0, 1])) == nil)
        #expect(throws: TDSDecodingError.self) {
            try TDSPacketHeader.peek(from: ByteBuffer(bytes: [0x12, 0x01, 0x00, 0x07, 0, 0, 1, 0]))
        }
    }

    @Test func readWaitsForWholePacketAndEnforcesMaximum() throws {
        var b = ByteBuffer(bytes: [0x04, 0x01, 0x00, 0x0B, 0, 0, 1, 0, 0xAA, 0xBB])
        #expect(try TDSPacket.read(from: &b, maxPacketSize: 4096) == nil)
        #expect(b.readableBytes == 10)
        b.writeBytes([0xCC, 0x04])
        let p = try #require(try TDSPacket.read(from: &b, maxPacketSize: 4096))
        #expect(p.payload.bytes == [0xAA, 0xBB, 0xCC])
        #expect(p.header.type == .tabularResult)
        #expect(b.bytes == [0x04])
        var big = ByteBuffer(bytes: [0x04, 0x01, 0x10, 0x01, 0, 0, 1, 0])
        #expect(throws: TDSDecodingError.self) { try TDSPacket.read(from: &big, maxPacketSize: 4096) }
    }

    private func packets(of buffer: ByteBuffer) throws -> [TDSPacket] {
        var b = buffer
        var out: [TDSPacket] = []
        while let p = try TDSPacket.read(from: &b, maxPacketSize: 65535) { out.append(p) }
        #expect(b.readableBytes == 0)
        return out
    }

    @Test func splitsIntoPacketsWithEOMOnLastAndResetOnFirst() throws {
        let payload = ByteBuffer(bytes: (0..<25).map { UInt8($0) })
        let m = TDSMessage(type: .sqlBatch, status: [.resetConnection], payload: payload)
        let out = encode { m.writePackets(into: &$0, packetSize: 18, spid: 7, firstPacketID: 1) }
        let ps = try packets(of: out)
        #expect(ps.map { $0.payload.readableBytes } == [10, 10, 5])
        #expect(ps.map { $0.header.status } == [[.resetConnection], [], [.endOfMessage]])
        #expect(ps.map { $0.header.packetID } == [1, 2, 3])
        #expect(ps.allSatisfy { $0.header.spid == 7 && $0.header.type == .sqlBatch })
        #expect(ps.flatMap { $0.payload.bytes } == payload.bytes)
    }

    @Test func exactMultipleDoesNotAddEmptyPacket() throws {
        let m = TDSMessage(type: .rpc, payload: ByteBuffer(bytes: [UInt8](repeating: 1, count: 20)))
        let ps = try packets(of: encode { m.writePackets(into: &$0, packetSize: 18) })
        #expect(ps.map { $0.payload.readableBytes } == [10, 10])
        #expect(ps.last?.header.status == .endOfMessage)
    }

    @Test func emptyPayloadIsOneHeaderOnlyPacket() throws {
        let m = TDSMessage(type: .attention, payload: ByteBuffer())
        let out = encode { m.writePackets(into: &$0, packetSize: 4096) }
        #expect(out.bytes == [0x06, 0x01, 0x00, 0x08, 0x00, 0x00, 0x01, 0x00])
    }

    @Test func packetIDsWrapFrom255ToZero() throws {
        let m = TDSMessage(type: .bulkLoad, payload: ByteBuffer(bytes: [UInt8](repeating: 7, count: 4)))
        let ps = try packets(of: encode { m.writePackets(into: &$0, packetSize: 9, firstPacketID: 254) })
        #expect(ps.map { $0.header.packetID } == [254, 255, 0, 1])
    }

    @Test func absurdPacketSizesAreClamped() throws {
        let m = TDSMessage(type: .sqlBatch, payload: ByteBuffer(bytes: [1, 2, 3]))
        let ps = try packets(of: encode { m.writePackets(into: &$0, packetSize: 0) })
        #expect(ps.count == 3)
        let big = TDSMessage(type: .sqlBatch, payload: ByteBuffer(bytes: [UInt8](repeating: 0, count: 70000)))
        let bps = try packets(of: encode { big.writePackets(into: &$0, packetSize: 1 << 20) })
        #expect(bps.map { Int($0.header.length) }.max() == 65535)
    }

    @Test func assemblerJoinsPacketsAndKeepsStatus() throws {
        let payload = ByteBuffer(bytes: (0..<100).map { UInt8($0) })
        let m = TDSMessage(type: .login7, status: [.resetConnectionSkipTransaction], payload: payload)
        let ps = try packets(of: encode { m.writePackets(into: &$0, packetSize: 40) })
        var a = TDSMessageAssembler(maxMessageSize: 1000)
        var result: TDSMessage?
        for (i, p) in ps.enumerated() {
            result = try a.append(p)
            #expect((result == nil) == (i < ps.count - 1))
            #expect(a.isAssembling == (i < ps.count - 1))
        }
        let r = try #require(result)
        #expect(r.type == .login7)
        #expect(r.status == [.resetConnectionSkipTransaction])
        #expect(r.payload.bytes == payload.bytes)
    }

    @Test func assemblerCapsSize() throws {
        let m = TDSMessage(type: .sqlBatch, payload: ByteBuffer(bytes: [UInt8](repeating: 0, count: 100)))
        let ps = try packets(of: encode { m.writePackets(into: &$0, packetSize: 58) })
        var a = TDSMessageAssembler(maxMessageSize: 99)
        _ = try a.append(ps[0])
        #expect(throws: TDSDecodingError.self) { try a.append(ps[1]) }
        var exact = TDSMessageAssembler(maxMessageSize: 100)
        _ = try exact.append(ps[0])
        #expect(try exact.append(ps[1]) != nil)
    }

    @Test func assemblerRejectsTypeChangeMidMessage() throws {
        var a = TDSMessageAssembler(maxMessageSize: 1000)
        let first = TDSPacket(header: TDSPacketHeader(type: .sqlBatch, status: []), payload: ByteBuffer(bytes: [1]))
        let second = TDSPacket(header: TDSPacketHeader(type: .rpc, status: .endOfMessage), payload: ByteBuffer(bytes: [2]))
        #expect(try a.append(first) == nil)
        #expect(throws: TDSDecodingError.self) { try a.append(second) }
        #expect(!a.isAssembling)
    }

    @Test func ignoreFlagTravelsOnLastPacket() throws {
        let m = TDSMessage(type: .sqlBatch, status: [.ignore], payload: ByteBuffer(bytes: [1, 2, 3, 4]))
        let ps = try packets(of: encode { m.writePackets(into: &$0, packetSize: 10) })
        #expect(ps.first?.header.status == [])
        #expect(ps.last?.header.status == [.endOfMessage, .ignore])
        var a = TDSMessageAssembler(maxMessageSize: 100)
        var r: TDSMessage?
        for p in ps { r = try a.append(p) }
        #expect(r?.status == [.ignore])
    }
}
