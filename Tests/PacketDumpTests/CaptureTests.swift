import Foundation
import NIOCore
import Testing
@testable import PacketDump
@testable import TDS

@Suite struct CaptureTests {
    static let knownPassword = "Kn0wn-Secret-42"

    static let endpoints = DumpEndpoints(
        client: DumpSocketAddress("10.1.0.5", port: 50123)!,
        proxyListen: DumpSocketAddress("10.1.0.1", port: 1433)!,
        proxyBackendLocal: DumpSocketAddress("fd00::1", port: 40000)!,
        backend: DumpSocketAddress("fd00::2", port: 1433)!)

    /// (direction, packets) of a synthetic session relayed on both legs.
    static func session() -> [(DumpDirection, [ByteBuffer])] {
        var p = PreloginMessage()
        p.version = PreloginVersion(major: 16, minor: 0, build: 1000)
        p.encryption = .off
        p.threadID = 7
        p.mars = false
        let prelogin = encode { p.write(into: &$0) }
        let login = Login7(hostName: "app-host", userName: "alice", password: knownPassword, appName: "dump-test",
                           serverName: "srv", clientInterfaceName: "ODBC", database: "appdb",
                           features: [Login7Feature(id: Login7Feature.utf8Support, data: [])])
        let loginPayload = encode { login.write(into: &$0) }
        var w = TDSTokenWriter()
        let loginReply = encode { b in
            w.write(.envChange(.database(new: "appdb", old: "master")), into: &b)
            w.write(.loginAck(LoginAck()), into: &b)
            w.write(.done(Done()), into: &b)
        }
        let batch = encode { SQLBatch(text: "SELECT id, name FROM t").write(into: &$0) }
        let small = resultReply(rows: 10)
        let large = resultReply(rows: 1500) { String(repeating: "v\($0)", count: 12) }
        var out: [(DumpDirection, [ByteBuffer])] = []
        for leg in DumpLeg.allCases {
            let req = DumpDirection.requests(on: leg), rep = DumpDirection.replies(on: leg)
            out.append((req, packetize(.prelogin, prelogin)))
            out.append((rep, packetize(.tabularResult, prelogin)))
            out.append((req, packetize(.login7, loginPayload, packetSize: 100)))
            out.append((rep, packetize(.tabularResult, loginReply)))
            out.append((req, packetize(.sqlBatch, batch)))
            out.append((rep, packetize(.tabularResult, small)))
            out.append((req, packetize(.sqlBatch, batch)))
            out.append((rep, packetize(.tabularResult, large, packetSize: 8000)))
        }
        return out
    }

    static func writeSession(resolution: PcapngWriter.TimestampResolution = .nanoseconds) -> [UInt8] {
        var recorder = DumpCaptureRecorder(endpoints: endpoints, writer: PcapngWriter(resolution: resolution))
        var file = recorder.fileHeader()
        var t = t0
        for (direction, packets) in session() {
            for p in packets {
                t = t.adding(nanoseconds: 1_000_123)
                file += recorder.record(packet: p, direction: direction, at: t)
            }
        }
        file += recorder.close(leg: .backend, at: t)
        file += recorder.close(leg: .client, at: t)
        return file
    }

