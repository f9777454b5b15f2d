import NIOCore
import Testing
@testable import PacketDump
@testable import TDS

@Suite struct RenderTests {
    @Test func largeReplyIsSummarisedWithBoundedMemory() {
        let payload = resultReply(rows: 5000)
        let packets = packetize(.tabularResult, payload, packetSize: 512)
        #expect(packets.count > 100)
        var decoder = DumpStreamDecoder(direction: .backendToProxy)
        var blocks: [String] = []
        var maxHeld = 0
        for p in packets {
            blocks += decoder.feed(packet: p, at: t0)
            maxHeld = max(maxHeld, decoder.bufferedByteCount)
        }
        #expect(maxHeld < 1024, "the decoder held \(maxHeld) bytes")
        #expect(blocks.count == 1)
        let text = blocks.joined()
        #expect(text.contains("COLMETADATA 2 columns"))
        #expect(text.contains("[0] id int NOT NULL"))
        #expect(text.contains("[1] name nvarchar(4000) NULL"))
        #expect(text.contains("5000 rows"))
        #expect(text.contains("DONE status 0x0010 COUNT, command 193, row count 5000"))
        #expect(!text.contains("name 4999"))
        #expect(!text.contains("failed to decode"))
        #expect(text.contains("… \(packets.count - 4) more packets"))
    }

    @Test func loginReplyTokensAreNamed() {
        var w = TDSTokenWriter()
        let payload = encode { b in
            w.write(.envChange(.database(new: "appdb", old: "master")), into: &b)
            w.write(.info(ServerMessage(number: 5701, class_: 0, message: "Changed database context to 'appdb'.", serverName: "srv")), into: &b)
            w.write(.envChange(.packetSize(new: "8000", old: "4096")), into: &b)
            w.write(.loginAck(LoginAck(programName: "Microsoft SQL Server")), into: &b)
            w.write(.envChange(.routing(protocol: 0, port: 11001, server: "worker.example.net")), into: &b)
            w.write(.featureExtAck([FeatureAck(id: Login7Feature.azureSQLSupport, data: [1]), FeatureAck(id: 0x42, data: [])]), into: &b)
            w.write(.error(ServerMessage(number: 18456, state: 1, class_: 14, message: "Login failed for user 'x'.", serverName: "srv", lineNumber: 1)), into: &b)
            w.write(.returnStatus(-6), into: &b)
            w.write(.sspi([1, 2, 3, 4]), into: &b)
            w.write(.done(Done(status: [.error, .attention])), into: &b)
        }
        let text = DumpTextRenderer.render(message: TDSMessage(type: .tabularResult, payload: payload), direction: .backendToProxy, at: t0)
        #expect(text.contains("ENVCHANGE 1 DATABASE \"master\" -> \"appdb\""))
        #expect(text.contains("INFO 5701"))
        #expect(text.contains("4 PACKETSIZE \"4096\" -> \"8000\""))
        #expect(text.contains("LOGINACK interface 1 SQL_TSQL, TDS 0x74000004 (7.4), program \"Microsoft SQL Server\""))
        #expect(text.contains("20 ROUTING protocol 0 (TCP) host \"worker.example.net\" port 11001"))
        #expect(text.contains("AZURESQLSUPPORT (0x08) 1 bytes: read-only failover partner"))
        #expect(text.contains("FEATURE_0x42"))
        #expect(text.contains("ERROR 18456 state 1 class 14: \"Login failed for user 'x'.\""))
        #expect(text.contains("RETURNSTATUS -6"))
        #expect(text.contains("SSPI <redacted, 4 bytes>"))
        #expect(text.contains("DONE status 0x0022 ERROR|ATTN"))
    }

    @Test func rpcParametersAndMasking() {
        let long = String(repeating: "x", count: 12_345)
        let rpc = RPCRequest(procedure: .spExecuteSQL, parameters: [
            RPCParameter(name: "", type: .nvarchar(maxLength: 0xFFFF), value: .string("SELECT * FROM t WHERE a = @P1 AND b = 'lit' AND c = 42")),
            RPCParameter(name: "", type: .nvarchar(maxLength: 200), value: .string("@P1 nvarchar(max), @P2 int OUTPUT")),
            RPCParameter(name: "@P1", type: .nvarchar(maxLength: 0xFFFF), value: .string(long)),
            RPCParameter(name: "@P2", statusFlags: 0x01, type: .intN(length: 4), value: .int(7)),
        ])
        let payload = encode { rpc.write(into: &$0) }
        let plain = DumpTextRenderer.render(message: TDSMessage(type: .rpc, payload: payload), direction: .clientToProxy, at: t0)
        #expect(plain.contains("RPC sp_executesql (id 10)"))
        #expect(plain.contains("transaction descriptor 0x0000000000000000, outstanding requests 1"))
        #expect(plain.contains("param @P1 nvarchar(max) = \"" + String(repeating: "x", count: 200) + "\"… (12,345 chars)"))
        #expect(plain.contains("param @P2 int [BYREF(output)] = 7"))
        #expect(plain.contains("c = 42"))
        let masked = DumpTextRenderer.render(message: TDSMessage(type: .rpc, payload: payload), direction: .clientToProxy, at: t0,
                                             options: DumpTextOptions(maskLiterals: true))
        #expect(masked.contains("b = ? AND c = ?"))
        #expect(masked.contains("param @P2 int [BYREF(output)] = <masked>"))
        #expect(!masked.contains("xxxx"))

        let batch = encode { SQLBatch(text: "INSERT t VALUES (N'secret', 0x0102, 3.5)").write(into: &$0) }
        let mb = DumpTextRenderer.render(message: TDSMessage(type: .sqlBatch, payload: batch), direction: .clientToProxy, at: t0,
                                         options: DumpTextOptions(maskLiterals: true))
        #expect(mb.contains("INSERT t VALUES (?, ?, ?)"))
        #expect(!mb.contains("secret"))
    }

