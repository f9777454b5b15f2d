import Foundation
import Gateway
import Identity
import NIOCore
import PacketDump
import TDS
import TDSNIO

/// One libFuzzer target: bytes in, and either a clean result or a trap (a crash, or an
/// invariant below broken). Parsers may refuse input only with their own error types.
struct FuzzTarget: Sendable {
    let name: String
    let summary: String
    let run: @Sendable ([UInt8]) -> Void
}

/// An invariant the code under test broke: libFuzzer records the input as a crash.
func fuzzFail(_ what: String) -> Never {
    fatalError("invariant broken: \(what)")
}

/// Runs a parser that must either succeed or throw one of the `allowed` error types.
func decoding(_ target: String, allowed: [any Error.Type] = [TDSDecodingError.self], _ body: () throws -> Void) {
    do {
        try body()
    } catch {
        guard allowed.contains(where: { type(of: error) == $0 }) else {
            fuzzFail("\(target) threw \(type(of: error)): \(error)")
        }
    }
}

enum FuzzTargets {
    /// Set once by LLVMFuzzerInitialize, before any input runs.
    nonisolated(unsafe) static var selected: FuzzTarget?

    static func named(_ name: String) -> FuzzTarget? { all.first { $0.name == name } }

    /// Every target. A new decoder of outside bytes gets a line here and seeds in
    /// `FuzzSeeds`; Tests/fuzz.sh picks up the list from `TDSFuzz list` on its own.
    static let all: [FuzzTarget] = [
        FuzzTarget(name: "packets", summary: "packet headers and reassembly with the client caps (TDSMessageFramer), split at any point", run: packets),
        FuzzTarget(name: "transport", summary: "TransportFraming: TDS vs TLS bytes in each transport mode", run: transport),
        FuzzTarget(name: "prelogin", summary: "PRELOGIN option table, getters and round trip", run: prelogin),
        FuzzTarget(name: "login7", summary: "LOGIN7 with FeatureExt, secret ranges, credential swap and round trip", run: login7),
        FuzzTarget(name: "login-reply", summary: "token stream parser (login replies, results), whole vs in two pieces", run: loginReply),
        FuzzTarget(name: "token-scanner", summary: "the relay's token scanner, whole vs in pieces", run: tokenScanner),
        FuzzTarget(name: "smp", summary: "SMP (MARS) frames and the SMP session machine", run: smp),
        FuzzTarget(name: "sql-batch", summary: "SQL batch, ALL_HEADERS, transaction manager and FEDAUTH token messages", run: sqlBatch),
        FuzzTarget(name: "rpc", summary: "RPC requests with typed parameters, and round trip", run: rpc),
        FuzzTarget(name: "dump-render", summary: "PacketDump rendering and secret redaction of any message", run: dumpRender),
        FuzzTarget(name: "capture", summary: "capture readers: pcapng, pcap, hex dumps, TCP reassembly", run: capture),
        FuzzTarget(name: "jwt", summary: "Entra token validation: raw tokens, and signed tokens with fuzzed claims", run: JWTFuzz.run),
        FuzzTarget(name: "config-yaml", summary: "the proxy's YAML configuration reader", run: configYAML),
        FuzzTarget(name: "proxy-protocol", summary: "PROXY protocol v1/v2 headers: the parser and the listener's receiver, whole vs in pieces", run: ProxyProtocolFuzz.run),
    ]

    // MARK: TDS framing

