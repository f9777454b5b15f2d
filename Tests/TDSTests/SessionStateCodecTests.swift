import NIOCore
import Testing
@testable import TDS

@Suite struct SessionStateCodecTests {
    @Test func sessionStateTokenRoundTripsThroughTheTokenParser() throws {
        let long = SessionStateEntry(id: 11, value: Array(repeating: 7, count: 300))
        let token = SessionStateToken(sequenceNumber: 5, recoverable: false, entries: [SessionStateEntry(id: 0, value: [1, 2, 3]), long])
        var b = ByteBuffer()
        token.write(into: &b)
        // Type, DWORD length, SeqNo, Status, then entries; 300 bytes take the 0xFF + DWORD length form.
        #expect(b.getInteger(at: 0, as: UInt8.self) == 0xE4)
        let expectedLength: UInt32 = 4 + 1 + 5 + 306
        #expect(b.getInteger(at: 1, endianness: .little, as: UInt32.self) == expectedLength)
        var parser = TDSTokenParser()
        let parsed = try parser.parse(&b)
        guard case .other(TDSTokenType.sessionState, let data)? = parsed.first else {
            Issue.record("not parsed as SESSIONSTATE: \(parsed)")
            return
        }
        #expect(try SessionStateToken(body: data) == token)
    }

    @Test func recoveryFeatureDataRoundTrips() throws {
        let initial = SessionRecoveryData(database: "appdb", collation: [0x09, 0x04, 0xD0, 0x00, 0x34], language: "us_english",
                                          states: [SessionStateEntry(id: 0, value: Array(repeating: 0, count: 9))])
        let current = SessionRecoveryData(database: "", collation: [], language: "British", states: [SessionStateEntry(id: 2, value: [1, 2])])
        let request = SessionRecoveryRequest.recover(initial: initial, current: current)
        #expect(try SessionRecoveryRequest(featureData: request.featureData) == request)
        #expect(try SessionRecoveryRequest(featureData: []) == .negotiate)
        #expect(SessionRecoveryRequest.negotiate.featureData.isEmpty)
    }

    @Test(arguments: [
        [UInt8]([0x05, 0x00, 0x00, 0x00, 0x00]),                          // chunk shorter than its length
        [0x03, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0x00],                 // collation of 2 bytes
        [0x02, 0x00, 0x00, 0x00, 0x00, 0x00],                             // no second chunk
    ])
    func malformedRecoveryDataThrows(_ bytes: [UInt8]) {
        #expect(throws: TDSDecodingError.self) { _ = try SessionRecoveryRequest(featureData: bytes) }
    }

    @Test func stateValuesMustFitTheirToken() {
        #expect(throws: TDSDecodingError.self) { _ = try SessionStateToken(body: [0, 0, 0, 0, 1, 0x00, 0x09, 0x01]) }
        #expect(throws: TDSDecodingError.self) { _ = try SessionStateEntry.parseDataSet([0x00, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F]) }
    }
}
