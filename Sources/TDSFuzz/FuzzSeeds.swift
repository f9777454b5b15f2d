import Foundation
import NIOCore
import PacketDump
import TDS

/// Writes a small starting corpus per target into DIR/<target>/: messages reassembled from
/// the driver captures in Fixtures/, the proxy's example configurations, and synthetic
/// replies, frames, captures and tokens built with our own writers. Written at run time,
/// never committed.
enum FuzzSeeds {
    struct Message {
        var type: TDSPacketType
        var payload: [UInt8]
    }

    static func write(to directory: String, repository: String) throws {
        let fixtures = URL(fileURLWithPath: repository).appendingPathComponent("Fixtures")
        let files = try FileManager.default.contentsOfDirectory(atPath: fixtures.path).filter { $0.hasSuffix(".hex") }.sorted()
        var streams: [[UInt8]] = []
        var messages: [Message] = []
        var hexTexts: [String] = []
        for file in files {
            let text = try String(contentsOf: fixtures.appendingPathComponent(file), encoding: .utf8)
            hexTexts.append(text)
            let packets = text.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }.map { hexBytes(String($0)) }
            streams.append(packets.flatMap { $0 })
            var assembler = TDSMessageAssembler(maxMessageSize: 1 << 20)
            for raw in packets {
                var b = ByteBuffer(bytes: raw)
                guard let p = try? TDSPacket.read(from: &b, maxPacketSize: 32_768), let m = try? assembler.append(p) else { continue }
                messages.append(Message(type: m.type, payload: Array(m.payload.readableBytesView)))
            }
        }
        func of(_ type: TDSPacketType, _ limit: Int = 12) -> [[UInt8]] {
            var seen = Set<[UInt8]>()
            return messages.filter { $0.type == type && seen.insert($0.payload).inserted }.prefix(limit).map(\.payload)
        }
        let replies = syntheticReplies()
        var seeds: [String: [[UInt8]]] = [:]
        // Streams start with the chunk-size byte the target reads first.
        // (Kept to a few KB: the targets frame every input twice, once in small pieces.)
        // (Typed pieces: one expression of these overloaded `+`s is too much for the type checker.)
        func prefixed(_ first: UInt8, _ bytes: ArraySlice<UInt8>) -> [UInt8] { [first] + Array(bytes) }
        var packets: [[UInt8]] = streams.prefix(10).flatMap { s in [prefixed(96, s.prefix(6000)), prefixed(7, s.prefix(600))] }
        packets.append(prefixed(50, hugePrelogin().prefix(5000)))
        seeds["packets"] = packets
        var transport: [[UInt8]] = streams.prefix(6).flatMap { s in
            [prefixed(200, s.prefix(800)), prefixed(201, s.prefix(800)), prefixed(6, s.prefix(800))]
        }
        let records: [UInt8] = tlsRecords()
        let opening: [UInt8] = Array(streams.first?.prefix(300) ?? [])
        transport.append([1] + records)
        transport.append([2] + records + opening)
        seeds["transport"] = transport
        seeds["prelogin"] = of(.prelogin) + [hugePreloginPayload(options: 40)]
        seeds["login7"] = of(.login7, 20)
        seeds["login-reply"] = replies.map { [0] + $0 }
        seeds["token-scanner"] = replies.map { [5] + $0 }
        seeds["smp"] = [smpSession()]
        seeds["sql-batch"] = of(.sqlBatch) + of(.transactionManager) + [fedAuthToken()]
        seeds["rpc"] = of(.rpc, 16)
        let typeIndex = { (t: TDSPacketType) in UInt8(FuzzTargets.dumpTypes.firstIndex(of: t) ?? 0) }
        seeds["dump-render"] = messages.prefix(60).map { [typeIndex($0.type)] + $0.payload.prefix(4000) }
            + replies.map { [typeIndex(.tabularResult)] + $0 }
        seeds["capture"] = [pcapng(streams: Array(streams.prefix(2)))] + hexTexts.prefix(3).map { Array($0.utf8) }
        seeds["jwt"] = jwtSeeds()
        seeds["config-yaml"] = try configSeeds(repository: repository)
        seeds["proxy-protocol"] = proxyProtocolSeeds(then: Array(streams.first?.prefix(64) ?? []))
        for target in FuzzTargets.all {
            let dir = URL(fileURLWithPath: directory).appendingPathComponent(target.name)
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            for (i, seed) in (seeds[target.name] ?? []).enumerated() {
                try Data(seed).write(to: dir.appendingPathComponent(String(format: "seed-%03d", i)))
            }
        }
    }

    static func hexBytes(_ text: String) -> [UInt8] {
        var out: [UInt8] = []
        var high: UInt8?
        for c in text.utf8 {
            let v: UInt8
            switch c {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
            default: continue
            }
            if let h = high { out.append(h << 4 | v); high = nil } else { high = v }
        }
        return out
    }

    static func encode(_ body: (inout ByteBuffer) -> Void) -> [UInt8] {
        var b = ByteBuffer()
        body(&b)
        return Array(b.readableBytesView)
    }

    /// The amplification attack of issue 14: many options naming the same bytes.
    static func hugePreloginPayload(options: Int) -> [UInt8] {
        var table: [UInt8] = []
        let dataOffset = options * 5 + 1
        for i in 0..<options {
            table += [UInt8(i % 8 == 1 ? 0x01 : 0x10 + i % 200), UInt8(dataOffset >> 8), UInt8(dataOffset & 0xFF), 0, 6]
        }
        return table + [0xFF, 9, 0, 0, 0, 0, 0]
    }

    static func hugePrelogin() -> [UInt8] {
        encode { TDSMessage(type: .prelogin, payload: ByteBuffer(bytes: hugePreloginPayload(options: 1000))).writePackets(into: &$0, packetSize: 4096) }
    }

    static func tlsRecords() -> [UInt8] {
        // A PRELOGIN packet carrying a handshake record, then a raw record.
        let record: [UInt8] = [0x16, 0x03, 0x01, 0x00, 0x04, 0x01, 0x00, 0x00, 0x00]
        return [0x12, 0x01, 0x00, UInt8(8 + record.count), 0, 0, 0, 0] + record + [0x17, 0x03, 0x03, 0x00, 0x02, 0xAA, 0xBB]
    }

    static func syntheticReplies() -> [[UInt8]] {
        let columns = [
            TDSColumn(name: "i4", type: .int4, flags: 0), TDSColumn(name: "in8", type: .intN(length: 8)),
            TDSColumn(name: "f", type: .floatN(length: 8)), TDSColumn(name: "g", type: .uniqueidentifier),
            TDSColumn(name: "dec", type: .decimal(precision: 18, scale: 4)), TDSColumn(name: "d", type: .date),
            TDSColumn(name: "dt2", type: .datetime2(scale: 3)), TDSColumn(name: "dto", type: .datetimeoffset(scale: 7)),
            TDSColumn(name: "nv", type: .nvarchar(maxLength: 100)), TDSColumn(name: "nvmax", type: .nvarchar(maxLength: 0xFFFF)),
            TDSColumn(name: "vb", type: .varbinary(maxLength: 16)), TDSColumn(name: "vbmax", type: .varbinary(maxLength: 0xFFFF)),
        ]
        let values: [TDSValue] = [
            .int(-7), .int(1 << 40), .float(2.5), .guid((0..<16).map { UInt8($0) }), .decimal(TDSDecimal("-12.3456", scale: 4)!),
            .date(days: 738_000), .datetime2(days: 738_000, ticks: 86_399), .datetimeoffset(days: 738_000, ticks: 5, offsetMinutes: -330),
            .string("héllo"), .string(String(repeating: "plp-", count: 30)), .bytes([1, 2, 3]), .bytes([UInt8](repeating: 9, count: 40)),
        ]
        var w = TDSTokenWriter()
        let login = encode {
            w.write([
                .envChange(.database(new: "appdb", old: "master")),
                .info(ServerMessage(number: 5701, severity: 0, message: "Changed database context to 'appdb'.", serverName: "sqlemu")),
                .envChange(.collation(new: TDSCollation.default, old: [])), .envChange(.packetSize(new: "8000", old: "4096")),
                .loginAck(LoginAck()), .featureExtAck([FeatureAck(id: 2), FeatureAck(id: 9, data: [2]), FeatureAck(id: 0x0A, data: [1])]),
                .done(Done()),
            ], into: &$0)
        }
        var w2 = TDSTokenWriter()
        let redirect = encode {
            w2.write([.envChange(.routing(protocol: 0, port: 11000, server: "worker.sqlemu")), .loginAck(LoginAck()),
                      .fedAuthInfo(FedAuthInfo(stsURL: "https://login.microsoftonline.com/t", spn: "https://database.windows.net/")),
                      .done(Done())], into: &$0)
        }
        let refusal = encode {
            TDSToken.error(ServerMessage(number: 18456, state: 1, severity: 14, message: "Login failed for user 'x'.", serverName: "tdsgate")).write(into: &$0)
            TDSToken.done(Done(status: .error)).write(into: &$0)
        }
        var w3 = TDSTokenWriter()
        let rows = encode {
            w3.write([.colMetadata(columns), .row(values), .nbcRow(values.enumerated().map { $0.offset % 3 == 0 ? .null : $0.element }),
                      .returnStatus(0), .returnValue(ReturnValue(ordinal: 1, name: "@out", type: .intN(length: 4), value: .int(42))),
                      .doneProc(Done()), .done(Done())], into: &$0)
        }
        return [login, redirect, refusal, rows]
    }

    static func smpSession() -> [UInt8] {
        var out = ByteBuffer()
        SMPFrame(header: SMPHeader(flags: .syn, sid: 0, seqnum: 0, window: 4)).write(into: &out)
        for seq in 1...3 {
            let payload = ByteBuffer(bytes: [0x01, 0x01, 0x00, 0x0C, 0, 0, 1, 0, 0x53, 0, 0x45, 0])
            SMPFrame(header: SMPHeader(flags: .data, sid: 0, length: UInt32(SMPHeader.size + payload.readableBytes), seqnum: UInt32(seq), window: 4),
                     payload: payload).write(into: &out)
        }
        SMPFrame(header: SMPHeader(flags: .ack, sid: 0, seqnum: 3, window: 8)).write(into: &out)
        SMPFrame(header: SMPHeader(flags: .syn, sid: 1, seqnum: 0, window: 4)).write(into: &out)
        SMPFrame(header: SMPHeader(flags: .fin, sid: 0, seqnum: 3, window: 8)).write(into: &out)
        return Array(out.readableBytesView)
    }

    static func fedAuthToken() -> [UInt8] {
        encode { FedAuthTokenMessage(token: "eyJhbGciOiJSUzI1NiJ9.e30.sig", nonce: [UInt8](repeating: 7, count: 32)).write(into: &$0) }
    }

    static func pcapng(streams: [[UInt8]]) -> [UInt8] {
        let endpoints = DumpEndpoints(
            client: DumpSocketAddress(ipv4: 127, 0, 0, 1, port: 50_000), proxyListen: DumpSocketAddress(ipv4: 127, 0, 0, 1, port: 1433),
            proxyBackendLocal: DumpSocketAddress(ipv4: 127, 0, 0, 1, port: 50_001), backend: DumpSocketAddress(ipv4: 127, 0, 0, 1, port: 11_000))
        var recorder = DumpCaptureRecorder(endpoints: endpoints)
        var file = recorder.fileHeader()
        var t = DumpTimestamp(seconds: 1_700_000_000)
        for stream in streams {
            var b = ByteBuffer(bytes: stream)
            while let p = try? TDSPacket.read(from: &b, maxPacketSize: 32_768) {
                t = t.adding(nanoseconds: 1000)
                var raw = ByteBuffer()
                p.write(into: &raw)
                file += recorder.record(packet: raw, direction: .clientToProxy, at: t)
            }
        }
        file += recorder.close(leg: .client, at: t)
        return file
    }

    static func jwtSeeds() -> [[UInt8]] {
        let claims = #"{"aud":"https://database.windows.net/","iss":"https://sts.windows.net/\#(JWTFuzz.tenant)/","tid":"\#(JWTFuzz.tenant)","exp":1750003600,"nbf":1749996400,"oid":"00000000-0000-0000-0000-000000000001","upn":"app@example.com","groups":["g1"],"roles":"r"}"#
        let token = JWTFuzz.base64url(Array(#"{"alg":"RS256","kid":"fuzz-key"}"#.utf8)) + "." + JWTFuzz.base64url(Array(claims.utf8)) + ".c2ln"
        return [[0, 0] + Array(claims.utf8), [0, 2] + Array(claims.utf8), [1] + Array(token.utf8),
                [1] + Array("a.b.c.d.e".utf8), [0, 0] + Array(#"{"aud":["x","https://database.windows.net"],"exp":"soon"}"#.utf8)]
    }

    /// PROXY headers as HAProxy and Azure Private Link write them, each followed by the
    /// start of a TDS stream; first byte as `ProxyProtocolFuzz` reads it (1: trusted, both
    /// versions, whole reads; 0x31: in 22-byte reads; 0: an untrusted peer).
    static func proxyProtocolSeeds(then tds: [UInt8]) -> [[UInt8]] {
        let v2: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]
        func header(_ command: UInt8, _ family: UInt8, _ block: [UInt8]) -> [UInt8] {
            v2 + [command, family, UInt8(block.count >> 8), UInt8(block.count & 0xFF)] + block
        }
        let ports: [UInt8] = [0xC3, 0x50, 0x05, 0x99]
        let azure: [UInt8] = [0xEE, 0x00, 0x05, 0x01, 0x78, 0x56, 0x34, 0x12]
        let ipv4: [UInt8] = [203, 0, 113, 7, 10, 0, 0, 5]
        let noop: [UInt8] = [0x04, 0x00, 0x00]
        let ipv6: [UInt8] = [UInt8](repeating: 0x20, count: 31) + [1]
        func unixPath(_ path: String) -> [UInt8] { Array(path.utf8) + [UInt8](repeating: 0, count: 108 - path.utf8.count) }
        let unix: [UInt8] = unixPath("/run/client.sock") + unixPath("/run/tdsgate.sock")
        let headers: [[UInt8]] = [
            Array("PROXY TCP4 203.0.113.7 10.0.0.5 50000 1433\r\n".utf8),
            Array("PROXY TCP6 2001:db8::7 2001:db8::1 50000 1433\r\n".utf8),
            Array("PROXY UNKNOWN\r\n".utf8),
            header(0x21, 0x11, ipv4 + ports + azure + noop),
            header(0x21, 0x21, ipv6 + ports),
            header(0x20, 0x00, []),
            header(0x21, 0x31, unix),
        ]
        func seed(_ first: UInt8, _ parts: [UInt8]...) -> [UInt8] { [first] + parts.flatMap { $0 } }
        return headers.flatMap { h -> [[UInt8]] in [seed(1, h, tds), seed(0x31, h, tds), seed(0, h)] } + [seed(0, tds), seed(1, tds)]
    }

    static func configSeeds(repository: String) throws -> [[UInt8]] {
        let configs = URL(fileURLWithPath: repository).appendingPathComponent("Configs")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: configs.path)) ?? []
        return names.filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().compactMap {
            FileManager.default.contents(atPath: configs.appendingPathComponent($0).path).map { Array($0) }
        }
    }
}
