import Foundation
import NIOCore
import PacketDump
import Spool
import TDS
import Testing
@testable import Gateway

/// The packet dump's writer side (DumpSink) and its pieces, without sockets.
@Suite("Packet dump mode")
struct PacketDumpModeTests {
    static let password = "Dump-Secr3t-Passw0rd!"
    static let t0: UInt64 = 1_767_323_045_000_000_000

    static func packets(_ type: TDSPacketType, _ payload: ByteBuffer, size: Int = 4096) -> [[UInt8]] {
        var out = ByteBuffer()
        TDSMessage(type: type, payload: payload).writePackets(into: &out, packetSize: size)
        var result: [[UInt8]] = []
        while out.readableBytes >= 8 {
            let length = Int(out.getInteger(at: out.readerIndex + 2, endianness: .big, as: UInt16.self)!)
            result.append(out.readBytes(length: length)!)
        }
        return result
    }

    static func encode(_ f: (inout ByteBuffer) -> Void) -> ByteBuffer {
        var b = ByteBuffer()
        f(&b)
        return b
    }

    static let clientAddresses = "127.0.0.1 14330|10.1.2.3 50000"
    static let backendAddresses = "127.0.0.1 41000|127.0.0.1 1433"

    /// Events of one session: LOGIN7 with a password on both legs, a batch, a reply.
    static func events(session: Int, batch: String = "SELECT name FROM sys.databases", flags: DumpEvent.Flags = [.text, .pcapng]) -> [[UInt8]] {
        var t = t0
        func next() -> UInt64 { t += 1_000_000; return t }
        let login = Login7(hostName: "host", userName: "app-user", password: password, appName: "dump-test", database: "appdb")
        let loginPayload = encode { login.write(into: &$0) }
        let batchPayload = encode { SQLBatch(text: batch).write(into: &$0) }
        var w = TDSTokenWriter()
        let reply = encode { b in
            w.write(.done(Done(status: [.count], rowCount: 3)), into: &b)
        }
        var out: [[UInt8]] = [DumpEvent.open(session: session, generation: 1, client: "10.1.2.3 50000", settings: flags, at: next()).encoded()]
        for (dir, addr) in [(DumpDirection.clientToProxy, clientAddresses), (.proxyToBackend, backendAddresses)] {
            for p in packets(.login7, loginPayload, size: 64) {
                out.append(DumpEvent.encodePacket(direction: dir, sid: nil, at: next(), addresses: Array(addr.utf8), packet: p))
            }
        }
        out.append(DumpEvent.identified(fields: ["app-user", "sql_login", "orders", "east", "ReadWrite", "appdb", "mi"], at: next()).encoded())
        for (dir, addr) in [(DumpDirection.clientToProxy, clientAddresses), (.proxyToBackend, backendAddresses)] {
            for p in packets(.sqlBatch, batchPayload) {
                out.append(DumpEvent.encodePacket(direction: dir, sid: nil, at: next(), addresses: Array(addr.utf8), packet: p))
            }
        }
        for (dir, addr) in [(DumpDirection.backendToProxy, backendAddresses), (.proxyToClient, clientAddresses)] {
            for p in packets(.tabularResult, reply) {
                out.append(DumpEvent.encodePacket(direction: dir, sid: nil, at: next(), addresses: Array(addr.utf8), packet: p))
            }
        }
        out.append(DumpEvent.closed(at: next()).encoded())
        return out
    }

    static func tempDir() -> String {
        let dir = NSTemporaryDirectory() + "tdsgate-dump-test-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    static func files(_ dir: String) -> [String: [UInt8]] {
        var out: [String: [UInt8]] = [:]
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? [] {
            out[name] = [UInt8](FileManager.default.contents(atPath: dir + "/" + name) ?? Data())
        }
        return out
    }

    static func contains(_ haystack: [UInt8], _ needle: [UInt8]) -> Bool {
        guard needle.count <= haystack.count, !needle.isEmpty else { return false }
        for i in 0...(haystack.count - needle.count) where haystack[i] == needle[0] {
            if Array(haystack[i..<(i + needle.count)]) == needle { return true }
        }
        return false
    }

