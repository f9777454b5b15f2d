import Foundation
import NIOCore
import Testing
@testable import TDS

/// Real driver captures from Fixtures/ (see Fixtures/README.md).
struct Fixture: Sendable, CustomTestStringConvertible {
    var file: String
    var packets: [[UInt8]]
    var messages: [[String: any Sendable]]
    var testDescription: String { file }

    static let root: URL = {
        // Tests/TDSTests/FixtureTests.swift -> package root
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }()

    static let all: [Fixture] = {
        let dir = root.appendingPathComponent("Fixtures")
        guard let data = try? Data(contentsOf: dir.appendingPathComponent("index.json")),
              let list = try? JSONSerialization.jsonObject(with: data) as? [[String: Any]] else { return [] }
        return list.compactMap { entry in
            guard let file = entry["file"] as? String,
                  let text = try? String(contentsOf: dir.appendingPathComponent(file), encoding: .utf8) else { return nil }
            let packets = text.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
                .filter { !$0.isEmpty && !$0.hasPrefix("#") }.map { hexBytes($0) }
            let messages = (entry["messages"] as? [[String: Any]] ?? []).map { m in
                m.mapValues { sendable($0) }
            }
            return Fixture(file: file, packets: packets, messages: messages)
        }
    }()
}

/// JSON values are plain property lists; wrap them so the fixture can cross test isolation.
private func sendable(_ v: Any) -> any Sendable {
    switch v {
    case let d as [String: Any]: return d.mapValues { sendable($0) }
    case let a as [Any]: return a.map { sendable($0) }
    case let s as String: return s
    case let n as NSNumber: return n.int64Value == Int64(n.doubleValue) ? Int(n.int64Value) as any Sendable : n.doubleValue
    case is NSNull: return Optional<Int>.none as any Sendable
    default: return "\(v)"
    }
}

private func hexValue(_ s: String) -> UInt64? {
    UInt64(s.hasPrefix("0x") ? String(s.dropFirst(2)) : s, radix: 16)
}

/// Reassembled messages with the packets they came from.
private struct Assembled {
    var message: TDSMessage
    var packets: [[UInt8]]
}

private func assemble(_ fixture: Fixture) throws -> [Assembled] {
    var assembler = TDSMessageAssembler(maxMessageSize: 1 << 20)
    var out: [Assembled] = []
    var pending: [[UInt8]] = []
    for raw in fixture.packets {
        var b = ByteBuffer(bytes: raw)
        let packet = try #require(try TDSPacket.read(from: &b, maxPacketSize: 32767))
        #expect(b.readableBytes == 0, "one packet per line in \(fixture.file)")
        pending.append(raw)
        if let m = try assembler.append(packet) {
            out.append(Assembled(message: m, packets: pending))
            pending = []
        }
    }
    #expect(pending.isEmpty, "\(fixture.file) ends mid-message")
    return out
}

@Suite struct FixtureTests {
    @Test func fixturesArePresent() {
        #expect(Fixture.all.count > 0, "no fixtures found under \(Fixture.root.path)/Fixtures")
    }

