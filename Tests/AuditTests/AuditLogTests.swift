import Foundation
import Testing

@testable import Audit

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

private func temporaryPath(_ name: String) -> String {
    NSTemporaryDirectory() + "audittest-" + UUID().uuidString + "/" + name
}

private func jsonLines(_ path: String) throws -> [[String: Any]] {
    let text = try String(contentsOfFile: path, encoding: .utf8)
    return try text.split(separator: "\n").map {
        try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
    }
}

/// A loopback socket for the test's end of the syslog exchange.
final class LoopbackListener {
    let fd: Int32
    private(set) var port: Int

    init(tcp: Bool, port requested: Int = 0) throws {
        #if canImport(Darwin)
        let type = tcp ? SOCK_STREAM : SOCK_DGRAM
        #else
        let type = Int32(tcp ? SOCK_STREAM.rawValue : SOCK_DGRAM.rawValue)
        #endif
        let fd = socket(AF_INET, type, 0)
        self.fd = fd
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(requested).bigEndian
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        try #require(bound == 0)
        if tcp { try #require(listen(fd, 4) == 0) }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    /// Waits up to `timeout` seconds for `fd` to be readable.
    static func readable(_ fd: Int32, timeout: Double) -> Bool {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&pfd, 1, Int32(timeout * 1000)) > 0
    }

    func receiveDatagram(timeout: Double = 5) -> [UInt8]? {
        guard Self.readable(fd, timeout: timeout) else { return nil }
        var buffer = [UInt8](repeating: 0, count: 65536)
        let n = recv(fd, &buffer, buffer.count, 0)
        return n < 0 ? nil : Array(buffer[..<n])
    }

    func accept(timeout: Double = 5) -> Int32? {
        guard Self.readable(fd, timeout: timeout) else { return nil }
        #if canImport(Darwin)
        let client = Darwin.accept(fd, nil, nil)
        #else
        let client = Glibc.accept(fd, nil, nil)
        #endif
        return client < 0 ? nil : client
    }

    /// Reads RFC 6587 octet-counted frames until `count` frames arrived or time runs out.
    static func readFrames(_ conn: Int32, count: Int, timeout: Double = 5) -> [String] {
        var buffer: [UInt8] = []
        var frames: [String] = []
        let deadline = Date(timeIntervalSinceNow: timeout)
        while frames.count < count, Date() < deadline {
            // Parse what we have.
            while let space = buffer.firstIndex(of: 32), let length = Int(String(decoding: buffer[..<space], as: UTF8.self)),
                buffer.count >= space + 1 + length
            {
                frames.append(String(decoding: buffer[(space + 1)..<(space + 1 + length)], as: UTF8.self))
                buffer.removeFirst(space + 1 + length)
            }
            if frames.count >= count { break }
            guard readable(conn, timeout: 0.2) else { continue }
            var chunk = [UInt8](repeating: 0, count: 65536)
            let n = recv(conn, &chunk, chunk.count, 0)
            if n <= 0 { break }
            buffer.append(contentsOf: chunk[..<n])
        }
        return frames
    }

    deinit { close(fd) }
}

/// `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - MSG`
struct SyslogFrame {
    var pri: Int
    var timestamp: String
    var hostname: String
    var appName: String
    var procID: String
    var msgID: String
    var message: String

    init?(_ text: String) {
        guard text.hasPrefix("<"), let close = text.firstIndex(of: ">"),
            let pri = Int(text[text.index(after: text.startIndex)..<close])
        else { return nil }
        let parts = text[text.index(after: close)...].split(separator: " ", maxSplits: 7, omittingEmptySubsequences: false)
        guard parts.count == 8, parts[0] == "1", parts[6] == "-" else { return nil }
        self.pri = pri
        timestamp = String(parts[1])
        hostname = String(parts[2])
        appName = String(parts[3])
        procID = String(parts[4])
        msgID = String(parts[5])
        message = String(parts[7])
    }
}

@Suite struct AuditLogTests {
    @Test func fileDestinationWritesJSONLinesAndSkipsStatementsWhenOff() async throws {
        let path = temporaryPath("audit.jsonl")
        let log = try AuditLog(destination: .file(path: path, maxBytes: 1 << 20), statements: false)
        #expect(!log.statementsEnabled)
        #expect(log.record(fullyPopulatedEvents[0]))
        #expect(!log.record(.sqlBatch(session: "s-1", text: "SELECT secret_stuff")))
        #expect(log.record(fullyPopulatedEvents[6]))
        await log.close()
        await log.close()
        let lines = try jsonLines(path)
        #expect(lines.map { $0["event"] as? String } == ["session_start", "session_end"])
        #expect(log.stats.written == 2 && log.stats.dropped == 0 && log.stats.recorded == 2)
        #expect(!log.record(fullyPopulatedEvents[0]))
        #expect(log.stats.dropped == 1)
    }