    @Test func pcapngReadsBackToTheSameMessages() throws {
        let file = Self.writeSession()
        #expect(file.count > 2 * 70_000)
        #expect(!contains(file, Array(Self.knownPassword.utf8)))
        #expect(!contains(file, Login7.obfuscate(Self.knownPassword)))
        let (connections, _, note) = try DumpFileDecoder.tdsConnections(in: file)
        #expect(note == nil)
        #expect(connections.count == 2)
        let expected = Self.session()
        for (i, leg) in DumpLeg.allCases.enumerated() {
            let c = connections[i]
            let sockets = Self.endpoints.sockets(of: leg)
            #expect(c.client == sockets.client)
            #expect(c.server == sockets.server)
            for fromClient in [true, false] {
                let direction = fromClient ? DumpDirection.requests(on: leg) : .replies(on: leg)
                var want = expected.filter { $0.0 == direction }.flatMap { $0.1 }
                for i in want.indices where want[i].getInteger(at: want[i].readerIndex, as: UInt8.self) == 0x10 {
                    _ = i
                }
                // LOGIN7 is redacted in the file: compare after the same redaction.
                var loginPackets = want.filter { $0.getInteger(at: $0.readerIndex, as: UInt8.self) == 0x10 }
                SecretRedactor.redact(packets: &loginPackets)
                var k = 0
                for i in want.indices where want[i].getInteger(at: want[i].readerIndex, as: UInt8.self) == 0x10 {
                    want[i] = loginPackets[k]
                    k += 1
                }
                let got = messages([ByteBuffer(bytes: c.stream(fromClient: fromClient))])
                let wanted = messages(want)
                #expect(got.count == wanted.count)
                #expect(zip(got, wanted).allSatisfy { $0.type == $1.type && $0.payload == $1.payload })
            }
        }
        let text = try DumpFileDecoder.decode(file)
        #expect(text.contains("2 TDS connections"))
        #expect(text.contains("user name: \"alice\""))
        #expect(text.contains("1500 rows"))
        #expect(text.contains("[fd00::1]:40000 -> [fd00::2]:1433"))
        #expect(!text.contains("failed to decode"))
        #expect(!text.contains(Self.knownPassword))
    }

    @Test func tsharkDissectsEveryFrameAsTDS() throws {
        let tshark = "/usr/bin/tshark"
        try #require(FileManager.default.isExecutableFile(atPath: tshark), "tshark not installed")
        for resolution in [PcapngWriter.TimestampResolution.nanoseconds, .microseconds] {
            let file = Self.writeSession(resolution: resolution)
            let url = FileManager.default.temporaryDirectory.appendingPathComponent("tdsgate-dump-\(UUID().uuidString).pcapng")
            try Data(file).write(to: url)
            defer { try? FileManager.default.removeItem(at: url) }
            let checks = ["-o", "tcp.check_checksum:TRUE", "-o", "ip.check_checksum:TRUE"]
            let verbose = try run(tshark, ["-r", url.path, "-d", "tcp.port==1433,tds", "-V"] + checks)
            #expect(verbose.status == 0, "\(verbose.error)")
            for bad in ["Malformed", "Expert Info (Error", "[TCP ACKed unseen", "Bad checksum", "[Checksum Status: Bad]", "incorrect"] {
                #expect(!verbose.output.contains(bad), "tshark says \(bad)")
            }
            let fields = try run(tshark, ["-r", url.path, "-d", "tcp.port==1433,tds", "-T", "fields", "-e", "frame.number",
                                         "-e", "tcp.len", "-e", "tds.type", "-e", "ip.src", "-e", "ipv6.src"] + checks)
            #expect(fields.status == 0)
            var tdsFrames = 0, ipv6Frames = 0
            for line in fields.output.split(separator: "\n") {
                let cols = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
                guard cols.count >= 5 else { continue }
                if !cols[4].isEmpty { ipv6Frames += 1 }
                if let len = Int(cols[1]), len > 0 {
                    tdsFrames += 1
                    #expect(!cols[2].isEmpty, "frame \(cols[0]) is not dissected as TDS")
                }
            }
            #expect(tdsFrames > 30)
            #expect(ipv6Frames > 10)
            let count = verbose.output.components(separatedBy: "Tabular Data Stream").count - 1
            #expect(count >= tdsFrames)
            #expect(!verbose.output.contains(Self.knownPassword))
        }
    }