    static func packets(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let input = ByteBuffer(bytes: bytes.dropFirst())
        func frame(chunk: Int) -> (outputs: [String], failed: Bool) {
            var framer = TDSMessageFramer(maxMessageSize: TDSMessageCaps.clientBeforeLogin, reportsPackets: true)
            var rest = input
            var outputs: [String] = []
            var failed = false
            while rest.readableBytes > 0 {
                let piece = rest.readSlice(length: min(chunk, rest.readableBytes))!
                let (out, error) = framer.receive(piece)
                for o in out {
                    switch o {
                    case .packet(let p):
                        outputs.append("p\(p.header.type.rawValue):\(p.header.length):\(p.payload.readableBytes)")
                    case .message(let m):
                        let cap = TDSMessageCaps.clientBeforeLogin(m.type)
                        guard m.payload.readableBytes <= cap else { fuzzFail("a \(m.type) message of \(m.payload.readableBytes) bytes passed its cap \(cap)") }
                        outputs.append("m\(m.type.rawValue):\(m.status.rawValue):\(Array(m.payload.readableBytesView).hashValue)")
                    }
                }
                if error != nil { failed = true }
                guard framer.bufferedBytes <= framer.maxPacketSize else { fuzzFail("framer holds \(framer.bufferedBytes) bytes") }
            }
            if failed, !framer.receive(ByteBuffer(bytes: [0x12, 1, 0, 9, 0, 0, 1, 0, 0])).outputs.isEmpty {
                fuzzFail("a failed framer produced output")
            }
            return (outputs, failed)
        }
        let whole = frame(chunk: Int.max)
        let split = frame(chunk: 1 + Int(first) % 97)
        guard whole.outputs == split.outputs, whole.failed == split.failed else {
            fuzzFail("framing depends on how bytes are split: \(whole) vs \(split)")
        }
    }

    static func transport(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        var framing = TransportFraming(maxHandshakePacket: 32_768)
        switch first % 4 {
        case 1: framing.startHandshakeInPrelogin()
        case 2:
            framing.loginOnly = true
            framing.startHandshakeInPrelogin()
        case 3: framing.markPlain()
        default: break
        }
        var rest = ByteBuffer(bytes: bytes.dropFirst())
        let chunk = 1 + Int(first >> 2) % 61
        decoding("TransportFraming", allowed: [TransportError.self]) {
            while rest.readableBytes > 0 {
                let piece = rest.readSlice(length: min(chunk, rest.readableBytes))!
                var total = 0
                for inbound in try framing.receive(piece) {
                    switch inbound {
                    case .tlsBytes(let b), .plainBytes(let b), .bypassBytes(let b): total += b.readableBytes
                    case .strictDetected: break
                    }
                }
                _ = (framing.isPassThrough, framing.wrapsOutbound, total)
            }
        }
    }

    // MARK: Client messages

    static func prelogin(_ bytes: [UInt8]) {
        decoding("PRELOGIN") {
            let m = try PreloginMessage(parsing: ByteBuffer(bytes: bytes))
            guard m.options.count <= PreloginMessage.maxOptions else { fuzzFail("\(m.options.count) options accepted") }
            _ = (m.version, m.encryption, m.instance, m.threadID, m.mars, m.traceID, m.fedAuthRequired, m.nonce)
            var out = ByteBuffer()
            m.write(into: &out)
            // Offsets are u16: a rewritten table only reads back when it fits.
            guard out.readableBytes <= Int(UInt16.max) else { return }
            let again = try PreloginMessage(parsing: out)
            guard again == m else { fuzzFail("PRELOGIN does not survive a round trip") }
        }
    }

    static func login7(_ bytes: [UInt8]) {
        let payload = ByteBuffer(bytes: bytes)
        decoding("LOGIN7") {
            let l = try Login7(parsing: payload)
            _ = (l.fedAuth, l.userName, l.database, l.readOnlyIntent, l.integratedSecurity, l.clientInterfaceName)
            for range in try Login7.secretRanges(in: payload) {
                guard range.offset >= 0, range.length >= 0, range.offset + range.length <= bytes.count else {
                    fuzzFail("secret range \(range) outside a \(bytes.count)-byte LOGIN7")
                }
            }
            var out = ByteBuffer()
            l.write(into: &out)
            guard try Login7(parsing: out) == l else { fuzzFail("LOGIN7 does not survive a round trip") }
            let swapped = l.replacingCredentials(accessToken: "eyJ0eXAiOiJKV1QifQ.e30.c2ln", echo: true, nonce: nil)
            var out2 = ByteBuffer()
            swapped.write(into: &out2)
            guard try Login7(parsing: out2) == swapped else { fuzzFail("LOGIN7 with a swapped credential does not read back") }
        }
    }