    @Test(arguments: Fixture.all)
    func reassembleParseAndReencode(_ fixture: Fixture) throws {
        let assembled = try assemble(fixture)
        #expect(assembled.count == fixture.messages.count, "message count")
        for (i, a) in assembled.enumerated() {
            let meta = fixture.messages.first { ($0["index"] as? Int) == i }
            let fields = meta?["fields"] as? [String: any Sendable] ?? [:]
            let kind = meta?["type"] as? String ?? ""
            let payload = a.message.payload
            var rewritten = ByteBuffer()
            switch a.message.type {
            case .prelogin:
                #expect(kind == "prelogin")
                let p = try PreloginMessage(parsing: payload)
                checkPrelogin(p, fields)
                p.write(into: &rewritten)
            case .login7:
                #expect(kind == "login7")
                let l = try Login7(parsing: payload)
                checkLogin7(l, fields, packetCount: a.packets.count, payload: payload.bytes)
                l.write(into: &rewritten)
                // Touching nothing but re-assigning equal values keeps the bytes.
                var copy = l
                copy.appName = String(l.appName)
                var again = ByteBuffer()
                copy.write(into: &again)
                #expect(again.bytes == payload.bytes)
            case .sqlBatch:
                #expect(kind == "sql_batch")
                let s = try SQLBatch(parsing: payload)
                if let text = fields["text"] as? String { #expect(s.text == text) }
                checkHeaders(s.allHeaders, fields)
                s.write(into: &rewritten)
            case .rpc:
                #expect(kind == "rpc")
                let r = try RPCRequest(parsing: payload)
                checkRPC(r, fields)
                r.write(into: &rewritten)
            case .transactionManager:
                #expect(kind == "transaction_manager")
                let t = try TransactionManagerRequest(parsing: payload)
                checkTM(t, fields)
                t.write(into: &rewritten)
            default:
                Issue.record("unexpected message type \(a.message.type) in \(fixture.file)")
                continue
            }
            #expect(rewritten.bytes == payload.bytes, "\(fixture.file) message \(i) (\(kind)) re-encodes byte-identically")

            // Splitting again at the driver's packet size gives back the captured packets.
            let firstHeader = try #require(try TDSPacketHeader.peek(from: ByteBuffer(bytes: a.packets[0])))
            var packets = ByteBuffer()
            TDSMessage(type: a.message.type, status: a.message.status, payload: rewritten)
                .writePackets(into: &packets, packetSize: Int(firstHeader.length), spid: firstHeader.spid,
                              firstPacketID: firstHeader.packetID)
            #expect(packets.bytes == a.packets.flatMap { $0 }, "\(fixture.file) message \(i) packets")
        }
    }

    private func checkPrelogin(_ p: PreloginMessage, _ f: [String: any Sendable]) {
        let names: [UInt8: String] = [0: "version", 1: "encryption", 2: "instopt", 3: "threadid", 4: "mars",
                                      5: "traceid", 6: "fedauthrequired", 7: "nonceopt"]
        if let order = f["option_order"] as? [any Sendable] {
            #expect(p.options.map { names[$0.token] ?? "0x\(String($0.token, radix: 16))" } == order.compactMap { $0 as? String })
        }
        if let v = f["version"] as? String, let pv = p.version {
            #expect("\(pv.major).\(pv.minor).\(pv.build).\(pv.subBuild)" == v)
        }
        if let e = f["encryption"] as? String { #expect(UInt64(p.encryption?.rawValue ?? 0xFF) == hexValue(e)) }
        if let s = f["instopt"] as? String { #expect(p.instance == s) }
        if let t = f["threadid"] as? Int { #expect(p.threadID.map(Int.init) == t) }
        if let m = f["mars"] as? Int { #expect(p.mars == (m != 0)) }
        if let n = f["traceid_length"] as? Int { #expect(p.traceID?.count == n) }
        if let n = f["fedauthrequired"] as? Int { #expect(p.fedAuthRequired.map(Int.init) == n) }
        if let n = f["nonce_length"] as? Int { #expect(p.nonce?.count == n) }
    }

    private func checkLogin7(_ l: Login7, _ f: [String: any Sendable], packetCount: Int, payload: [UInt8]) {
        func hex(_ key: String) -> UInt64? { (f[key] as? String).flatMap(hexValue) }
        func u32(_ i: Int) -> Int { (0..<4).reduce(0) { $0 | Int(payload[i + $1]) << (8 * $1) } }
        if let v = f["length"] as? Int { #expect(u32(0) == v) }
        if let v = f["message_length"] as? Int { #expect(payload.count == v) }
        if let v = f["odbc_flag"] as? Bool { #expect((l.optionFlags2 & 0x02 != 0) == v) }
        if let v = f["feature_ext_offset"] as? Int {
            let ext = Int(payload[56]) | Int(payload[57]) << 8
            #expect(l.hasFeatureExtension)
            #expect(u32(ext) == v)
            // Every driver captured here puts the block last.
            #expect(payload.last == 0xFF)
        }
        if f["feature_ext_terminated"] as? Bool == true { #expect(!l.features.isEmpty || payload.last == 0xFF) }
        if let v = hex("tds_version") { #expect(UInt64(l.tdsVersion) == v) }
        if let v = f["packet_size"] as? Int { #expect(Int(l.packetSize) == v) }
        if let v = hex("client_prog_ver") { #expect(UInt64(l.clientProgramVersion) == v) }
        if let v = f["client_pid"] as? Int { #expect(Int(l.clientPID) == v) }
        if let v = hex("option_flags1") { #expect(UInt64(l.optionFlags1) == v) }
        if let v = hex("option_flags2") { #expect(UInt64(l.optionFlags2) == v) }
        if let v = hex("type_flags") { #expect(UInt64(l.typeFlags) == v) }
        if let v = hex("option_flags3") { #expect(UInt64(l.optionFlags3) == v) }
        if let v = f["client_time_zone"] as? Int { #expect(Int(l.clientTimeZone) == v) }
        if let v = hex("lcid") { #expect(UInt64(l.clientLCID) == v) }
        if let v = f["integrated_security"] as? Bool { #expect(l.integratedSecurity == v) }
        if let v = f["read_only_intent"] as? Bool { #expect(l.readOnlyIntent == v) }
        let strings: [(String, String)] = [
            ("host_name", l.hostName), ("user_name", l.userName), ("password", l.password), ("app_name", l.appName),
            ("server_name", l.serverName), ("client_interface", l.clientInterfaceName), ("language", l.language),
            ("database", l.database),
        ]
        for (key, value) in strings {
            if let expected = f[key] as? String { #expect(value == expected, "LOGIN7.\(key)") }
        }
        if let v = f["client_id"] as? String { #expect(hexString(l.clientID) == v) }
        if let v = f["sspi_length"] as? Int { #expect(l.sspi.count == v) }
        if let v = f["packet_count"] as? Int { #expect(packetCount == v) }
        if let v = f["feature_ids"] as? [any Sendable] {
            #expect(l.features.map { Int($0.id) } == v.compactMap { $0 as? Int })
        }
        if let list = f["features"] as? [any Sendable] {
            for (i, item) in list.enumerated() {
                guard let d = item as? [String: any Sendable], i < l.features.count else { continue }
                if let n = d["length"] as? Int { #expect(l.features[i].data.count == n) }
                if let h = d["data_hex"] as? String, !h.isEmpty { #expect(hexString(l.features[i].data).hasPrefix(h)) }
                if let name = d["name"] as? String { #expect(l.features[i].name == name) }
            }
        }
        if let v = f["has_fedauth_token"] as? Bool {
            var hasToken = false
            if case .securityToken(let token, _, _) = l.fedAuth { hasToken = !token.isEmpty }
            #expect(hasToken == v)
        }
    }

    private func checkHeaders(_ h: AllHeaders?, _ f: [String: any Sendable]) {
        guard let headers = f["headers"] as? [String: any Sendable] else { return }
        if let d = headers["transaction_descriptor"] as? String {
            let bytes = hexBytes(d)
            let v = bytes.enumerated().reduce(UInt64(0)) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
            #expect(h?.transactionDescriptor == v)
        }
        if let n = headers["outstanding_requests"] as? Int { #expect(h?.outstandingRequestCount.map(Int.init) == n) }
    }

    private func checkRPC(_ r: RPCRequest, _ f: [String: any Sendable]) {
        checkHeaders(r.allHeaders, f)
        if let id = f["proc_id"] as? Int { #expect(r.procedure == .id(UInt16(id))) }
        if let n = f["proc_id_name"] as? String { #expect(r.procedure.displayName == n) }
        if let n = f["proc_name"] as? String { #expect(r.procedure == .name(n)) }
        if let o = f["option_flags"] as? String { #expect(UInt64(r.optionFlags) == hexValue(o)) }
        guard let params = f["params"] as? [any Sendable] else { return }
        #expect(r.parameters.count == params.count)
        for (p, item) in zip(r.parameters, params) {
            guard let d = item as? [String: any Sendable] else { continue }
            if let n = d["name"] as? String { #expect(p.name == n) }
            if let o = d["output"] as? Bool { #expect(p.isOutput == o) }
            if let t = d["type"] as? String { #expect(fixtureTypeName(p.type) == t) }
            switch d["value"] {
            case let s as String: #expect(p.value == .string(s))
            case let n as Int: #expect(p.value == .int(Int64(n)))
            case let b as Bool: #expect(p.value == .bit(b))
            default: #expect(p.value == .null)
            }
        }
    }

    private func checkTM(_ t: TransactionManagerRequest, _ f: [String: any Sendable]) {
        checkHeaders(t.allHeaders, f)
        if let v = f["request_type"] as? Int { #expect(Int(t.requestType) == v) }
        if let v = f["request"] as? String { #expect(t.requestName == v) }
        if let v = f["name"] as? String { #expect(t.transactionName == v) }
        if f["isolation_level"] as? String == "no_change" { #expect(t.isolationLevel == 0) }
        if let v = f["begin_new"] as? Bool { #expect(t.beginsNewTransaction == v) }
        if let v = f["new_name"] as? String { #expect(t.newTransaction?.name == v) }
        if f["new_isolation_level"] as? String == "no_change" { #expect(t.newTransaction?.isolationLevel == 0) }
    }

    /// The decoder's spelling of a TYPE_INFO ("intn(4)", "nvarchar(max)").
    private func fixtureTypeName(_ t: TDSTypeInfo) -> String {
        switch t {
        case .intN(let l): return "intn(\(l))"
        case .bitN: return "bitn(1)"
        case .floatN(let l): return "floatn(\(l))"
        case .nvarchar(let m, _): return m == 0xFFFF ? "nvarchar(max)" : "nvarchar(\(m))"
        case .varchar(let m, _): return m == 0xFFFF ? "varchar(max)" : "varchar(\(m))"
        case .varbinary(let m): return m == 0xFFFF ? "varbinary(max)" : "varbinary(\(m))"
        default: return t.sqlName
        }
    }
}