    @Test(arguments: [
        ("SELECT 'it''s' , N'x''y'", "SELECT ? , ?"),
        ("WHERE a=1 AND b=-2.5e3 AND c=.5 AND d=$12.50", "WHERE a=? AND b=-? AND c=? AND d=?"),
        ("SELECT 0xDEADbeef, t1.c2, @p3, #tmp4, [col 5], \"q 6\"", "SELECT ?, t1.c2, @p3, #tmp4, [col 5], \"q 6\""),
        ("SELECT 1 -- don't 2\n, 3 /* it's 4 /* nested 5 */ 6 */ , 7", "SELECT ? -- don't 2\n, ? /* it's 4 /* nested 5 */ 6 */ , ?"),
        ("SELECT 'unterminated", "SELECT ?"),
        ("WHERE x IN('a','b')", "WHERE x IN(?,?)"),
        ("SELECT N'ü€' + 'a'", "SELECT ? + ?"),
        ("", ""),
    ])
    func literalMasking(input: String, expected: String) {
        #expect(SQLLiteralMasker.mask(input) == expected)
    }

    @Test func preloginBothDirectionsAndTransactionManager() {
        var p = PreloginMessage()
        p.version = PreloginVersion(major: 16, minor: 0, build: 1000, subBuild: 6)
        p.encryption = .notSupported
        p.instance = "MSSQLServer"
        p.threadID = 42
        p.mars = false
        p.fedAuthRequired = 1
        let payload = encode { p.write(into: &$0) }
        let req = DumpTextRenderer.render(message: TDSMessage(type: .prelogin, payload: payload), direction: .clientToProxy, at: t0)
        #expect(req.contains("VERSION 16.0.1000.6"))
        #expect(req.contains("ENCRYPTION 0x02 NOT_SUP"))
        #expect(req.contains("INSTOPT \"MSSQLServer\""))
        #expect(req.contains("THREADID 42"))
        #expect(req.contains("MARS off"))
        #expect(req.contains("FEDAUTHREQUIRED 0x01"))
        let reply = DumpTextRenderer.render(message: TDSMessage(type: .tabularResult, payload: payload), direction: .proxyToClient, at: t0)
        #expect(reply.contains("PRELOGIN (6 options)"))
        #expect(reply.contains("TabularResult message"))

        let tm = encode { TransactionManagerRequest.beginTransaction(isolationLevel: 2, name: "tx1").write(into: &$0) }
        let tmText = DumpTextRenderer.render(message: TDSMessage(type: .transactionManager, payload: tm), direction: .proxyToBackend, at: t0)
        #expect(tmText.contains("TRANSACTION MANAGER TM_BEGIN_XACT"))
        #expect(tmText.contains("isolation level: 2 READ COMMITTED"))
        #expect(tmText.contains("\"tx1\""))
        let att = DumpTextRenderer.render(message: TDSMessage(type: .attention, payload: ByteBuffer()), direction: .clientToProxy, at: t0)
        #expect(att.contains("ATTENTION"))
        let tok = encode { FedAuthTokenMessage(token: "eyJhbGciOi.secret.jwt").write(into: &$0) }
        let tokText = DumpTextRenderer.render(message: TDSMessage(type: .federatedAuthToken, payload: tok), direction: .clientToProxy, at: t0,
                                              options: DumpTextOptions(hex: true))
        #expect(tokText.contains("FEDAUTH TOKEN: token <redacted, 42 bytes>"))
        #expect(!tokText.contains("e.y.J"))
        let sspi = DumpTextRenderer.render(message: TDSMessage(type: .sspi, payload: ByteBuffer(bytes: [0x4E, 0x54, 0x4C, 0x4D])), direction: .clientToProxy, at: t0,
                                           options: DumpTextOptions(hex: true))
        #expect(sspi.contains("SSPI: <redacted, 4 bytes>"))
        #expect(!sspi.contains("NTLM"))
    }

    @Test func hexReaderFormats() throws {
        let bytes: [UInt8] = Array(0..<40)
        let plain = DumpText.hex(bytes)
        #expect(try HexDumpReader.parse(plain) == bytes)
        let canonical = DumpText.hexDump(bytes, indent: "").joined(separator: "\n") + "\n00000028\n"
        #expect(try HexDumpReader.parse(canonical) == bytes)
        let xxd = "00000000: 0001 0203 0405 0607 0809 0a0b 0c0d 0e0f  ................\n00000010: 1011 1213 1415 1617 1819 1a1b 1c1d 1e1f  ................\n00000020: 2021 2223 2425 2627                        !\"#$%&'\n"
        #expect(try HexDumpReader.parse(xxd) == bytes)
        #expect(throws: DumpReadError.self) { try HexDumpReader.parse("hello world") }
    }
}