    static func run(_ sink: DumpSink, session: Int, events: [[UInt8]]) throws {
        let key = DumpSink.sessionKey(session)
        for e in events { try sink.write(key: key, bytes: e) }
        try sink.close(key: key)
    }

    @Test func eventsRoundTrip() {
        let events: [DumpEvent] = [
            .open(session: 42, generation: 3, client: "::1 5000", settings: [.text, .hex], at: 7),
            .packet(direction: .backendToProxy, sid: 2, at: 9, addresses: "a|b", bytes: [4, 1, 0, 9, 0, 0, 1, 0, 0x55][...]),
            .packet(direction: .clientToProxy, sid: nil, at: 10, addresses: "", bytes: [][...]),
            .identified(fields: ["p", "", "c"], at: 11),
            .note("hello", at: 12),
            .closed(at: 13),
        ]
        for e in events {
            #expect(DumpEvent.decode(e.encoded()) == e)
        }
        #expect(DumpEvent.decode([]) == nil && DumpEvent.decode([9]) == nil && DumpEvent.decode([2, 1]) == nil)
    }

    @Test func followRingKeepsTheLatestLines() {
        let ring = DumpFollowRing(capacity: 3)
        #expect(ring.lines(after: 0, limit: 10).lines.isEmpty)
        ring.append("a\nb\n", prefix: "[s1] ")
        let first = ring.lines(after: 0, limit: 10)
        #expect(first.lines == ["[s1] a", "[s1] b"] && first.next == 2 && first.missed == 0)
        ring.append("c\nd\ne\n", prefix: "")
        let r = ring.lines(after: 0, limit: 10)
        #expect(r.lines == ["c", "d", "e"] && r.next == 5 && r.missed == 2)
        #expect(ring.lines(after: 4, limit: 10).lines == ["e"])
        let one = ring.lines(after: 3, limit: 1)
        #expect(one.lines == ["d"] && one.next == 4 && one.missed == 0)
        #expect(ring.lines(after: 5, limit: 10).next == 5)
        // A cursor from an earlier run (beyond the end) comes back to the end.
        #expect(ring.lines(after: 99, limit: 10).next == 5)
        #expect(ring.cursor == 5)
    }

    @Test func clientFilterTakesAddressesAndNetworks() {
        #expect(DumpFilter(client: "10.1.0.0/16").matches(clientAddress: "10.1.200.3"))
        #expect(!DumpFilter(client: "10.1.0.0/16").matches(clientAddress: "10.2.0.1"))
        #expect(DumpFilter(client: "10.1.2.3").matches(clientAddress: "::ffff:10.1.2.3"))
        #expect(DumpFilter(client: "fd00::/8").matches(clientAddress: "fd12::1"))
        #expect(!DumpFilter(client: "10.1.2.3").matches(clientAddress: nil))
        #expect(DumpFilter().matches(clientAddress: nil))
        #expect(DumpFilter.clientProblem("10.0.0.0/33") != nil && DumpFilter.clientProblem("host.example") != nil)
        let info = SessionInfo(id: 1, client: "c", principal: "App-User", authMethod: "sql_login", cluster: "orders", endpoint: "east",
                               intent: "ReadWrite", database: "AppDB", appName: "", hostName: "", backendIdentity: "mi", openedAt: Date())
        #expect(DumpFilter(principal: "app-user", cluster: "orders", database: "appdb").matches(info))
        #expect(!DumpFilter(principal: "other").matches(info) && !DumpFilter(cluster: "x").matches(info))
    }

