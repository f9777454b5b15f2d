import NIOCore
import Testing
@testable import TDS

/// Issue 14's wire-level attacks, as unit tests: amplified PRELOGIN, oversized pre-login
/// messages, and client text that would wrap a token's length.
@Suite struct WireHardeningTests {
    /// `count` options that all point at the same six bytes (the 440 MB amplification).
    private func amplifiedPrelogin(options count: Int, token: (Int) -> UInt8 = { UInt8(0x10 + $0 % 200) }) -> [UInt8] {
        let dataOffset = count * 5 + 1
        var bytes: [UInt8] = []
        for i in 0..<count {
            bytes += [token(i), UInt8(dataOffset >> 8), UInt8(dataOffset & 0xFF), 0, 6]
        }
        return bytes + [0xFF, 16, 0, 0, 0, 0, 0]
    }

    @Test func preloginOptionCountIsCapped() throws {
        let atCap = try PreloginMessage(parsing: ByteBuffer(bytes: amplifiedPrelogin(options: PreloginMessage.maxOptions)))
        #expect(atCap.options.count == PreloginMessage.maxOptions)
        #expect(atCap.options.allSatisfy { $0.data == [16, 0, 0, 0, 0, 0] })
        let error = #expect(throws: TDSDecodingError.self) {
            try PreloginMessage(parsing: ByteBuffer(bytes: self.amplifiedPrelogin(options: 8000)))
        }
        #expect(error?.reason == "more than 32 options")
    }

    @Test func preloginOptionsAreViewsOfTheMessage() throws {
        let message = ByteBuffer(bytes: amplifiedPrelogin(options: 20))
        let parsed = try PreloginMessage(parsing: message)
        // Every option's bytes sit in the message's own storage: no copy per option.
        for option in parsed.options {
            let shared = option.bytes.withUnsafeReadableBytes { o in
                message.withUnsafeReadableBytes { m in
                    o.baseAddress! >= m.baseAddress! && o.baseAddress! + o.count <= m.baseAddress! + m.count
                }
            }
            #expect(shared)
        }
    }

    @Test func duplicateKnownPreloginOptionsAreRefused() throws {
        let twiceEncryption = amplifiedPrelogin(options: 2) { _ in PreloginOption.encryptionToken }
        let error = #expect(throws: TDSDecodingError.self) { try PreloginMessage(parsing: ByteBuffer(bytes: twiceEncryption)) }
        #expect(error?.field == "PRELOGIN.Option[0x1]")
        #expect(error?.reason == "the option appears twice")
        // Unknown tokens are kept as they come (bounded by the count cap).
        let twiceUnknown = amplifiedPrelogin(options: 2) { _ in 0x42 }
        #expect(try PreloginMessage(parsing: ByteBuffer(bytes: twiceUnknown)).options.count == 2)
    }

    private func packets(_ type: TDSPacketType, payloadSize: Int, packetSize: Int = 4096) -> ByteBuffer {
        encode { TDSMessage(type: type, payload: ByteBuffer(bytes: [UInt8](repeating: 0x41, count: payloadSize)))
            .writePackets(into: &$0, packetSize: packetSize) }
    }

    private func frame(_ wire: ByteBuffer) -> (messages: [TDSMessage], error: TDSDecodingError?) {
        var framer = TDSMessageFramer(maxMessageSize: TDSMessageCaps.clientBeforeLogin)
        let (outputs, error) = framer.receive(wire)
        return (outputs.compactMap { if case .message(let m) = $0 { return m } else { return nil } }, error)
    }

    @Test(arguments: [
        (TDSPacketType.prelogin, TDSMessageCaps.prelogin), (.login7, Login7.maxLength), (.sspi, 65_535),
        (.federatedAuthToken, TDSMessageCaps.federatedAuthToken), (.sqlBatch, 32_768), (.rpc, 32_768),
    ])
    func clientMessagesBeforeLoginAreCappedByType(type: TDSPacketType, cap: Int) {
        let atCap = frame(packets(type, payloadSize: cap))
        #expect(atCap.error == nil)
        #expect(atCap.messages.map(\.payload.readableBytes) == [cap])
        let over = frame(packets(type, payloadSize: cap + 1))
        #expect(over.messages.isEmpty)
        #expect(over.error?.reason.hasPrefix("a \(type) message reached") == true)
    }

    @Test func a200KBLogin7IsRefusedBeforeItIsBuffered() {
        var framer = TDSMessageFramer(maxMessageSize: TDSMessageCaps.clientBeforeLogin)
        let (outputs, error) = framer.receive(packets(.login7, payloadSize: 200_000, packetSize: 32_768))
        #expect(outputs.isEmpty)
        #expect(error?.reason == "a Login7 message reached 163800 bytes, more than the 131071 allowed", "refused at the fifth 32 KiB packet")
        #expect(framer.pendingMessageBytes == 0)
        #expect(framer.bufferedBytes == 0)
    }

    @Test func aFailedStreamDropsWhatFollows() {
        var framer = TDSMessageFramer(maxMessageSize: TDSMessageCaps.clientBeforeLogin)
        var wire = packets(.prelogin, payloadSize: 40)
        wire.writeBytes([0x12, 0x01, 0x00, 0x04, 0, 0, 0, 0])  // a header whose length is below 8
        let (outputs, error) = framer.receive(wire)
        #expect(outputs.count == 1, "the PRELOGIN before the bad header still arrives")
        #expect(error?.field == "TDS header.Length")
        #expect(framer.failed)
        for _ in 0..<100 {
            #expect(framer.receive(packets(.prelogin, payloadSize: 1000)).outputs.isEmpty)
        }
        #expect(framer.bufferedBytes == 0, "a dead stream holds nothing")
    }

    @Test func framingDoesNotDependOnHowBytesAreSplit() throws {
        var wire = packets(.prelogin, payloadSize: 47)
        var login = packets(.login7, payloadSize: 700, packetSize: 256)
        wire.writeBuffer(&login)
        let bytes = wire.bytes
        let whole = frame(ByteBuffer(bytes: bytes)).messages.map { ($0.type, $0.payload.bytes) }
        #expect(whole.map(\.0) == [.prelogin, .login7])
        for cut in 0...bytes.count {
            var framer = TDSMessageFramer(maxMessageSize: TDSMessageCaps.clientBeforeLogin)
            var got: [(TDSPacketType, [UInt8])] = []
            for part in [bytes.prefix(cut), bytes.dropFirst(cut)] {
                let (outputs, error) = framer.receive(ByteBuffer(bytes: part))
                #expect(error == nil)
                for case .message(let m) in outputs { got.append((m.type, m.payload.bytes)) }
            }
            #expect(got.map(\.0) == whole.map(\.0) && got.map(\.1) == whole.map(\.1), "split at \(cut)")
        }
    }

    // MARK: Tokens with checked lengths

    private func parseOne(_ token: TDSToken) throws -> (TDSToken, Int) {
        let bytes = encode { token.write(into: &$0) }
        let tokens = try TDSTokenParser.parseAll(bytes)
        #expect(tokens.count == 1)
        return (tokens[0], bytes.readableBytes)
    }

    @Test func anErrorEchoing40000CharactersStaysAWellFormedToken() throws {
        let name = String(repeating: "u", count: 40_000)
        let m = ServerMessage(number: 18456, severity: 14, message: "Login failed for user '\(name)'.", serverName: "tdsgate")
        let (token, size) = try parseOne(.error(m))
        guard case .error(let back) = token else { Issue.record("not an ERROR: \(token)"); return }
        #expect(size <= 3 + Int(UInt16.max))
        #expect(back.number == 18456 && back.serverName == "tdsgate" && back.lineNumber == 1)
        #expect(back.message.hasPrefix("Login failed for user 'uuu"))
        #expect(back.message.hasSuffix("…"))
        #expect(back.message.utf16.count == (65_535 - 14 - 2 * 7) / 2)
    }

    @Test func longNamesAreCutAtTheirFieldsAndNeverSplitASurrogatePair() throws {
        // 254 units then a pair: cutting at 255 would leave half of it.
        let server = String(repeating: "s", count: 254) + "😀"
        let m = ServerMessage(number: 1, severity: 16, message: String(repeating: "😀", count: 40_000), serverName: server,
                              procedureName: String(repeating: "p", count: 1000))
        let (token, _) = try parseOne(.info(m))
        guard case .info(let back) = token else { Issue.record("not an INFO: \(token)"); return }
        #expect(back.serverName == String(repeating: "s", count: 254))
        #expect(back.procedureName == String(repeating: "p", count: 255))
        #expect(!back.message.contains("\u{FFFD}"), "no half surrogate pair")
        #expect(back.message.hasSuffix("…"))
    }

    @Test func anOversizedU16TokenIsCutNotWrapped() throws {
        let (token, size) = try parseOne(.sspi([UInt8](repeating: 0xAB, count: 70_000)))
        #expect(size == 3 + 65_535)
        #expect(token == .sspi([UInt8](repeating: 0xAB, count: 65_535)))
        let other = encode { TDSToken.other(type: TDSTokenType.order, data: [UInt8](repeating: 1, count: 70_000)).write(into: &$0) }
        #expect(other.readableBytes == 3 + 65_535)
    }

    // MARK: Client text echoed back

    @Test func clientTextIsCutAndEscapedForEchoing() {
        #expect(ClientText.echo(String(repeating: "x", count: 40_000)) == String(repeating: "x", count: 128) + "…")
        #expect(ClientText.echo("bob") == "bob")
        #expect(ClientText.echo(String(repeating: "é", count: 128)) == String(repeating: "é", count: 128))
        #expect(ClientText.echo("bob\n2026-01-01 INFO forged") == "bob\\n2026-01-01 INFO forged")
        #expect(ClientText.echo("a\r\tb\u{0}c\u{7F}\u{85}") == "a\\r\\tb\\u{0}c\\u{7f}\\u{85}")
        #expect(ClientText.echo("admin\u{202E}nimda") == "admin\\u{202e}nimda")
        #expect(ClientText.echo("line\u{2028}sep") == "line\\u{2028}sep")
        #expect(ClientText.escapingControls(#"say "hi" \ bye"#, escapeBackslash: true, escapeQuote: true) == #"say \"hi\" \\ bye"#)
    }
}
