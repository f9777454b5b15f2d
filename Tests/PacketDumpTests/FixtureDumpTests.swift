import Foundation
import NIOCore
import Testing
@testable import PacketDump
@testable import TDS

@Suite struct FixtureDumpTests {
    @Test func everyFixtureDecodesWithoutFailureAndWithoutSecrets() throws {
        let files = Fixtures.hexFiles
        #expect(files.count >= 20)
        let index = Fixtures.index
        for url in files {
            let bytes = try [UInt8](Data(contentsOf: url))
            let text = try DumpFileDecoder.decode(bytes, name: url.lastPathComponent)
            #expect(!text.contains("failed to decode"), "\(url.lastPathComponent):\n\(text)")
            #expect(!text.contains(Fixtures.password), "\(url.lastPathComponent) leaks the password")
            #expect(!text.contains("TLS-encrypted"), "\(url.lastPathComponent)")

            // The original LOGIN7, decoded by the codec, names what must show and what must not.
            let msgs = messages(try Fixtures.packets(url))
            guard let login = msgs.first(where: { $0.type == .login7 }) else { continue }
            let parsed = try Login7(parsing: login.payload)
            if !parsed.userName.isEmpty { #expect(text.contains("\"\(parsed.userName)\""), "\(url.lastPathComponent)") }
            #expect(text.contains("\"\(parsed.appName)\""), "\(url.lastPathComponent)")
            if case .securityToken(let token, _, _)? = parsed.fedAuth {
                #expect(token.count > 100)
                for start in stride(from: 0, to: token.count - 24, by: max(1, token.count / 7)) {
                    let fragment = String(token.dropFirst(start).prefix(24))
                    #expect(!text.contains(fragment), "\(url.lastPathComponent) leaks a token fragment")
                }
                #expect(text.contains("token <redacted,"))
            }
            if !parsed.password.isEmpty { #expect(text.contains("password: <redacted, \(parsed.password.utf16.count * 2) bytes>")) }

            // index.json agrees on user and app names.
            if let entry = index.first(where: { ($0["file"] as? String) == url.lastPathComponent }),
               let ms = entry["messages"] as? [[String: Any]],
               let fields = ms.first(where: { ($0["type"] as? String) == "login7" })?["fields"] as? [String: Any] {
                if let user = fields["user_name"] as? String, !user.isEmpty { #expect(text.contains(user)) }
                if let app = fields["app_name"] as? String { #expect(text.contains(app)) }
            }
        }
    }

    @Test func redactingPacketsKeepsLengthsAndTheLoginStillParses() throws {
        var sawPassword = false, sawToken = false
        for url in Fixtures.hexFiles {
            let packets = try Fixtures.packets(url)
            let loginPackets = packets.filter { $0.getInteger(at: $0.readerIndex, as: UInt8.self) == 0x10 }
            guard !loginPackets.isEmpty else { continue }
            var redacted = loginPackets
            let report = SecretRedactor.redact(packets: &redacted)
            #expect(!report.failedClosed)
            #expect(redacted.map(\.readableBytes) == loginPackets.map(\.readableBytes))
            for (a, b) in zip(redacted, loginPackets) {
                #expect(a.getBytes(at: a.readerIndex, length: 8) == b.getBytes(at: b.readerIndex, length: 8))
            }
            let original = try Login7(parsing: try #require(messages(loginPackets).first).payload)
            let after = try Login7(parsing: try #require(messages(redacted).first).payload)
            #expect(after.userName == original.userName)
            #expect(after.appName == original.appName)
            #expect(after.database == original.database)
            if !original.password.isEmpty {
                sawPassword = true
                #expect(original.password == Fixtures.password)
                #expect(after.password != original.password)
                #expect(after.password.utf16.count == original.password.utf16.count)
            }
            if case .securityToken(let token, _, _)? = original.fedAuth {
                sawToken = true
                guard case .securityToken(let t2, _, _)? = after.fedAuth else {
                    Issue.record("FEDAUTH no longer parses in \(url.lastPathComponent)")
                    continue
                }
                #expect(t2.utf16.count == token.utf16.count)
                #expect(!t2.contains("eyJ"))
            }
            // Whole-message API gives the same bytes.
            var whole = try #require(messages(loginPackets).first).payload
            SecretRedactor.redact(type: .login7, payload: &whole)
            #expect(whole.readableBytes == (try #require(messages(redacted).first).payload.readableBytes))
            #expect(whole == (try #require(messages(redacted).first).payload))
        }
        #expect(sawPassword && sawToken)
    }

    @Test func unparsableLoginIsRedactedWhole() {
        var payload = ByteBuffer(bytes: Array("not a login, but Fixture-Pa55! in clear".utf8))
        let report = SecretRedactor.redact(type: .login7, payload: &payload)
        #expect(report.failedClosed)
        #expect(payload.readableBytes == 39)
        #expect(payload.readableBytesView.allSatisfy { $0 == SecretRedactor.filler })
        let text = DumpTextRenderer.render(message: TDSMessage(type: .login7, payload: ByteBuffer(bytes: Array("garbage Fixture-Pa55! garbage".utf8))),
                                           direction: .clientToProxy, at: t0, options: DumpTextOptions(hex: true))
        #expect(text.contains("treated as secret"))
        #expect(!text.contains("Fixture"))
    }

    @Test func streamingRedactorHoldsLoginUntilItsLastPacket() throws {
        let url = try #require(Fixtures.hexFiles.first { $0.lastPathComponent == "pyodbc-access-token-large.hex" })
        let packets = try Fixtures.packets(url)
        var redactor = StreamingRedactor()
        var out: [ByteBuffer] = []
        for (i, p) in packets.enumerated() {
            let ready = redactor.process(packet: p, context: UInt64(i))
            out += ready.map(\.packet)
        }
        #expect(out.count == packets.count)
        #expect(out.map(\.readableBytes) == packets.map(\.readableBytes))
        let joined = out.flatMap { $0.readableBytesView }
        let jwt = Array("eyJ".utf16.flatMap { [UInt8(truncatingIfNeeded: $0), UInt8($0 >> 8)] })
        #expect(!contains(joined, jwt))
    }
}

func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
    guard !needle.isEmpty, haystack.count >= needle.count else { return false }
    for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
        if Array(haystack[i..<(i + needle.count)]) == needle { return true }
    }
    return false
}
