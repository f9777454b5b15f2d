import NIOCore
import Testing
import TDSNIO

@Suite struct TransportFramingTests {
    func buffer(_ bytes: [UInt8]) -> ByteBuffer { ByteBuffer(bytes: bytes) }

    @Test func firstByteDetectsStrict() throws {
        var f = TransportFraming()
        let out = try f.receive(buffer([0x16, 0x03, 0x01, 0x00, 0x05]))
        #expect(out.first == .strictDetected)
        var g = TransportFraming()
        #expect(try g.receive(buffer([0x12, 0x01, 0x00, 0x08, 0, 0, 1, 0])) == [.plainBytes(buffer([0x12, 0x01, 0x00, 0x08, 0, 0, 1, 0]))])
    }

    @Test func handshakeRecordsAreUnwrappedFromPreloginPackets() throws {
        var f = TransportFraming()
        _ = try f.receive(buffer([0x12, 0x01, 0x00, 0x08, 0, 0, 1, 0]))
        f.startHandshakeInPrelogin()
        #expect(f.wrapsOutbound)
        let record: [UInt8] = [0x16, 0x03, 0x03, 0x00, 0x02, 0xAA, 0xBB]
        let packet: [UInt8] = [0x12, 0x01, 0x00, UInt8(8 + record.count), 0, 0, 1, 0] + record
        // Split across reads at every position: the framing must wait for the whole packet.
        for cut in 1..<packet.count {
            var g = f
            var got: [TransportFraming.Inbound] = try g.receive(buffer(Array(packet[..<cut])))
            got += try g.receive(buffer(Array(packet[cut...])))
            #expect(got == [.tlsBytes(buffer(record))])
        }
        // The first raw record ends the handshake framing in both directions.
        _ = try f.receive(buffer([0x17, 0x03, 0x03, 0x00, 0x01, 0x00]))
        #expect(f.mode == .tls)
        #expect(!f.wrapsOutbound)
    }

    @Test func loginOnlyHandsOverToPlaintextAtARecordBoundary() throws {
        var f = TransportFraming()
        _ = try f.receive(buffer([0x12, 0x01, 0x00, 0x08, 0, 0, 1, 0]))
        f.startHandshakeInPrelogin()
        f.loginOnly = true
        let record: [UInt8] = [0x17, 0x03, 0x03, 0x00, 0x02, 0x01, 0x02]
        let plain: [UInt8] = [0x10, 0x01, 0x00, 0x09, 0, 0, 2, 0, 0x55]
        let out = try f.receive(buffer(record + plain))
        #expect(out == [.tlsBytes(buffer(record)), .bypassBytes(buffer(plain))])
        #expect(try f.receive(buffer([0x01, 0x02])) == [.bypassBytes(buffer([0x01, 0x02]))])
    }

    @Test func garbageIsRejected() {
        var f = TransportFraming()
        f.startHandshakeInPrelogin()
        #expect(throws: TransportError.self) { _ = try f.receive(buffer([0x99, 0, 0, 0, 0, 0])) }
        var g = TransportFraming()
        g.startHandshakeInPrelogin()
        #expect(throws: TransportError.self) { _ = try g.receive(buffer([0x12, 0x01, 0x00, 0x04, 0, 0, 0, 0])) }
    }
}
