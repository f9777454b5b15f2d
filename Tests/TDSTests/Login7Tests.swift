import NIOCore
import Testing
@testable import TDS

func sampleLogin7(token: String? = nil) -> Login7 {
    var l = Login7(
        tdsVersion: 0x7400_0004, packetSize: 8000, clientProgramVersion: 0x1234_5678, clientPID: 4242,
        connectionID: 0, optionFlags1: 0xE0, optionFlags2: 0x03, typeFlags: 0x20, optionFlags3: 0x10,
        clientTimeZone: -120, clientLCID: 0x0409, hostName: "client-host", userName: "alice",
        password: "S3cret!é", appName: "tdsgate-test", serverName: "srv.database.windows.net",
        clientInterfaceName: "ODBC", language: "us_english", database: "salesdb", attachDBFile: "",
        changePassword: "", clientID: [1, 2, 3, 4, 5, 6], sspi: [],
        features: [
            Login7Feature(id: Login7Feature.userAgent, data: Array("{\"driver\":\"x\"}".utf8)),
            Login7Feature(id: Login7Feature.sessionRecovery, data: []),
            Login7Feature(id: Login7Feature.utf8Support, data: [1]),
        ])
    if let token {
        l.userName = ""
        l.password = ""
        l.features.insert(
            Login7Feature(id: Login7Feature.fedAuth,
                          data: Login7FedAuth.securityToken(token: token, echo: true, nonce: nil).featureData), at: 2)
    }
    return l
}

func fakeJWT(length: Int) -> String {
    let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    var rng = SplitMix64(seed: UInt64(length))
    var s = "eyJhbGciOiJSUzI1NiJ9."
    while s.count < length { s.append(alphabet[Int(rng.next() % UInt64(alphabet.count))]) }
    return s
}

@Suite struct Login7Tests {
    @Test func passwordObfuscationKnownVector() {
        // "SQL" = 53 00 51 00 4C 00; swap nibbles: 35 00 15 00 C4 00; XOR A5: 90 A5 B0 A5 61 A5.
        #expect(Login7.obfuscate("SQL") == [0x90, 0xA5, 0xB0, 0xA5, 0x61, 0xA5])
        #expect(Login7.deobfuscate([0x90, 0xA5, 0xB0, 0xA5, 0x61, 0xA5]) == "SQL")
        let all = (0...255).map { UInt8($0) }
        #expect(Login7.deobfuscate(bytes: Login7.obfuscate(bytes: all)) == all)
    }

    @Test func canonicalLayout() throws {
        let l = sampleLogin7()
        let b = encode { l.write(into: &$0) }
        let bytes = b.bytes
        func u16(_ i: Int) -> Int { Int(bytes[i]) | Int(bytes[i + 1]) << 8 }
        func u32(_ i: Int) -> Int { u16(i) | u16(i + 2) << 16 }
        #expect(u32(0) == bytes.count, "Length")
        #expect(u32(4) == 0x7400_0004)
        #expect(u16(36) == 94, "HostName right after the fixed part")
        #expect(u16(38) == "client-host".utf16.count)
        #expect(bytes[27] & 0x10 != 0, "fExtension set")
        #expect(bytes[26] == 0x20, "ReadOnlyIntent")
        // Extension pointer -> FeatureExt block at the end, closed by 0xFF.
        let ext = u16(56)
        #expect(u16(58) == 4)
        let block = u32(ext)
        #expect(bytes[block] == Login7Feature.userAgent)
        #expect(bytes.last == 0xFF)
        // Password obfuscated on the wire.
        let pw = u16(44)
        #expect(Array(bytes[pw..<(pw + 6)]) == Login7.obfuscate("S3c"))
        #expect(Array(bytes[72..<78]) == [1, 2, 3, 4, 5, 6])
    }

    @Test func roundTripIsExactAndEqual() throws {
        let l = sampleLogin7()
        let first = encode { l.write(into: &$0) }
        let parsed = try Login7(parsing: first)
        #expect(parsed == l)
        #expect(parsed.password == "S3cret!é")
        #expect(parsed.readOnlyIntent)
        #expect(parsed.features.map(\.id) == [0x10, 0x01, 0x0A])
        #expect(encode { parsed.write(into: &$0) }.bytes == first.bytes)
    }