    @Test func dropsAreReportedInTheTrail() async throws {
        let path = temporaryPath("audit.jsonl")
        let log = try AuditLog(destination: .file(path: path, maxBytes: 64 << 20), statements: true, queueCapacity: 2)
        let total = 20_000
        var accepted = 0
        let clock = ContinuousClock()
        var slow = 0
        for i in 0..<total {
            let event = AuditEvent.sqlBatch(session: "s\(i)", text: "SELECT \(i)")
            let started = clock.now
            if log.record(event) { accepted += 1 }
            if started.duration(to: clock.now) > .milliseconds(2) { slow += 1 }
        }
        await log.close()
        // A scheduler hiccup on a loaded 2-core machine may hit a few calls; nothing more.
        #expect(slow <= total / 100, "\(slow) record() calls took over 2 ms")
        let stats = log.stats
        #expect(stats.dropped > 0)
        #expect(stats.dropped + accepted == total)
        let lines = try jsonLines(path)
        let batches = lines.filter { $0["event"] as? String == "sql_batch" }
        let notices = lines.filter { $0["event"] as? String == "audit_dropped" }
        #expect(batches.count == accepted)
        #expect(notices.reduce(0) { $0 + ($1["dropped_events"] as? Int ?? 0) } == stats.dropped)
        #expect(notices.allSatisfy { $0["reason"] as? String == "queue_full" })
    }

    @Test func syslogOverUDP() async throws {
        let listener = try LoopbackListener(tcp: false)
        let config = SyslogConfiguration(
            host: "127.0.0.1", port: listener.port, transport: .udp, facility: .local3, appName: "tdsgate",
            hostname: "gw-1")
        let log = try AuditLog(destination: .syslog(config), statements: true)
        log.record(fullyPopulatedEvents[1])  // denied -> notice
        log.record(.sqlBatch(session: "s-1", text: String(repeating: "é", count: 6000), maxLength: 10_000))
        await log.close()

        let first = try #require(listener.receiveDatagram())
        let frame = try #require(SyslogFrame(String(decoding: first, as: UTF8.self)))
        #expect(frame.pri == 19 * 8 + 5)
        #expect(frame.hostname == "gw-1")
        #expect(frame.appName == "tdsgate")
        #expect(frame.procID == String(getpid()))
        #expect(frame.msgID == "policy_decision")
        #expect(frame.timestamp.hasSuffix("Z") && frame.timestamp.count == 24)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(frame.message.utf8)) as? [String: Any])
        #expect(object["decision"] as? String == "denied")
        #expect(object["rule"] as? String == "default deny")

        let second = try #require(listener.receiveDatagram())
        #expect(second.count <= 8192)
        let text = String(decoding: second, as: UTF8.self)
        #expect(text.hasSuffix(SyslogConfiguration.maxDatagramMarker))
        #expect(!text.contains("\u{FFFD}"))  // cut at a character boundary
        #expect(SyslogFrame(text)?.pri == 19 * 8 + 6)
        #expect(SyslogFrame(text)?.msgID == "sql_batch")
    }

    @Test func syslogOverTCPWithOctetCounting() async throws {
        let listener = try LoopbackListener(tcp: true)
        let config = SyslogConfiguration(host: "127.0.0.1", port: listener.port, transport: .tcp, facility: .authpriv)
        let log = try AuditLog(destination: .syslog(config), statements: true)
        log.record(fullyPopulatedEvents[0])
        log.record(.loginOutcome(session: "s-1", outcome: .refused, errorNumber: 18456))
        log.record(.sqlBatch(session: "s-1", text: "line1\nline2 \"quoted\" 😀"))
        await log.flush()
        let conn = try #require(listener.accept())
        defer { close(conn) }
        let frames = LoopbackListener.readFrames(conn, count: 3)
        await log.close()
        try #require(frames.count == 3)
        let parsed = frames.compactMap(SyslogFrame.init)
        #expect(parsed.map(\.msgID) == ["session_start", "login_outcome", "sql_batch"])
        #expect(parsed.map(\.pri) == [10 * 8 + 6, 10 * 8 + 5, 10 * 8 + 6])
        let batch = try #require(try JSONSerialization.jsonObject(with: Data(parsed[2].message.utf8)) as? [String: Any])
        #expect(batch["text"] as? String == "line1\nline2 \"quoted\" 😀")
        #expect(log.stats.written == 3)
    }

    @Test func syslogTCPDownCountsDropsWithoutBlockingThenRecovers() async throws {
        // Reserve a port, then close it so nothing listens there.
        let port = try LoopbackListener(tcp: true).port
        let config = SyslogConfiguration(
            host: "127.0.0.1", port: port, transport: .tcp, timeout: .milliseconds(200),
            minBackoff: .milliseconds(50), maxBackoff: .milliseconds(100))
        let log = try AuditLog(destination: .syslog(config), statements: true)
        let clock = ContinuousClock()
        let started = clock.now
        for i in 0..<100 { log.record(.drillStart(cluster: "c\(i)", mode: "m")) }
        #expect(started.duration(to: clock.now) < .milliseconds(50))
        await log.flush()
        let stats = log.stats
        #expect(stats.dropped == 100)
        #expect(stats.written == 0)
        #expect(stats.sinkErrors >= 1)

        // The collector comes back: the next event gets through after an audit_dropped.
        let listener = try LoopbackListener(tcp: true, port: port)
        try await Task.sleep(for: .milliseconds(150))
        log.record(.drillEnd(cluster: "c", mode: "m", outcome: .passed))
        await log.flush()
        let conn = try #require(listener.accept())
        defer { close(conn) }
        let frames = LoopbackListener.readFrames(conn, count: 2).compactMap(SyslogFrame.init)
        await log.close()
        try #require(frames.count == 2)
        #expect(frames[0].msgID == "audit_dropped")
        let notice = try #require(try JSONSerialization.jsonObject(with: Data(frames[0].message.utf8)) as? [String: Any])
        #expect(notice["dropped_events"] as? Int == 100)
        #expect(notice["reason"] as? String == "disconnected")
        #expect(frames[1].msgID == "drill_end")
        #expect(log.stats.written == 1)
    }
}
