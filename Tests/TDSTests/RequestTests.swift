import NIOCore
import Testing
@testable import TDS

@Suite struct RequestTests {
    @Test func sqlBatchRoundTrip() throws {
        let batch = SQLBatch(allHeaders: AllHeaders(transactionDescriptor: 0x0102, outstandingRequestCount: 1), text: "SELECT N'ü' -- ✓")
        let b = encode { batch.write(into: &$0) }
        #expect(Array(b.bytes.prefix(22)) == [22, 0, 0, 0, 18, 0, 0, 0, 2, 0, 2, 1, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0])
        let parsed = try SQLBatch(parsing: b)
        #expect(parsed == batch)
        #expect(parsed.allHeaders?.transactionDescriptor == 0x0102)
        #expect(parsed.allHeaders?.outstandingRequestCount == 1)
    }

    @Test func sqlBatchWithoutHeaders() throws {
        let b = ByteBuffer(bytes: TDSString.encodeUTF16LE("select 1"))
        let parsed = try SQLBatch(parsing: b)
        #expect(parsed.allHeaders == nil)
        #expect(parsed.text == "select 1")
        #expect(encode { parsed.write(into: &$0) }.bytes == b.bytes)
        #expect(throws: TDSDecodingError.self) { try SQLBatch(parsing: ByteBuffer(bytes: [0x41, 0, 0x42])) }
    }

    @Test func allHeadersKeepsUnknownEntries() throws {
        var h = AllHeaders(entries: [AllHeaders.Entry(type: 3, data: [UInt8](repeating: 0xAA, count: 20))])
        h.transactionDescriptor = 7
        #expect(h.entries.map(\.type) == [3, 2])
        #expect(h.outstandingRequestCount == 1)
        var b = encode { h.write(into: &$0) }
        #expect(try AllHeaders.read(from: &b, field: "t") == h)
    }

    @Test func rpcRoundTripByIDAndName() throws {
        let params = [
            RPCParameter(name: "", type: .nvarchar(maxLength: 0xFFFF), value: .string("SELECT @P1, @P2")),
            RPCParameter(name: "", type: .nvarchar(maxLength: 0xFFFF), value: .string("@P1 int, @P2 nvarchar(10)")),
            RPCParameter(name: "@P1", type: .intN(length: 4), value: .int(5)),
            RPCParameter(name: "@P2", statusFlags: 0x01, type: .nvarchar(maxLength: 20), value: .null),
            RPCParameter(name: "@P3", type: .decimal(precision: 10, scale: 2), value: .decimal(TDSDecimal("12.50", scale: 2)!)),
            RPCParameter(name: "@P4", type: .datetime2(scale: 7), value: .datetime2(days: 738_000, ticks: 1)),
            RPCParameter(name: "@P5", type: .varbinary(maxLength: 0xFFFF), value: .bytes([1, 2, 3])),
        ]
        let rpc = RPCRequest(procedure: .spExecuteSQL, optionFlags: 0, parameters: params)
        let parsed = try RPCRequest(parsing: encode { rpc.write(into: &$0) })
        #expect(parsed == rpc)
        #expect(parsed.sqlText == "SELECT @P1, @P2")
        #expect(parsed.parameters[3].isOutput)
        #expect(parsed.procedure.displayName == "sp_executesql")

        let named = RPCRequest(procedure: .name("[sys].sp_datatype_info_100"),
                               parameters: [RPCParameter(name: "", type: .intN(length: 2), value: .int(-9))])
        #expect(try RPCRequest(parsing: encode { named.write(into: &$0) }) == named)
        let byName = RPCRequest(procedure: .name("[sys].[sp_executesql]"),
                                parameters: [RPCParameter(name: "", type: .nvarchar(maxLength: 0xFFFF), value: .string("SELECT 2"))])
        #expect(byName.sqlText == "SELECT 2")
    }

    @Test func rpcBatchesAreKeptRaw() throws {
        let rpc = RPCRequest(procedure: .spUnprepare, parameters: [RPCParameter(name: "", type: .intN(length: 4), value: .int(1))])
        var b = encode { rpc.write(into: &$0) }
        let second = encode { RPCRequest(allHeaders: nil, procedure: .spExecute).write(into: &$0) }.bytes
        b.writeInteger(UInt8(0xFF))
        b.writeBytes(second)
        let parsed = try RPCRequest(parsing: b)
        #expect(parsed.parameters.count == 1)
        #expect(parsed.remainingRequests == [0xFF] + second)
        #expect(encode { parsed.write(into: &$0) }.bytes == b.bytes)
    }

    @Test func rpcKeepsDriverValueEncodingUntilChanged() throws {
        // Decimal sent with the maximum 17-byte length though precision 5 needs 5.
        var b = ByteBuffer()
        AllHeaders(transactionDescriptor: 0).write(into: &b)
        b.tdsWriteU16LE(0xFFFF)
        b.tdsWriteU16LE(10)
        b.tdsWriteU16LE(0)
        b.writeBytes([0, 0, 0x6A, 17, 5, 2, 17, 1] + [0x39, 0x30] + [UInt8](repeating: 0, count: 14))
        var parsed = try RPCRequest(parsing: b)
        #expect(encode { parsed.write(into: &$0) }.bytes == b.bytes)
        #expect(parsed.parameters[0].value == .decimal(TDSDecimal(12345)))
        parsed.parameters[0].value = .decimal(TDSDecimal(1))
        let changed = try RPCRequest(parsing: encode { parsed.write(into: &$0) })
        #expect(changed.parameters[0].value == .decimal(TDSDecimal(1)))
    }

    @Test func transactionManagerRequests() throws {
        let begin = TransactionManagerRequest.beginTransaction(isolationLevel: 2, name: "t1")
        let parsed = try TransactionManagerRequest(parsing: encode { begin.write(into: &$0) })
        #expect(parsed == begin)
        #expect(parsed.requestName == "TM_BEGIN_XACT")
        #expect(parsed.isolationLevel == 2)
        #expect(parsed.transactionName == "t1")

        var payload = ByteBuffer()
        payload.tdsWriteBVarchar("")
        payload.writeInteger(UInt8(1))
        payload.writeInteger(UInt8(0))
        payload.tdsWriteBVarchar("next")
        let rollback = TransactionManagerRequest(allHeaders: AllHeaders(transactionDescriptor: 1), requestType: 8, payload: payload.bytes)
        let rp = try TransactionManagerRequest(parsing: encode { rollback.write(into: &$0) })
        #expect(rp.beginsNewTransaction == true)
        #expect(rp.newTransaction?.name == "next")
        #expect(rp.transactionName == "")
    }

    @Test func fedAuthTokenMessage() throws {
        let nonce = [UInt8](repeating: 3, count: 32)
        for m in [FedAuthTokenMessage(token: fakeJWT(length: 1200), nonce: nil), FedAuthTokenMessage(token: "abc", nonce: nonce)] {
            let b = encode { m.write(into: &$0) }
            #expect(try FedAuthTokenMessage(parsing: b) == m)
        }
        let b = encode { FedAuthTokenMessage(token: "ab").write(into: &$0) }
        #expect(b.bytes == [8, 0, 0, 0, 4, 0, 0, 0, 0x61, 0, 0x62, 0])
    }
}