    @Test func multiPacketLoginWithTwoKilobyteJWT() throws {
        let token = fakeJWT(length: 2048)
        let l = sampleLogin7(token: token)
        let payload = encode { l.write(into: &$0) }
        #expect(payload.readableBytes > 4096)
        let wire = encode { TDSMessage(type: .login7, payload: payload).writePackets(into: &$0, packetSize: 1024) }
        var b = wire
        var assembler = TDSMessageAssembler(maxMessageSize: Login7.maxLength)
        var message: TDSMessage?
        var count = 0
        while let p = try TDSPacket.read(from: &b, maxPacketSize: 1024) {
            count += 1
            message = try assembler.append(p)
        }
        #expect(count == (payload.readableBytes + 1015) / 1016)
        let m = try #require(message)
        let parsed = try Login7(parsing: m.payload)
        #expect(parsed.fedAuth == .securityToken(token: token, echo: true, nonce: nil))
        #expect(parsed.userName.isEmpty && parsed.password.isEmpty)
        #expect(parsed.features.map(\.id) == [0x10, 0x01, 0x02, 0x0A])
        #expect(encode { parsed.write(into: &$0) }.bytes == payload.bytes)
    }

    @Test func sspiAndIntegratedSecurity() throws {
        var l = sampleLogin7()
        l.integratedSecurity = true
        l.userName = ""
        l.password = ""
        l.sspi = (0..<300).map { UInt8(truncatingIfNeeded: $0 * 7) }
        let b = encode { l.write(into: &$0) }
        let parsed = try Login7(parsing: b)
        #expect(parsed.integratedSecurity)
        #expect(parsed.sspi == l.sspi)
        #expect(parsed.optionFlags2 & 0x80 != 0)

        // SSPI blobs of 64 KiB or more travel in cbSSPILong.
        l.sspi = [UInt8](repeating: 0x5A, count: 70000)
        let big = encode { l.write(into: &$0) }
        let bytes = big.bytes
        #expect(bytes[80] == 0xFF && bytes[81] == 0xFF)
        #expect(try Login7(parsing: big).sspi.count == 70000)
    }

    @Test func fedAuthFeatureData() throws {
        let nonce = [UInt8](repeating: 0xAB, count: 32)
        let st = Login7FedAuth.securityToken(token: "tok", echo: false, nonce: nonce)
        #expect(st.featureData.first == 0x02)
        #expect(Array(st.featureData[1..<5]) == [6, 0, 0, 0])
        #expect(try Login7FedAuth(featureData: st.featureData) == st)
        let msal = Login7FedAuth.msal(workflow: 0x03, echo: true)
        #expect(msal.featureData == [0x05, 0x03])
        #expect(try Login7FedAuth(featureData: msal.featureData) == msal)
        #expect(throws: TDSDecodingError.self) { try Login7FedAuth(featureData: [0x02, 0x10, 0, 0, 0, 1]) }
        #expect(throws: TDSDecodingError.self) { try Login7FedAuth(featureData: [0x02, 0x02, 0, 0, 0, 1, 0, 9]) }
        #expect(throws: TDSDecodingError.self) { try Login7FedAuth(featureData: [0x07]) }
    }

    @Test func replacingCredentialsKeepsEverythingElse() throws {
        var original = sampleLogin7()
        original.integratedSecurity = true
        original.sspi = [1, 2, 3]
        original.features.insert(Login7Feature(id: Login7Feature.fedAuth, data: Login7FedAuth.msal(workflow: 2, echo: true).featureData), at: 1)
        let parsedOriginal = try Login7(parsing: encode { original.write(into: &$0) })
        let nonce = [UInt8](repeating: 0x11, count: 32)
        let replaced = parsedOriginal.replacingCredentials(accessToken: "eyJ0b2tlbiJ9", echo: true, nonce: nonce)
        let reparsed = try Login7(parsing: encode { replaced.write(into: &$0) })
        #expect(reparsed.userName == "")
        #expect(reparsed.password == "")
        #expect(reparsed.sspi.isEmpty)
        #expect(!reparsed.integratedSecurity)
        #expect(reparsed.hasFeatureExtension)
        #expect(reparsed.fedAuth == .securityToken(token: "eyJ0b2tlbiJ9", echo: true, nonce: nonce))
        #expect(reparsed.features.map(\.id) == [0x10, 0x02, 0x01, 0x0A], "FEDAUTH replaced in place")
        var expected = parsedOriginal
        expected.userName = ""
        expected.password = ""
        expected.sspi = []
        expected.integratedSecurity = false
        expected.features[1] = reparsed.features[1]
        #expect(reparsed == expected)
    }

