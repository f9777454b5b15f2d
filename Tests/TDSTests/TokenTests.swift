import NIOCore
import Testing
@testable import TDS

let allTypesColumns: [TDSColumn] = [
    TDSColumn(name: "i1", type: .int1, flags: 0),
    TDSColumn(name: "i2", type: .int2, flags: 0),
    TDSColumn(name: "i4", type: .int4, flags: 0),
    TDSColumn(name: "i8", type: .int8, flags: 0),
    TDSColumn(name: "b", type: .bit, flags: 0),
    TDSColumn(name: "r", type: .real, flags: 0),
    TDSColumn(name: "f", type: .float8, flags: 0),
    TDSColumn(name: "m", type: .money, flags: 0),
    TDSColumn(name: "sm", type: .smallMoney, flags: 0),
    TDSColumn(name: "dt", type: .datetime, flags: 0),
    TDSColumn(name: "sdt", type: .smallDateTime, flags: 0),
    TDSColumn(name: "in1", type: .intN(length: 1)),
    TDSColumn(name: "in2", type: .intN(length: 2)),
    TDSColumn(name: "in4", type: .intN(length: 4)),
    TDSColumn(name: "in8", type: .intN(length: 8)),
    TDSColumn(name: "bn", type: .bitN),
    TDSColumn(name: "fn4", type: .floatN(length: 4)),
    TDSColumn(name: "fn8", type: .floatN(length: 8)),
    TDSColumn(name: "mn4", type: .moneyN(length: 4)),
    TDSColumn(name: "mn8", type: .moneyN(length: 8)),
    TDSColumn(name: "dtn4", type: .datetimeN(length: 4)),
    TDSColumn(name: "dtn8", type: .datetimeN(length: 8)),
    TDSColumn(name: "g", type: .uniqueidentifier),
    TDSColumn(name: "dec", type: .decimal(precision: 18, scale: 4)),
    TDSColumn(name: "num", type: .numeric(precision: 38, scale: 0)),
    TDSColumn(name: "d", type: .date),
    TDSColumn(name: "t7", type: .time(scale: 7)),
    TDSColumn(name: "t0", type: .time(scale: 0)),
    TDSColumn(name: "dt2", type: .datetime2(scale: 3)),
    TDSColumn(name: "dto", type: .datetimeoffset(scale: 7)),
    TDSColumn(name: "nv", type: .nvarchar(maxLength: 100)),
    TDSColumn(name: "nvmax", type: .nvarchar(maxLength: 0xFFFF)),
    TDSColumn(name: "nc", type: .nchar(length: 20)),
    TDSColumn(name: "vc", type: .varchar(maxLength: 20)),
    TDSColumn(name: "vcmax", type: .varchar(maxLength: 0xFFFF)),
    TDSColumn(name: "c", type: .char(length: 5)),
    TDSColumn(name: "vb", type: .varbinary(maxLength: 16)),
    TDSColumn(name: "vbmax", type: .varbinary(maxLength: 0xFFFF), userType: 0),
    TDSColumn(name: "bin", type: .binary(length: 4)),
]

let allTypesValues: [TDSValue] = [
    .int(255), .int(-2), .int(-2_000_000_000), .int(Int64.min), .bit(true), .float(1.5), .float(3.141592653589793),
    .money(-12_345_678_901), .money(-5), .datetime(days: 45_000, fraction: 12_345), .smallDateTime(days: 40_000, minutes: 1439),
    .int(7), .int(-300), .int(70_000), .int(1 << 40), .bit(false), .float(-0.25), .float(1e300),
    .money(12_345), .money(Int64(Int32.max) * 10), .smallDateTime(days: 1, minutes: 2), .datetime(days: -1, fraction: 299),
    .guid((0..<16).map { UInt8($0) }),
    .decimal(TDSDecimal("-12345.6789", scale: 4)!),
    .decimal(TDSDecimal("99999999999999999999999999999999999999", scale: 0)!),
    .date(days: 738_000), .time(ticks: 863_999_999_999), .time(ticks: 86_399),
    .datetime2(days: 738_000, ticks: 86_399_999), .datetimeoffset(days: 738_000, ticks: 12_345_678, offsetMinutes: -330),
    .string("héllo wörld ✓"), .string(String(repeating: "PLP-data-", count: 5000)), .string("fixed"),
    .string("café"), .string(String(repeating: "x", count: 9000)), .string("abcde"),
    .bytes([0xDE, 0xAD, 0xBE, 0xEF]), .bytes([UInt8](repeating: 0x42, count: 10000)), .bytes([1, 2, 3, 4]),
]