    @Test func textAndPcapngFilesHaveTheSessionAndNoSecret() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let ring = DumpFollowRing(capacity: 1000)
        let sink = try DumpSink(directory: dir, maxFileBytes: 1 << 20, maxTotalBytes: 1 << 24, keepRotated: 1, ring: ring,
                                stats: DumpSinkStats(), runStamp: "T")
        try Self.run(sink, session: 7, events: Self.events(session: 7, flags: [.text, .pcapng, .hex]))
        sink.shutdown()
        let files = Self.files(dir)
        #expect(Set(files.keys) == ["session-T-7.txt", "session-T-7.pcapng"])
        let text = String(decoding: try #require(files["session-T-7.txt"]), as: UTF8.self)
        #expect(text.hasPrefix("# tdsgate session dump"))
        for expected in ["# session: 7", "# client: 10.1.2.3:50000", "# principal: app-user", "# cluster: orders", "# endpoint: east",
                         "# intent: ReadWrite", "# backend identity: mi", "client->proxy", "proxy->backend", "backend->proxy",
                         "proxy->client", "SELECT name FROM sys.databases", "backend connection: proxy 127.0.0.1:41000 -> backend 127.0.0.1:1433",
                         "<redacted", "session closed"] {
            #expect(text.contains(expected), "missing \(expected)")
        }
        let utf16 = Array(Self.password.utf16).flatMap { [UInt8(truncatingIfNeeded: $0), UInt8($0 >> 8)] }
        for (name, bytes) in files {
            #expect(!Self.contains(bytes, Array(Self.password.utf8)), "\(name) holds the password")
            #expect(!Self.contains(bytes, utf16), "\(name) holds the password (UTF-16)")
        }
        // The password is scrambled on the wire (LOGIN7 XOR/nibble swap): not there either.
        let scrambled = utf16.map { b in ((b << 4) | (b >> 4)) ^ 0xA5 }
        for (name, bytes) in files { #expect(!Self.contains(bytes, scrambled), "\(name) holds the scrambled password") }
        let pcap = try #require(files["session-T-7.pcapng"])
        #expect(Array(pcap.prefix(4)) == [0x0A, 0x0D, 0x0D, 0x0A])
        let decoded = try DumpFileDecoder.decode(pcap, port: 14330)
        #expect(decoded.contains("SELECT name FROM sys.databases"))
        // The follow stream saw the same lines, tagged with the session.
        let lines = ring.lines(after: 0, limit: 10_000).lines
        #expect(lines.contains { $0.hasPrefix("[s7] ") && $0.contains("SELECT name FROM sys.databases") })
        #expect(!lines.joined().contains(Self.password))
    }

    @Test func maskedLiteralsAndPerDumpPcapng() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let sink = try DumpSink(directory: dir, maxFileBytes: 1 << 20, maxTotalBytes: 1 << 24, keepRotated: 1,
                                ring: DumpFollowRing(capacity: 0), stats: DumpSinkStats(), runStamp: "T")
        for id in [1, 2] {
            try Self.run(sink, session: id, events: Self.events(session: id, batch: "SELECT * FROM t WHERE secret_col = 'hush-\(id)'",
                                                                flags: [.text, .pcapng, .pcapngPerDump, .maskLiterals]))
        }
        try sink.close(key: DumpSink.dumpKey(1))
        sink.shutdown()
        let files = Self.files(dir)
        #expect(Set(files.keys) == ["session-T-1.txt", "session-T-2.txt", "dump-T-1.pcapng"])
        let text = String(decoding: files["session-T-1.txt"]!, as: UTF8.self)
        #expect(text.contains("secret_col = ?") && !text.contains("hush-1"))
        // Exactly one section header in the per-dump file.
        let pcap = files["dump-T-1.pcapng"]!
        let shbCount = (0..<(pcap.count - 3)).filter { i in i % 4 == 0 && pcap[i] == 0x0A && pcap[i + 1] == 0x0D && pcap[i + 2] == 0x0D && pcap[i + 3] == 0x0A }.count
        #expect(shbCount == 1)
    }

