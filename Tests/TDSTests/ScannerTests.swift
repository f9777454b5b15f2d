import NIOCore
import Testing
@testable import TDS

/// A reply with rows (PLP included), messages, a procedure's return status and value, and a final DONE.
func sampleReply() -> ByteBuffer {
    let cols = [
        TDSColumn(name: "id", type: .int4, flags: 0),
        TDSColumn(name: "name", type: .nvarchar(maxLength: 0xFFFF)),
        TDSColumn(name: "blob", type: .varbinary(maxLength: 0xFFFF)),
        TDSColumn(name: "n", type: .intN(length: 8)),
    ]
    var w = TDSTokenWriter()
    return encode {
        w.write([
            .colMetadata(cols),
            .row([.int(1), .string("first"), .bytes([1, 2, 3]), .int(10)]),
            .nbcRow([.int(2), .null, .bytes([UInt8](repeating: 9, count: 300)), .null]),
            .row([.int(3), .string(String(repeating: "z", count: 200)), .null, .int(-1)]),
            .doneInProc(Done(status: [.more, .count], currentCommand: 0xC1, rowCount: 3)),
            .info(ServerMessage(number: 50000, severity: 0, message: "note")),
            .error(ServerMessage(number: 547, severity: 16, message: "constraint")),
            .returnStatus(0),
            .returnValue(ReturnValue(ordinal: 0, name: "@o", type: .nvarchar(maxLength: 0xFFFF), value: .string("out"))),
            .doneProc(Done(status: [.more], currentCommand: 0xE0)),
            .envChange(.packetSize(new: "8000", old: "4096")),
            .done(Done(status: [.count, .error], currentCommand: 0xC1, rowCount: 3)),
        ], into: &$0)
    }
}

@Suite struct ScannerTests {
    @Test func scansWholeReply() throws {
        var b = sampleReply()
        var s = TDSTokenScanner()
        let summaries = try s.scan(&b)
        #expect(b.readableBytes == 0)
        #expect(summaries.map(\.name) == ["COLMETADATA", "ROW", "NBCROW", "ROW", "DONEINPROC", "INFO", "ERROR",
                                          "RETURNSTATUS", "RETURNVALUE", "DONEPROC", "ENVCHANGE", "DONE"])
        #expect(summaries.reduce(0) { $0 + $1.length } == sampleReply().readableBytes)
        #expect(s.isComplete)
        #expect(s.rowsSeen == 3)
        #expect(s.errorNumbers == [547])
        #expect(s.lastDoneRowCount == 3)
        #expect(s.finalDone?.status == [.count, .error])
        #expect(!s.attentionAcknowledged)
        #expect(summaries[10].token == .envChange(.packetSize(new: "8000", old: "4096")))
    }

    @Test func splitAtEveryByteBoundary() throws {
        let whole = sampleReply().bytes
        var reference = TDSTokenScanner()
        var all = ByteBuffer(bytes: whole)
        let expected = try reference.scan(&all)
        for cut in 0...whole.count {
            var s = TDSTokenScanner()
            var b = ByteBuffer(bytes: Array(whole.prefix(cut)))
            var got = try s.scan(&b)
            #expect(!s.isComplete || cut == whole.count)
            b.writeBytes(whole.dropFirst(cut))
            got += try s.scan(&b)
            #expect(got == expected, "cut at \(cut)")
            #expect(b.readableBytes == 0)
            #expect(s.isComplete && s.rowsSeen == 3)
        }
    }

    @Test func byteByByteFeeding() throws {
        let whole = sampleReply().bytes
        var s = TDSTokenScanner()
        var b = ByteBuffer()
        var count = 0
        for byte in whole {
            b.writeInteger(byte)
            count += try s.scan(&b).count
        }
        #expect(count == 12)
        #expect(s.isComplete)
    }

    @Test func largePLPRowsAreConsumedAsTheyArrive() throws {
        let cols = [TDSColumn(name: "id", type: .int4, flags: 0), TDSColumn(name: "blob", type: .varbinary(maxLength: 0xFFFF))]
        let big = [UInt8](repeating: 0x33, count: 200_000)
        var w = TDSTokenWriter()
        let whole = encode {
            w.write([.colMetadata(cols), .row([.int(1), .bytes(big)]), .nbcRow([.int(2), .null]), .done(Done(status: [.count], rowCount: 2))],
                    into: &$0)
        }.bytes
        var s = TDSTokenScanner()
        var b = ByteBuffer()
        var summaries: [TDSTokenSummary] = []
        var maxHeld = 0
        var offset = 0
        while offset < whole.count {
            let n = min(4096, whole.count - offset)
            b.writeBytes(whole[offset..<(offset + n)])
            offset += n
            summaries += try s.scan(&b)
            maxHeld = max(maxHeld, b.readableBytes)
            b.discardReadBytes()
        }
        #expect(maxHeld < 4096, "the scanner holds back at most a partial small token")
        #expect(summaries.map(\.name) == ["COLMETADATA", "ROW", "NBCROW", "DONE"])
        #expect(summaries[1].length == 1 + 4 + 8 + 4 + big.count + 4)
        #expect(s.rowsSeen == 2 && s.isComplete && !s.isInsideRow)
    }

    @Test func attentionAcknowledgement() throws {
        var b = encode {
            TDSToken.done(Done(status: [.more])).write(into: &$0)
            TDSToken.done(Done(status: [.attention])).write(into: &$0)
        }
        var s = TDSTokenScanner()
        _ = try s.scan(&b)
        #expect(s.attentionAcknowledged)
        #expect(s.isComplete)
        s.reset()
        #expect(!s.isComplete && s.columns == nil)
    }

    @Test func doneInProcIsNeverFinal() throws {
        var b = encode { TDSToken.doneInProc(Done(status: [])).write(into: &$0) }
        var s = TDSTokenScanner()
        _ = try s.scan(&b)
        #expect(!s.isComplete)
    }

    @Test func malformedStreamThrows() {
        var b = ByteBuffer(bytes: [0x81, 1, 0, 0, 0, 0, 0, 0, 0x38, 1, 0x61, 0, 0xD1, 1, 0, 0, 0, 0x07])
        var s = TDSTokenScanner()
        #expect(throws: TDSDecodingError.self) { try s.scan(&b) }
    }
}
