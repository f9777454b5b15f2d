import NIOCore
import Testing
@testable import TDS

/// Hostile input: every truncation and 2000 seeded corruptions per parser must either parse or
/// throw TDSDecodingError; a trap would kill the test process.
@Suite struct FuzzTests {
    private func fixtureMessages(_ type: TDSPacketType) -> [[UInt8]] {
        var out: [[UInt8]] = []
        for fixture in Fixture.all.prefix(8) {
            var assembler = TDSMessageAssembler(maxMessageSize: 1 << 20)
            for raw in fixture.packets {
                var b = ByteBuffer(bytes: raw)
                guard let p = try? TDSPacket.read(from: &b, maxPacketSize: 32767),
                      let m = try? assembler.append(p), m.type == type else { continue }
                out.append(m.payload.bytes)
            }
        }
        return out
    }

    private func check(_ r: (ok: Int, rejected: Int, foreign: [String]), _ what: String) {
        #expect(r.foreign.isEmpty, "\(what): non-TDSDecodingError errors \(r.foreign.prefix(3))")
        #expect(r.rejected > 0, "\(what): corruption never detected")
    }

    @Test func prelogin() {
        var inputs = fixtureMessages(.prelogin).prefix(3).map { $0 }
        var p = PreloginMessage()
        p.version = PreloginVersion(major: 1, minor: 2, build: 3)
        p.encryption = .on
        p.nonce = [UInt8](repeating: 1, count: 32)
        inputs.append(encode { p.write(into: &$0) }.bytes)
        for (i, bytes) in inputs.enumerated() {
            check(hammer(bytes, seed: 100 + UInt64(i)) { b in
                let m = try PreloginMessage(parsing: b)
                _ = (m.version, m.encryption, m.instance, m.threadID, m.mars, m.traceID, m.fedAuthRequired, m.nonce)
                #expect(try PreloginMessage(parsing: encode { m.write(into: &$0) }) == m)
            }, "PRELOGIN \(i)")
        }
    }

    @Test func login7() {
        var inputs = fixtureMessages(.login7)
        inputs.append(encode { sampleLogin7(token: fakeJWT(length: 2000)).write(into: &$0) }.bytes)
        for (i, bytes) in inputs.enumerated() {
            check(hammer(bytes, seed: 200 + UInt64(i), iterations: bytes.count > 5000 ? 500 : 2000, truncate: bytes.count < 5000) { b in
                let l = try Login7(parsing: b)
                _ = l.fedAuth
                let again = try Login7(parsing: encode { l.write(into: &$0) })
                #expect(again == l)
                let r = l.replacingCredentials(accessToken: "t", echo: true, nonce: nil)
                #expect(try Login7(parsing: encode { r.write(into: &$0) }) == r)
            }, "LOGIN7 \(i)")
        }
    }

    @Test func requests() {
        for (i, bytes) in fixtureMessages(.sqlBatch).prefix(3).enumerated() {
            check(hammer(bytes, seed: 300 + UInt64(i)) { b in
                let s = try SQLBatch(parsing: b)
                _ = encode { s.write(into: &$0) }
            }, "SQLBatch \(i)")
        }
        var rpcs = fixtureMessages(.rpc).prefix(4).map { $0 }
        rpcs.append(encode {
            RPCRequest(procedure: .spExecuteSQL, parameters: zip(allTypesColumns, smallValues).map {
                RPCParameter(name: "@" + $0.name, type: $0.type, value: $1)
            }).write(into: &$0)
        }.bytes)
        for (i, bytes) in rpcs.enumerated() {
            check(hammer(bytes, seed: 400 + UInt64(i), truncate: bytes.count < 5000) { b in
                let r = try RPCRequest(parsing: b)
                // Invalid UTF-16 in names decodes to U+FFFD, so only the value must survive.
                let again = try RPCRequest(parsing: encode { r.write(into: &$0) })
                #expect(again.procedure == r.procedure)
                #expect(again.parameters.count == r.parameters.count)
                for (x, y) in zip(again.parameters, r.parameters) where x != y {
                    #expect(x == y)
                }
            }, "RPC \(i)")
        }
        for (i, bytes) in fixtureMessages(.transactionManager).prefix(2).enumerated() {
            check(hammer(bytes, seed: 500 + UInt64(i)) { b in
                let t = try TransactionManagerRequest(parsing: b)
                _ = (t.transactionName, t.isolationLevel, t.beginsNewTransaction, t.newTransaction)
            }, "TM \(i)")
        }
        let token = encode { FedAuthTokenMessage(token: "abcdef", nonce: [UInt8](repeating: 1, count: 32)).write(into: &$0) }.bytes
        check(hammer(token, seed: 600) { b in _ = try FedAuthTokenMessage(parsing: b) }, "FEDAUTHTOKEN")
        let feature = Login7FedAuth.securityToken(token: "abc", echo: true, nonce: [UInt8](repeating: 2, count: 32)).featureData
        check(hammer(feature, seed: 601) { b in _ = try Login7FedAuth(featureData: b.bytes) }, "FEDAUTH feature")
    }

    /// The all-types row with short strings, so thousands of iterations stay fast.
    private var smallValues: [TDSValue] {
        allTypesValues.map { v in
            switch v {
            case .string(let s): return .string(String(s.prefix(40)))
            case .bytes(let b): return .bytes(Array(b.prefix(40)))
            default: return v
            }
        }
    }

    @Test func tokenStreams() {
        let smallValues = self.smallValues
        var w = TDSTokenWriter()
        let allTypes = encode {
            w.write([.colMetadata(allTypesColumns), .row(smallValues), .nbcRow(smallValues.map { _ in .null }),
                     .done(Done())], into: &$0)
        }.bytes
        let login = encode {
            var w = TDSTokenWriter()
            w.write([
                .envChange(.database(new: "db", old: "master")), .info(ServerMessage(number: 5701, severity: 0, message: "m")),
                .envChange(.collation(new: TDSCollation.default, old: [])), .envChange(.packetSize(new: "8000", old: "4096")),
                .loginAck(LoginAck()), .envChange(.routing(protocol: 0, port: 11000, server: "w")),
                .featureExtAck([FeatureAck(id: 2), FeatureAck(id: 8, data: [1])]),
                .fedAuthInfo(FedAuthInfo(stsURL: "https://sts", spn: "https://db")), .done(Done()),
            ], into: &$0)
        }.bytes
        for (i, bytes) in [sampleReply().bytes, login, allTypes].enumerated() {
            check(hammer(bytes, seed: 700 + UInt64(i), truncate: bytes.count < 3000) { b in
                var parser = TDSTokenParser()
                var buffer = b
                let tokens = try parser.parse(&buffer)
                var writer = TDSTokenWriter()
                _ = encode { writer.write(tokens, into: &$0) }
            }, "tokens \(i)")
            check(hammer(bytes, seed: 800 + UInt64(i), truncate: bytes.count < 3000) { b in
                var s = TDSTokenScanner()
                var buffer = b
                _ = try s.scan(&buffer)
            }, "scanner \(i)")
        }
    }

    @Test func packetFraming() {
        let wire = encode {
            TDSMessage(type: .login7, payload: ByteBuffer(bytes: [UInt8](repeating: 5, count: 300)))
                .writePackets(into: &$0, packetSize: 64)
        }.bytes
        let r = hammer(wire, seed: 900) { b in
            var buffer = b
            var assembler = TDSMessageAssembler(maxMessageSize: 250)
            while let p = try TDSPacket.read(from: &buffer, maxPacketSize: 64) {
                _ = try assembler.append(p)
            }
        }
        check(r, "packets")
    }
}
