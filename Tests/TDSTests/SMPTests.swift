import NIOCore
import Testing
@testable import TDS

@Suite struct SMPCodecTests {
    @Test func headerRoundTripIsLittleEndian() throws {
        let h = SMPHeader(flags: .data, sid: 0x0102, length: 20, seqnum: 0x0A0B0C0D, window: 0xFFFF_FFFE)
        var b = ByteBuffer()
        h.write(into: &b)
        #expect(b.readableBytes == 16)
        #expect(Array(b.readableBytesView) == [0x53, 0x08, 0x02, 0x01, 20, 0, 0, 0, 0x0D, 0x0C, 0x0B, 0x0A, 0xFE, 0xFF, 0xFF, 0xFF])
        b.writeBytes([1, 2, 3, 4])
        #expect(try SMPHeader.peek(from: b) == h)
        let f = try #require(try SMPFrame.read(from: &b))
        #expect(f.header == h)
        #expect(Array(f.payload.readableBytesView) == [1, 2, 3, 4])
        #expect(b.readableBytes == 0)
    }

    @Test func frameWriteFixesLengthAndPartialFramesWait() throws {
        var out = ByteBuffer()
        SMPFrame(header: SMPHeader(flags: .data, sid: 3, seqnum: 1, window: 4), payload: ByteBuffer(bytes: [9, 9, 9])).write(into: &out)
        #expect(out.readableBytes == 19)
        var partial = out.getSlice(at: out.readerIndex, length: 18)!
        #expect(try SMPFrame.read(from: &partial) == nil)
        #expect(partial.readableBytes == 18)
        #expect(try SMPFrame.wholeLength(in: out) == 19)
        var few = ByteBuffer(bytes: [0x53, 0x08])
        #expect(try SMPFrame.read(from: &few) == nil)
    }

    @Test func badHeadersThrowTypedErrors() {
        func bytes(smid: UInt8 = 0x53, flags: UInt8 = 0x08, length: UInt32 = 16) -> ByteBuffer {
            var b = ByteBuffer(bytes: [smid, flags, 0, 0])
            b.writeInteger(length, endianness: .little)
            b.writeBytes([UInt8](repeating: 0, count: 8))
            return b
        }
        #expect(throws: TDSDecodingError.self) { try SMPHeader.peek(from: bytes(smid: 0x12)) }
        #expect(throws: TDSDecodingError.self) { try SMPHeader.peek(from: bytes(flags: 0x06)) }
        #expect(throws: TDSDecodingError.self) { try SMPHeader.peek(from: bytes(flags: 0)) }
        #expect(throws: TDSDecodingError.self) { try SMPHeader.peek(from: bytes(length: 15)) }
        #expect(throws: TDSDecodingError.self) { try SMPHeader.peek(from: bytes(length: 0xFFFF_FFFF)) }
        #expect(throws: TDSDecodingError.self) { try SMPHeader.peek(from: bytes(flags: 0x02, length: 17)) }
        #expect(throws: TDSDecodingError.self) { try SMPHeader.peek(from: bytes(length: 100), maxLength: 64) }
    }

