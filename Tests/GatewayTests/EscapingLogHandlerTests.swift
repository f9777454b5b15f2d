import Foundation
import Logging
import Testing
@testable import Gateway

/// What StreamLogHandler prints, collected.
private final class Lines: TextOutputStream, @unchecked Sendable {
    private let lock = NSLock()
    private var text = ""
    func write(_ string: String) { lock.withLock { text += string } }
    var lines: [Substring] { lock.withLock { text.split(separator: "\n", omittingEmptySubsequences: false).dropLast() } }
}

@Suite struct EscapingLogHandlerTests {
    private func logger(_ out: Lines) -> Logger {
        let handler = EscapingLogHandler(wrapping: StreamLogHandler(label: "tdsgate", stream: out, metadataProvider: nil), metadataProvider: nil)
        return Logger(label: "tdsgate") { _ in handler }
    }

    @Test func aUserNameWithANewlineForgesNoLine() throws {
        let out = Lines()
        let log = logger(out)
        let forged = "bob\n2026-01-01T00:00:00+0000 info tdsgate: session=1 [Gateway] session relaying"
        log.info("login refused", metadata: ["user": "\(forged)", "session": "7"])
        let lines = out.lines
        #expect(lines.count == 1)
        let line = try #require(lines.first)
        #expect(line.contains(#"user="bob\n2026-01-01T00:00:00+0000 info tdsgate: session=1 [Gateway] session relaying""#))
        #expect(line.contains(" session=7 "), "plain values stay unquoted")
        #expect(line.hasSuffix("login refused"))
    }

    @Test func theMessageAndLoggerMetadataAreEscapedToo() throws {
        let out = Lines()
        var log = logger(out)
        log[metadataKey: "app"] = "evil\r\napp"
        log.warning("reason: \("bad\nthing")", metadata: ["db": "a b=c", "empty": "", "list": .array(["x\ny", "z"])])
        let line = try #require(out.lines.first)
        #expect(out.lines.count == 1)
        #expect(line.contains(#"app="evil\r\napp""#))
        #expect(line.contains(#"db="a b=c""#))
        #expect(line.contains(#"empty="""#))
        #expect(line.contains(#"list="[\"x\\ny\", \"z\"]""#))
        #expect(line.hasSuffix(#"reason: bad\nthing"#))
    }

    @Test func quotesBackslashesAndBidiControlsCannotFakeAPair() throws {
        let out = Lines()
        logger(out).info("x", metadata: ["user": #"a" session="9"#, "host": "h\\", "name": "admin\u{202E}nimda"])
        let line = try #require(out.lines.first)
        #expect(line.contains(#"user="a\" session=\"9""#))
        #expect(line.contains(#"host="h\\""#))
        #expect(line.contains(#"name="admin\u{202e}nimda""#))
        #expect(!line.contains("\u{202E}"))
    }

    @Test func aLoggedErrorIsEscaped() throws {
        struct Failure: Error, CustomStringConvertible { var description: String { "broke\nhere" } }
        let out = Lines()
        logger(out).error("failed", error: Failure())
        #expect(out.lines.count == 1)
        #expect(try #require(out.lines.first).contains(#"error.message="broke\nhere""#))
    }

    @Test func theLevelIsTheWrappedHandlers() {
        var handler = EscapingLogHandler.standardError(label: "t")
        handler.logLevel = .debug
        #expect(handler.logLevel == .debug)
        handler[metadataKey: "k"] = "v"
        #expect(handler[metadataKey: "k"] == "v")
    }
}