    @Test func replacingCredentialsAppendsFedAuthWhenMissing() throws {
        let l = Login7(hostName: "h", userName: "u", password: "p")
        let r = l.replacingCredentials(accessToken: "t", echo: false, nonce: nil)
        #expect(r.features.map(\.id) == [Login7Feature.fedAuth])
        let parsed = try Login7(parsing: encode { r.write(into: &$0) })
        #expect(parsed.fedAuth == .securityToken(token: "t", echo: false, nonce: nil))
        #expect(parsed.optionFlags3 & 0x10 != 0)
    }

    @Test func realDriverLoginsKeepTheirLayoutWhenEdited() throws {
        for fixture in Fixture.all {
            var assembler = TDSMessageAssembler(maxMessageSize: 1 << 20)
            for raw in fixture.packets {
                var b = ByteBuffer(bytes: raw)
                guard let p = try TDSPacket.read(from: &b, maxPacketSize: 32767), p.header.type == .login7,
                      let m = try assembler.append(p) else { continue }
                let login = try Login7(parsing: m.payload)
                // Replace credentials, re-encode, parse: all else stays.
                let r = login.replacingCredentials(accessToken: fakeJWT(length: 1500), echo: true, nonce: nil)
                let out = encode { r.write(into: &$0) }
                let back = try Login7(parsing: out)
                #expect(back == r, "\(fixture.file)")
                #expect(back.appName == login.appName && back.hostName == login.hostName && back.database == login.database)
                #expect(back.features.filter { $0.id != 2 } == login.features.filter { $0.id != 2 })
                // Editing one field keeps the rest of the driver's bytes in order.
                var edited = login
                edited.database = "otherdb"
                let editedBack = try Login7(parsing: encode { edited.write(into: &$0) })
                #expect(editedBack == edited, "\(fixture.file)")
            }
        }
    }

    @Test func preTDS72LoginUses86ByteFixedPart() throws {
        // TDS 7.1: no ChangePassword or cbSSPILong, variable data from offset 86.
        var b = ByteBuffer()
        let host = TDSString.encodeUTF16LE("h1")
        b.tdsWriteU32LE(UInt32(86 + host.count))
        b.tdsWriteU32LE(0x7100_0001)
        for _ in 0..<4 { b.tdsWriteU32LE(0) }
        b.writeBytes([0xE0, 0x03, 0x00, 0x00])
        b.tdsWriteI32LE(0)
        b.tdsWriteU32LE(0x409)
        b.tdsWriteU16LE(86)
        b.tdsWriteU16LE(2)
        for _ in 0..<8 {
            b.tdsWriteU16LE(90)
            b.tdsWriteU16LE(0)
        }
        b.writeBytes([0, 0, 0, 0, 0, 0])
        for _ in 0..<2 {
            b.tdsWriteU16LE(90)
            b.tdsWriteU16LE(0)
        }
        #expect(b.readableBytes == 86)
        b.writeBytes(host)
        let l = try Login7(parsing: b)
        #expect(l.hostName == "h1")
        #expect(l.tdsVersion == 0x7100_0001)
        #expect(encode { l.write(into: &$0) }.bytes == b.bytes)
    }

    @Test func overlappingFieldsFallBackToCanonicalLayout() throws {
        var l = Login7(hostName: "same", appName: "same")
        var bytes = encode { l.write(into: &$0) }.bytes
        // Point AppName at HostName's data.
        bytes[48] = bytes[36]
        bytes[49] = bytes[37]
        let parsed = try Login7(parsing: ByteBuffer(bytes: bytes))
        #expect(parsed.appName == "same" && parsed.hostName == "same")
        l.features = []
        let again = try Login7(parsing: encode { parsed.write(into: &$0) })
        #expect(again == parsed)
    }

    @Test func malformedLoginsNameTheField() {
        var bytes = encode { sampleLogin7().write(into: &$0) }.bytes
        bytes[36] = 0xF0
        bytes[37] = 0x0F
        do {
            _ = try Login7(parsing: ByteBuffer(bytes: bytes))
            Issue.record("expected an error")
        } catch let e as TDSDecodingError {
            #expect(e.field == "LOGIN7.HostName")
            #expect(e.reason.contains("exceeds message length"))
        } catch {
            Issue.record("unexpected \(error)")
        }
        #expect(throws: TDSDecodingError.self) { try Login7(parsing: ByteBuffer(bytes: Array(bytes.prefix(60)))) }
        var short = encode { sampleLogin7().write(into: &$0) }.bytes
        short[0] = 50
        #expect(throws: TDSDecodingError.self) { try Login7(parsing: ByteBuffer(bytes: short)) }
    }
}
