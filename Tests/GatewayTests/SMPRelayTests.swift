import NIOCore
import Testing
import TDS
@testable import Gateway

@Suite struct SMPRelayTests {
    @Test func dataPayloadScan() {
        func frame(_ packets: [(TDSPacketType, TDSPacketStatus)]) -> ByteBuffer {
            var payload = ByteBuffer()
            for (type, status) in packets {
                TDSPacketHeader(type: type, status: status, length: 9).write(into: &payload)
                payload.writeInteger(UInt8(0))
            }
            var out = ByteBuffer()
            SMPFrame(header: SMPHeader(flags: .data, sid: 2, seqnum: 1, window: 4), payload: payload).write(into: &out)
            return out
        }
        func scan(_ packets: [(TDSPacketType, TDSPacketStatus)]) -> [Bool] {
            let r = RelayFraming.scanPackets(frame(packets))
            return [r.attention, r.endsMessage]
        }
        #expect(scan([(.attention, .endOfMessage)]) == [true, true])
        #expect(scan([(.sqlBatch, [])]) == [false, false])
        #expect(scan([(.sqlBatch, []), (.sqlBatch, .endOfMessage)]) == [false, true])
        #expect(scan([]) == [false, false])
    }
}