    static func sqlBatch(_ bytes: [UInt8]) {
        let payload = ByteBuffer(bytes: bytes)
        decoding("SQLBatch") {
            let s = try SQLBatch(parsing: payload)
            var out = ByteBuffer()
            s.write(into: &out)
        }
        decoding("TransactionManagerRequest") {
            let t = try TransactionManagerRequest(parsing: payload)
            _ = (t.transactionName, t.isolationLevel, t.beginsNewTransaction, t.newTransaction)
        }
        decoding("FedAuthTokenMessage") { _ = try FedAuthTokenMessage(parsing: payload) }
        decoding("Login7FedAuth") { _ = try Login7FedAuth(featureData: bytes) }
    }

    static func rpc(_ bytes: [UInt8]) {
        decoding("RPC") {
            let r = try RPCRequest(parsing: ByteBuffer(bytes: bytes))
            var out = ByteBuffer()
            r.write(into: &out)
            let again = try RPCRequest(parsing: out)
            guard again.procedure == r.procedure, again.parameters.count == r.parameters.count else {
                fuzzFail("RPC does not survive a round trip")
            }
        }
    }

    // MARK: Server replies

    static func loginReply(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let body = Array(bytes.dropFirst())
        func parse(splitAt cut: Int) -> (tokens: [TDSToken], failed: Bool) {
            var parser = TDSTokenParser()
            var tokens: [TDSToken] = []
            var buffer = ByteBuffer(bytes: body.prefix(cut))
            do {
                tokens += try parser.parse(&buffer)
                var rest = ByteBuffer(bytes: body.dropFirst(cut))
                buffer.writeBuffer(&rest)
                tokens += try parser.parse(&buffer)
            } catch is TDSDecodingError {
                return (tokens, true)
            } catch {
                fuzzFail("token parser threw \(type(of: error))")
            }
            return (tokens, false)
        }
        func encoded(_ tokens: [TDSToken]) -> ByteBuffer {
            var writer = TDSTokenWriter()
            var out = ByteBuffer()
            writer.write(tokens, into: &out)
            return out
        }
        let whole = parse(splitAt: body.count)
        let split = parse(splitAt: body.isEmpty ? 0 : Int(first) % (body.count + 1))
        // Compared as bytes: a float column may hold NaN, which is not equal to itself.
        let out = encoded(whole.tokens)
        guard whole.failed == split.failed, whole.failed || out == encoded(split.tokens) else {
            fuzzFail("token parsing depends on how the reply is split")
        }
        decoding("re-encoded tokens") { _ = try TDSTokenParser.parseAll(out) }
    }

    static func tokenScanner(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let body = Array(bytes.dropFirst())
        func scan(chunk: Int) -> (summaries: [TDSTokenSummary], failed: Bool, complete: Bool) {
            var scanner = TDSTokenScanner()
            var summaries: [TDSTokenSummary] = []
            var buffer = ByteBuffer()
            var offset = 0
            while offset < body.count {
                let end = min(body.count, offset + chunk)
                buffer.writeBytes(body[offset..<end])
                offset = end
                do {
                    summaries += try scanner.scan(&buffer)
                } catch is TDSDecodingError {
                    return (summaries, true, scanner.isComplete)
                } catch {
                    fuzzFail("token scanner threw \(type(of: error))")
                }
                buffer.discardReadBytes()
            }
            return (summaries, false, scanner.isComplete)
        }
        let whole = scan(chunk: Int.max)
        let split = scan(chunk: 1 + Int(first) % 113)
        guard whole.failed == split.failed else { fuzzFail("token scanning fails only when split one way") }
        if !whole.failed {
            guard whole.summaries.map(\.type) == split.summaries.map(\.type), whole.complete == split.complete else {
                fuzzFail("token scanning depends on how the reply is split")
            }
        }
    }

    static func smp(_ bytes: [UInt8]) {
        var buffer = ByteBuffer(bytes: bytes)
        var connection = SMPConnection(role: .server, receiveWindow: 4, maxSessions: 16)
        let translation = SMPSequenceTranslation(up: 7, down: 0xFFFF_FFF0)
        do {
            while let frame = try SMPFrame.read(from: &buffer, maxLength: 1 << 16) {
                _ = (translation.toServer(frame.header), translation.toClient(frame.header))
                let events: [SMPConnection.Event]
                do {
                    events = try connection.receive(frame.header, payload: frame.payload)
                } catch {
                    continue
                }
                for case .data(let sid, _) in events {
                    _ = connection.consumed(sid: sid)
                    _ = connection.nextData(sid: sid, payloadLength: 100)
                }
                for case .closed(let sid) in events {
                    _ = connection.fin(sid: sid)
                    connection.remove(sid: sid)
                }
            }
        } catch is TDSDecodingError {
        } catch {
            fuzzFail("SMP framing threw \(type(of: error))")
        }
    }