private func roundTrip(_ tokens: [TDSToken]) throws -> [TDSToken] {
    var writer = TDSTokenWriter()
    let b = encode { writer.write(tokens, into: &$0) }
    return try TDSTokenParser.parseAll(b)
}

@Suite struct TokenTests {
    @Test func everyTokenRoundTrips() throws {
        let rv = ReturnValue(ordinal: 1, name: "@out", type: .intN(length: 4), value: .int(42))
        let tokens: [TDSToken] = [
            .envChange(.database(new: "salesdb", old: "master")),
            .info(ServerMessage(number: 5701, state: 2, severity: 0, message: "Changed database context to 'salesdb'.",
                                serverName: "srv", procedureName: "", lineNumber: 1)),
            .envChange(.collation(new: TDSCollation.default, old: [])),
            .envChange(.language(new: "us_english", old: "")),
            .envChange(.charset(new: "iso_1", old: "")),
            .envChange(.packetSize(new: "8000", old: "4096")),
            .envChange(.unicodeSortLocale(new: "1033", old: "")),
            .envChange(.unicodeComparisonFlags(new: "196609", old: "")),
            .envChange(.beginTransaction(new: [1, 0, 0, 0, 0, 0, 0, 0], old: [])),
            .envChange(.commitTransaction(new: [], old: [1, 0, 0, 0, 0, 0, 0, 0])),
            .envChange(.rollbackTransaction(new: [], old: [2, 0, 0, 0, 0, 0, 0, 0])),
            .envChange(.enlistDTCTransaction(new: [3], old: [])),
            .envChange(.defectTransaction(new: [], old: [4])),
            .envChange(.mirroringPartner(new: "partner", old: "")),
            .envChange(.promoteTransaction(new: [UInt8](repeating: 9, count: 300), old: [])),
            .envChange(.transactionManagerAddress(new: [5, 6], old: [])),
            .envChange(.transactionEnded(new: [], old: [7])),
            .envChange(.resetConnectionAck),
            .envChange(.userInstance(new: "ui", old: "")),
            .envChange(.routing(protocol: 0, port: 11_042, server: "worker.tr1.westeurope1-a.worker.database.windows.net")),
            .envChange(.enhancedRouting(protocol: 0, port: 11_000, server: "w2", database: "db2")),
            .envChange(.other(type: 0x63, data: [1, 2, 3])),
            .loginAck(LoginAck(interface: 1, tdsVersion: 0x7400_0004, programName: "Microsoft SQL Server",
                               programVersion: [16, 0, 0x0F, 0xA0])),
            .featureExtAck([FeatureAck(id: Login7Feature.fedAuth), FeatureAck(id: Login7Feature.azureSQLSupport, data: [1]),
                            FeatureAck(id: Login7Feature.utf8Support, data: [1])]),
            .fedAuthInfo(FedAuthInfo(stsURL: "https://login.microsoftonline.com/tenant", spn: "https://database.windows.net/")),
            .sspi([0x4E, 0x54, 0x4C, 0x4D]),
            .error(ServerMessage(number: 18456, state: 1, severity: 14, message: "Login failed for user 'x'.",
                                 serverName: "srv", procedureName: "", lineNumber: 1)),
            .colMetadata([TDSColumn(name: "a", type: .int4, flags: 0), TDSColumn(name: "s", type: .nvarchar(maxLength: 20))]),
            .order([1, 2]),
            .row([.int(1), .string("x")]),
            .nbcRow([.int(2), .null]),
            .doneInProc(Done(status: [.more, .count], currentCommand: 0xC1, rowCount: 2)),
            .returnStatus(-6),
            .returnValue(rv),
            .doneProc(Done(status: [.more], currentCommand: 0xE0, rowCount: 0)),
            .other(type: TDSTokenType.sessionState, data: [1, 2, 3, 4, 5]),
            .other(type: TDSTokenType.offset, data: [1, 0, 2, 0]),
            .other(type: TDSTokenType.tabName, data: [0, 0]),
            .done(Done(status: [.error, .serverError, .inTransaction], currentCommand: 0, rowCount: UInt64.max)),
        ]
        #expect(try roundTrip(tokens) == tokens)
    }