    /// Every truncation and thousands of seeded corruptions: parse or throw, never trap.
    @Test func fuzzNeverTraps() {
        var stream = ByteBuffer()
        SMPFrame(header: SMPHeader(flags: .syn, sid: 0, seqnum: 0, window: 4)).write(into: &stream)
        SMPFrame(header: SMPHeader(flags: .data, sid: 0, seqnum: 1, window: 4), payload: ByteBuffer(bytes: Array(0..<40))).write(into: &stream)
        SMPFrame(header: SMPHeader(flags: .ack, sid: 1, seqnum: 7, window: 11)).write(into: &stream)
        SMPFrame(header: SMPHeader(flags: .fin, sid: 1, seqnum: 7, window: 11)).write(into: &stream)
        let original = Array(stream.readableBytesView)
        var rng = SplitMix64(seed: 0x5350)
        var rejected = 0
        for i in 0..<4000 {
            var bytes = original
            if i < original.count {
                bytes = Array(original.prefix(i))
            } else {
                for _ in 0..<(1 + Int(rng.next() % 4)) {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            }
            var b = ByteBuffer(bytes: bytes)
            var connection = SMPConnection(role: .server)
            do {
                while let f = try SMPFrame.read(from: &b, maxLength: 4096) {
                    _ = try connection.receive(f.header, payload: f.payload)
                    _ = connection.consumed(sid: f.header.sid)
                }
            } catch is TDSDecodingError {
                rejected += 1
            } catch is SMPProtocolError {
                rejected += 1
            } catch {
                Issue.record("foreign error \(error)")
            }
        }
        #expect(rejected > 100)
    }
}

@Suite struct SMPSessionTests {
    @Test func serverWindowsAndAcks() throws {
        var s = SMPConnection(role: .server, receiveWindow: 4)
        let syn = try s.receive(SMPHeader(flags: .syn, sid: 0, seqnum: 0, window: 2))
        #expect(syn == [.opened(sid: 0)])
        // The peer announced window 2: two DATA packets, then closed.
        let first = s.nextData(sid: 0, payloadLength: 10)
        let h1 = try #require(first)
        #expect(h1.seqnum == 1 && h1.window == 4 && h1.length == 26)
        let second = s.nextData(sid: 0, payloadLength: 10)
        #expect(second?.seqnum == 2)
        let third = s.nextData(sid: 0, payloadLength: 10)
        #expect(third == nil)
        #expect(s.session(0)?.sendCredit == 0)
        // An ACK opens it again.
        let opened = try s.receive(SMPHeader(flags: .ack, sid: 0, seqnum: 0, window: 6))
        #expect(opened == [.windowOpened(sid: 0)])
        #expect(s.session(0)?.sendCredit == 4)
        // Receiving: the client may send up to 4 before hearing from us.
        var acks: [SMPHeader] = []
        for n in UInt32(1)...4 {
            let ev = try s.receive(SMPHeader(flags: .data, sid: 0, length: 17, seqnum: n, window: 6), payload: ByteBuffer(bytes: [1]))
            #expect(ev.count == 1)
            if let a = s.consumed(sid: 0) { acks.append(a) }
        }
        // Half a window freed -> ACK; windows 6 then 8.
        #expect(acks.map(\.window) == [6, 8])
        #expect(acks.allSatisfy { $0.flags == .ack && $0.seqnum == 2 })
        // Beyond the announced window or out of order: typed errors.
        #expect(throws: SMPProtocolError.beyondWindow(sid: 0, seqnum: 9, window: 8)) {
            var t = s
            for n in UInt32(5)...9 { _ = try t.receive(SMPHeader(flags: .data, sid: 0, seqnum: n, window: 6)) }
        }
        #expect(throws: SMPProtocolError.outOfOrder(sid: 0, expected: 5, got: 6)) {
            _ = try s.receive(SMPHeader(flags: .data, sid: 0, seqnum: 6, window: 6))
        }
        #expect(throws: SMPProtocolError.unknownSession(sid: 9, flags: .data)) {
            _ = try s.receive(SMPHeader(flags: .data, sid: 9, seqnum: 1, window: 6))
        }
        #expect(throws: SMPProtocolError.duplicateSyn(sid: 0)) {
            _ = try s.receive(SMPHeader(flags: .syn, sid: 0, seqnum: 0, window: 4))
        }
        let fin = try s.receive(SMPHeader(flags: .fin, sid: 0, seqnum: 4, window: 6))
        #expect(fin == [.closed(sid: 0)])
        let ourFin = s.fin(sid: 0)
        #expect(ourFin?.flags == .fin)
        let again = s.fin(sid: 0)
        #expect(again == nil)
    }

    @Test func clientOpensAndSequenceNumbersWrap() throws {
        var c = SMPConnection(role: .client, receiveWindow: 4)
        let syn = c.open(sid: 0)
        #expect(syn.flags == .syn && syn.window == 4 && syn.seqnum == 0)
        #expect(throws: SMPProtocolError.synFromServer(sid: 1)) {
            _ = try c.receive(SMPHeader(flags: .syn, sid: 1, seqnum: 0, window: 4))
        }
        // Near the wrap: serial arithmetic keeps working.
        #expect(SMPSerial.lessOrEqual(0xFFFF_FFFF, 2))
        #expect(!SMPSerial.lessOrEqual(2, 0xFFFF_FFFF))
        for n in UInt32(1)...4 {
            let h = c.nextData(sid: 0, payloadLength: 0)
            #expect(h?.seqnum == n)
        }
        let closed = c.nextData(sid: 0, payloadLength: 0)
        #expect(closed == nil)
    }

    @Test func sid0TranslationBetweenLegs() {
        // Client leg: tdsgate received 1 (LOGIN7) and sent 3 (SSPI, SSPI, reply);
        // backend leg: tdsgate sent 2 (a longer LOGIN7) and received 1 (reply).
        let t = SMPSequenceTranslation(clientReceived: 1, clientSent: 3, serverSent: 2, serverReceived: 1)
        #expect(t.up == 1 && t.down == 2)
        // The client's next request (its DATA 2) is the server's DATA 3; the client's window
        // 7 (client numbering of replies) is the server's 5.
        let up = t.toServer(SMPHeader(flags: .data, sid: 0, seqnum: 2, window: 7))
        #expect(up.seqnum == 3 && up.window == 5)
        // The server's reply DATA 2 is the client's 4; the server's window 7 is the client's 6.
        let down = t.toClient(SMPHeader(flags: .data, sid: 0, seqnum: 2, window: 7))
        #expect(down.seqnum == 4 && down.window == 6)
        // Wrapping deltas.
        let w = SMPSequenceTranslation(clientReceived: 5, clientSent: 1, serverSent: 1, serverReceived: 5)
        #expect(w.toServer(SMPHeader(flags: .ack, sid: 0, seqnum: 6, window: 3)).seqnum == 2)
        #expect(w.toClient(SMPHeader(flags: .data, sid: 0, seqnum: 6, window: 3)).seqnum == 2)
        // A server window that admits exactly the translated client packet admits it in the
        // client's numbering too.
        let sent = t.toServer(SMPHeader(flags: .data, sid: 0, seqnum: 5, window: 0))
        #expect(t.toClient(SMPHeader(flags: .ack, sid: 0, seqnum: 0, window: sent.seqnum)).window == 5)
        #expect(SMPSequenceTranslation(clientReceived: 1, clientSent: 1, serverSent: 1, serverReceived: 1).isIdentity)
    }

    @Test func rewriteInPlace() throws {
        var b = ByteBuffer()
        SMPFrame(header: SMPHeader(flags: .data, sid: 0, seqnum: 1, window: 4), payload: ByteBuffer(bytes: [7])).write(into: &b)
        SMPHeader.rewrite(&b, seqnum: 9, window: 12)
        let h = try #require(try SMPHeader.peek(from: b))
        #expect(h.seqnum == 9 && h.window == 12 && h.length == 17)
    }
}