    @Test func classicPcapWithEthernetDecodes() throws {
        // Re-wrap the synthetic IP packets of the client leg in Ethernet, in a big-endian usec pcap.
        var conn = SyntheticTCPConnection(client: DumpSocketAddress("192.168.1.10", port: 51000)!,
                                          server: DumpSocketAddress("192.168.1.20", port: 1433)!)
        var ip: [[UInt8]] = []
        for (direction, packets) in Self.session() where direction.leg == .client {
            for p in packets { ip += conn.send(p, fromClient: direction.isFromClientSide) }
        }
        // A retransmission of the first data segment must not duplicate bytes.
        ip.insert(ip[3], at: 5)
        var file: [UInt8] = [0xA1, 0xB2, 0xC3, 0xD4, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 1]
        func be32(_ v: UInt32) { file += [UInt8(v >> 24), UInt8(truncatingIfNeeded: v >> 16), UInt8(truncatingIfNeeded: v >> 8), UInt8(truncatingIfNeeded: v)] }
        for (i, p) in ip.enumerated() {
            let frame: [UInt8] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 0x08, 0x00] + p
            be32(1_767_225_600)
            be32(UInt32(i))
            be32(UInt32(frame.count))
            be32(UInt32(frame.count))
            file += frame
        }
        let text = try DumpFileDecoder.decode(file)
        #expect(text.contains("pcap, \(ip.count) frames, 1 TDS connection"))
        #expect(text.contains("192.168.1.10:51000 -> 192.168.1.20:1433"))
        #expect(text.contains("user name: \"alice\""))
        #expect(text.contains("1500 rows"))
        #expect(!text.contains("failed to decode"))
        #expect(!text.contains(Self.knownPassword))
        #expect(text.components(separatedBy: "SQLBatch message").count - 1 == 2)
    }

    @Test func tlsFlowsAreReportedNotDecoded() throws {
        var p = PreloginMessage()
        p.version = PreloginVersion(major: 16, minor: 0, build: 1)
        p.encryption = .on
        let prelogin = encode { p.write(into: &$0) }
        let hello = ByteBuffer(bytes: [0x16, 0x03, 0x01, 0x00, 0x05, 0x01, 0x00, 0x00, 0x01, 0x00])
        let record = ByteBuffer(bytes: [0x17, 0x03, 0x03, 0x00, 0x20] + [UInt8](repeating: 0xAB, count: 32))
        let sessions: [(String, [(Bool, ByteBuffer)])] = [
            ("after", [(true, packetize(.prelogin, prelogin)[0]), (false, packetize(.tabularResult, prelogin)[0]),
                       (true, packetize(.prelogin, hello)[0]), (false, packetize(.prelogin, hello)[0]), (true, record)]),
            ("strict", [(true, hello), (false, hello), (true, record)]),
        ]
        for (name, chunks) in sessions {
            var conn = SyntheticTCPConnection(client: DumpSocketAddress("10.0.0.1", port: 40000)!, server: DumpSocketAddress("10.0.0.2", port: 1433)!)
            let writer = PcapngWriter()
            var file = writer.fileHeader()
            for (fromClient, bytes) in chunks {
                for ip in conn.send(bytes, fromClient: fromClient) { file += writer.enhancedPacket(ip, at: t0) }
            }
            let text = try DumpFileDecoder.decode(file)
            #expect(text.contains("TLS-encrypted"), "\(name): \(text)")
            #expect(text.contains(name == "strict" ? "TDS 8.0 strict" : "after PRELOGIN"), "\(text)")
            #expect(!text.contains("failed to decode"), "\(text)")
        }
    }

    @Test func socketAddressesParseAndPrint() {
        #expect(DumpSocketAddress("2001:db8::1", port: 1)?.description == "[2001:db8::1]:1")
        #expect(DumpSocketAddress("::", port: 1)?.addressText == "::")
        #expect(DumpSocketAddress("1.2.3", port: 1) == nil)
        #expect(DumpSocketAddress("1:2:3:4:5:6:7:8:9", port: 1) == nil)
        #expect(DumpTimestamp(seconds: 1_767_225_600, nanoseconds: 123_456_000).description == "2026-01-01T00:00:00.123456Z")
    }
}

func run(_ path: String, _ args: [String]) throws -> (status: Int32, output: String, error: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: path)
    p.arguments = args
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Read before waiting so a large output cannot fill the pipe and block tshark.
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}