    @Test func wireLayouts() throws {
        let ack = encode { TDSToken.loginAck(LoginAck(interface: 1, tdsVersion: 0x7400_0004, programName: "M", programVersion: [1, 2, 3, 4])).write(into: &$0) }
        #expect(ack.bytes == [0xAD, 12, 0, 1, 0x74, 0x00, 0x00, 0x04, 1, 0x4D, 0, 1, 2, 3, 4])
        let done = encode { TDSToken.done(Done(status: [.count], currentCommand: 0xC1, rowCount: 5)).write(into: &$0) }
        #expect(done.bytes == [0xFD, 0x10, 0x00, 0xC1, 0x00, 5, 0, 0, 0, 0, 0, 0, 0])
        let routing = encode { TDSToken.envChange(.routing(protocol: 0, port: 0x2AF8, server: "ab")).write(into: &$0) }
        #expect(routing.bytes == [0xE3, 14, 0, 20, 9, 0, 0, 0xF8, 0x2A, 2, 0, 0x61, 0, 0x62, 0, 0, 0])
        let fai = encode { TDSToken.fedAuthInfo(FedAuthInfo(stsURL: "s", spn: "p")).write(into: &$0) }
        #expect(fai.bytes == [0xEE, 26, 0, 0, 0, 2, 0, 0, 0,
                              1, 2, 0, 0, 0, 22, 0, 0, 0,
                              2, 2, 0, 0, 0, 24, 0, 0, 0,
                              0x73, 0, 0x70, 0])
        let fea = encode { TDSToken.featureExtAck([FeatureAck(id: 2)]).write(into: &$0) }
        #expect(fea.bytes == [0xAE, 2, 0, 0, 0, 0, 0xFF])
        let err = encode { TDSToken.error(ServerMessage(number: 18456, state: 1, severity: 14, message: "x", serverName: "", procedureName: "", lineNumber: 1)).write(into: &$0) }
        #expect(err.bytes == [0xAA, 16, 0, 0x18, 0x48, 0, 0, 1, 14, 1, 0, 0x78, 0, 0, 0, 1, 0, 0, 0])
    }

    @Test func allTypesInRowsAndNBCRows() throws {
        let nulls: [TDSValue] = allTypesColumns.enumerated().map { i, c in c.type.fixedSize == nil ? .null : allTypesValues[i] }
        let allNull = [TDSValue](repeating: .null, count: allTypesColumns.count)
        let tokens: [TDSToken] = [
            .colMetadata(allTypesColumns),
            .row(allTypesValues),
            .row(nulls),
            .nbcRow(allTypesValues),
            .nbcRow(nulls),
            .nbcRow(allNull),
            .done(Done(status: [.count], rowCount: 5)),
        ]
        #expect(try roundTrip(tokens) == tokens)
    }

    @Test func plpWithSeveralChunksAndUnknownLength() throws {
        // nvarchar(max) "abcd" as two chunks with the unknown-length marker.
        var b = ByteBuffer()
        TDSToken.writeColMetadata([TDSColumn(name: "x", type: .nvarchar(maxLength: 0xFFFF))], into: &b)
        b.writeInteger(TDSTokenType.row)
        b.tdsWriteU64LE(0xFFFF_FFFF_FFFF_FFFE)
        b.tdsWriteU32LE(4)
        b.writeBytes(TDSString.encodeUTF16LE("ab"))
        b.tdsWriteU32LE(4)
        b.writeBytes(TDSString.encodeUTF16LE("cd"))
        b.tdsWriteU32LE(0)
        let tokens = try TDSTokenParser.parseAll(b)
        #expect(tokens.last == .row([.string("abcd")]))
    }

    @Test func decimalText() throws {
        #expect(TDSDecimal("123.45", scale: 2)?.string(scale: 2) == "123.45")
        #expect(TDSDecimal("-0.5", scale: 3)?.string(scale: 3) == "-0.500")
        #expect(TDSDecimal("7", scale: 0)?.string(scale: 0) == "7")
        #expect(TDSDecimal(-123).string(scale: 2) == "-1.23")
        #expect(TDSDecimal("99999999999999999999999999999999999999", scale: 0)?.string(scale: 0)
                    == "99999999999999999999999999999999999999")
        #expect(TDSDecimal("1e5", scale: 0) == nil)
        #expect(TDSDecimal("", scale: 0) == nil)
        #expect(TDSDecimal(isNegative: true, magnitude: [0, 0]).isNegative == false, "negative zero is zero")
    }

    @Test func mismatchedValuesDegradeToNull() throws {
        let cols = [TDSColumn(name: "i", type: .intN(length: 4)), TDSColumn(name: "s", type: .nvarchar(maxLength: 10))]
        var w = TDSTokenWriter()
        let b = encode { w.write([.colMetadata(cols), .row([.string("oops"), .int(5)])], into: &$0) }
        #expect(try TDSTokenParser.parseAll(b).last == .row([.null, .null]))
    }

    @Test func unsupportedTypesThrowClearly() {
        var b = ByteBuffer(bytes: [0x81, 1, 0, 0, 0, 0, 0, 1, 0, 0x63, 0x10, 0, 0, 0])
        do {
            var p = TDSTokenParser()
            _ = try p.parse(&b)
            Issue.record("expected an error")
        } catch let e as TDSDecodingError {
            #expect(e.reason.contains("NTEXT"))
        } catch {
            Issue.record("unexpected \(error)")
        }
    }

    @Test func parserWaitsForIncompleteToken() throws {
        let full = encode { TDSToken.info(ServerMessage(number: 1, severity: 0, message: "hello")).write(into: &$0) }
        var parser = TDSTokenParser()
        var part = ByteBuffer(bytes: Array(full.bytes.prefix(10)))
        #expect(try parser.parse(&part).isEmpty)
        #expect(part.readableBytes == 10)
        part.writeBytes(full.bytes.dropFirst(10))
        #expect(try parser.parse(&part).count == 1)
        #expect(part.readableBytes == 0)
    }

    @Test func dataClassificationFollowsNegotiatedVersion() throws {
        func body(version: UInt8) -> [UInt8] {
            var b = ByteBuffer()
            b.tdsWriteU16LE(1)
            b.tdsWriteBVarchar("Confidential")
            b.tdsWriteBVarchar("id-1")
            b.tdsWriteU16LE(1)
            b.tdsWriteBVarchar("Financial")
            b.tdsWriteBVarchar("id-2")
            if version >= 2 { b.tdsWriteI32LE(2) }
            b.tdsWriteU16LE(2)
            b.tdsWriteU16LE(1)
            b.tdsWriteU16LE(0)
            b.tdsWriteU16LE(0)
            if version >= 2 { b.tdsWriteI32LE(2) }
            b.tdsWriteU16LE(0)
            return b.bytes
        }
        let cols = [TDSColumn(name: "a", type: .int4, flags: 0), TDSColumn(name: "b", type: .int4, flags: 0)]
        for version: UInt8 in [1, 2] {
            let tokens: [TDSToken] = [
                .featureExtAck([FeatureAck(id: Login7Feature.dataClassification, data: [version, 1])]),
                .colMetadata(cols),
                .other(type: TDSTokenType.dataClassification, data: body(version: version)),
                .row([.int(1), .int(2)]),
                .done(Done()),
            ]
            #expect(try roundTrip(tokens) == tokens)
            var b = encode { var w = TDSTokenWriter(); w.write(Array(tokens.dropFirst()), into: &$0) }
            var s = TDSTokenScanner()
            s.dataClassificationVersion = version
            #expect(try s.scan(&b).map(\.name) == ["COLMETADATA", "DATACLASSIFICATION", "ROW", "DONE"])
            #expect(s.isComplete)
        }
    }

    @Test func rowWithoutMetadataIsRejected() {
        #expect(throws: TDSDecodingError.self) { try TDSTokenParser.parseAll(ByteBuffer(bytes: [0xD1, 0, 0, 0, 0])) }
    }

    @Test func innerTruncationInsideLengthPrefixedTokenIsAnError() {
        // LOGINACK claiming 3 bytes: complete, but too short for its fields - must not wait for more.
        var b = ByteBuffer(bytes: [0xAD, 3, 0, 1, 0x74, 0x00])
        var parser = TDSTokenParser()
        #expect(throws: TDSDecodingError.self) { try parser.parse(&b) }
    }
}