    @Test func tenThousandSessionsRespectTheSizeCaps() throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let maxTotal = 2 << 20, maxFile = 16 << 10
        let sink = try DumpSink(directory: dir, maxFileBytes: maxFile, maxTotalBytes: maxTotal, keepRotated: 1,
                                ring: DumpFollowRing(capacity: 100), stats: DumpSinkStats(), runStamp: "T")
        let template = Self.events(session: 0)
        for id in 1...10_000 {
            var events = template
            events[0] = DumpEvent.open(session: id, generation: 1, client: "10.1.2.3 50000", settings: [.text, .pcapng], at: Self.t0).encoded()
            try Self.run(sink, session: id, events: events)
        }
        sink.shutdown()
        let files = Self.files(dir)
        let total = files.values.reduce(0) { $0 + $1.count }
        #expect(total <= maxTotal, "directory holds \(total) bytes")
        #expect(files.values.allSatisfy { $0.count <= maxFile + 4096 })
        #expect(files.keys.contains("session-T-10000.txt"), "the newest sessions are kept, the oldest evicted")
        #expect(!files.keys.contains("session-T-1.txt"))
    }

    @Test func aFullQueueIsAGapNotAWait() async throws {
        let dir = Self.tempDir()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let stats = DumpSinkStats()
        let sink = try DumpSink(directory: dir, maxFileBytes: 1 << 24, maxTotalBytes: 1 << 26, keepRotated: 1,
                                ring: DumpFollowRing(capacity: 0), stats: stats, runStamp: "T")
        let writer = SpoolWriter(capacityBytes: 64 << 10, capacityRecords: 64, sink: sink, logLabel: "test")
        let key = DumpSink.sessionKey(1)
        let events = Self.events(session: 1)
        writer.offer(SpoolRecord(key: key, bytes: events[0]))
        let batch = Self.encode { SQLBatch(text: String(repeating: "SELECT 1; ", count: 300)).write(into: &$0) }
        let big = Self.packets(.sqlBatch, batch)
        var refused = 0
        let start = ContinuousClock.now
        for _ in 0..<5000 {
            for p in big where !writer.offer(SpoolRecord(key: key, bytes: DumpEvent.encodePacket(
                direction: .clientToProxy, sid: nil, at: Self.t0, addresses: Array(Self.clientAddresses.utf8), packet: p))) {
                refused += 1
            }
        }
        let elapsed = ContinuousClock.now - start
        writer.offer(.close(key: key, bytes: DumpEvent.closed(at: Self.t0).encoded()))
        await writer.close()
        #expect(refused > 0)
        #expect(elapsed < .seconds(5), "offers must not wait for the disk")
        let text = String(decoding: Self.files(dir)["session-T-1.txt"] ?? [], as: UTF8.self)
        #expect(text.contains("GAP: "), "the text marks where records were dropped")
        #expect(stats.gaps.load(ordering: .relaxed) > 0)
    }

    @Test func dumpConfigParsesAndReportsMistakes() throws {
        let base = """
        listeners: [{name: main, port: 1433, client_encryption: plaintext, cluster: orders}]
        clusters: [{name: orders, endpoints: [{name: east, host: east.example}]}]
        backend_identities: [{name: mi, kind: imds}]
        policy: [{name: k, match: any, clusters: [orders], backend_identity: mi}]

        """
        let config = try #require(ConfigTestSupport.parse(base + """
        dump: {directory: dumps, format: pcapng, pcapng_files: dump, hex: true, filter: {client: 10.0.0.0/8, database: appdb}}
        """, baseDirectory: "/etc/tdsgate"))
        #expect(config.dump == DumpConfig(directory: "/etc/tdsgate/dumps", enabled: true,
                                          settings: DumpSettings(filter: DumpFilter(client: "10.0.0.0/8", database: "appdb"),
                                                                 formats: [.pcapng], pcapngFiles: .dump, hex: true)))
        let problems = ConfigTestSupport.problems(base + """
        dump: {format: [text, wav], pcapng_files: each, filter: {client: somewhere, user: x}, max_file_bytes: 10, colour: red}
        """, checkFiles: false)
        #expect(problems.message(at: "dump.format[1]") != nil)
        #expect(problems.message(at: "dump.pcapng_files") != nil)
        #expect(problems.message(at: "dump.filter.client") != nil)
        #expect(problems.message(at: "dump.filter") != nil || problems.message(at: "dump.filter.user") != nil)
        #expect(problems.message(at: "dump.max_file_bytes") != nil)
        #expect(problems.message(at: "dump.directory") != nil)
    }
}