    // MARK: PacketDump

    static let dumpTypes: [TDSPacketType] = [.prelogin, .login7, .sqlBatch, .rpc, .tabularResult, .transactionManager,
                                             .federatedAuthToken, .sspi, .attention, .bulkLoad, TDSPacketType(rawValue: 0x55)]

    static func dumpRender(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let type = dumpTypes[Int(first) % dumpTypes.count]
        let payload = ByteBuffer(bytes: bytes.dropFirst())
        let direction: DumpDirection = type == .tabularResult ? .backendToProxy : .clientToProxy
        let options = DumpTextOptions(hex: first & 0x80 != 0, maskLiterals: first & 0x40 != 0, maxValueCharacters: 40,
                                      maxSQLCharacters: 400, maxLinesPerMessage: 200, maxHexBytes: 256)
        let at = DumpTimestamp(seconds: 1_700_000_000)
        let text = DumpTextRenderer.render(message: TDSMessage(type: type, payload: payload), direction: direction, at: at, options: options)
        guard !text.isEmpty else { fuzzFail("empty rendering") }
        var copy = payload
        let report = SecretRedactor.redact(type: type, payload: &copy)
        guard copy.readableBytes == payload.readableBytes else { fuzzFail("redaction changed the length") }
        _ = report
        // The same bytes as a packet stream, as a dump session sees them.
        var wire = ByteBuffer()
        TDSMessage(type: type, payload: payload).writePackets(into: &wire, packetSize: 512)
        var packets: [ByteBuffer] = []
        while wire.readableBytes > 0, let length = wire.getInteger(at: wire.readerIndex + 2, as: UInt16.self) {
            packets.append(wire.readSlice(length: Int(length))!)
        }
        var decoder = DumpStreamDecoder(direction: direction, options: options)
        var redactor = StreamingRedactor(maxHeldBytes: 1 << 16)
        for p in packets {
            _ = decoder.feed(packet: p, at: at)
            _ = redactor.process(packet: p)
        }
        _ = decoder.finish()
        _ = redactor.flush()
        // And raw, as if the bytes were packets themselves.
        var raw = DumpStreamDecoder(direction: direction, options: options)
        _ = raw.feed(packet: payload, at: at)
        _ = raw.finish()
    }

    static func capture(_ bytes: [UInt8]) {
        decoding("capture", allowed: [DumpReadError.self, TDSDecodingError.self]) {
            _ = CaptureFileReader.detect(bytes)
            let (frames, _) = try CaptureFileReader.frames(bytes)
            for f in frames.prefix(1000) { _ = CaptureFileReader.tcpSegment(f) }
        }
        decoding("capture connections", allowed: [DumpReadError.self, TDSDecodingError.self]) {
            let (connections, _, _) = try DumpFileDecoder.tdsConnections(in: bytes)
            for c in connections.prefix(8) { _ = (c.stream(fromClient: true).count, c.stream(fromClient: false).count) }
        }
        decoding("capture decode", allowed: [DumpReadError.self, TDSDecodingError.self]) {
            _ = try DumpFileDecoder.decode(bytes, options: DumpTextOptions(maxLinesPerMessage: 100))
        }
        decoding("hex dump", allowed: [DumpReadError.self]) {
            _ = try HexDumpReader.parse(String(decoding: bytes, as: UTF8.self))
        }
    }

    // MARK: Configuration

    static let configDirectory: String = {
        let dir = NSTemporaryDirectory() + "tdsgate-fuzz-config-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    static func configYAML(_ bytes: [UInt8]) {
        do {
            _ = try GatewayConfig.parse(yaml: String(decoding: bytes, as: UTF8.self), baseDirectory: configDirectory, checkFiles: false)
        } catch {
            // ConfigErrors is the only thing `parse` throws (typed throws).
        }
    }
}
