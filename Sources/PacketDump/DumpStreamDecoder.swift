import NIOCore
import TDS

/// Per-session, per-direction decoder: fed TDS packets (8-byte header + payload, decrypted)
/// in arrival order, returns a rendered text block each time a message completes. Requests are
/// kept up to `maxBufferedRequestBytes`; replies are decoded as they stream, so a reply of any
/// size costs bounded memory and its summary (result sets, row counts, DONE) comes at its end.
/// Credentials are redacted before anything is rendered, whatever the caller passed in.
public struct DumpStreamDecoder: Sendable {
    public let direction: DumpDirection
    public var options: DumpTextOptions
    /// Names the direction in block titles; offline decodes say "client->server" instead.
    public var label: String
    /// A TLS handshake was seen inside PRELOGIN packets: what follows on the wire is encrypted.
    public private(set) var sawTLSHandshake = false
    public private(set) var messageCount = 0

    private enum Body: Sendable {
        case buffered(ByteBuffer)
        case reply(ReplyDecoder)
    }

    private struct Current: Sendable {
        var type: TDSPacketType
        var start: DumpTimestamp
        var headerLines: [String] = []
        var lastHeaderLine: String?
        var packetCount = 0
        var totalBytes = 0
        var body: Body
        var notes: [String] = []
    }

    private var current: Current?
    /// Carries DATACLASSIFICATION layout from the login reply to later replies.
    private var scanner = TDSTokenScanner()

    public init(direction: DumpDirection, options: DumpTextOptions = DumpTextOptions()) {
        self.direction = direction
        self.options = options
        self.label = direction.description
    }

    /// Bytes held for the message in progress (tests check replies stay bounded).
    var bufferedByteCount: Int {
        switch current?.body {
        case .buffered(let b)?: return b.readableBytes
        case .reply(let r)?: return r.pendingByteCount
        case nil: return 0
        }
    }

    /// Feeds one packet; returns the blocks of the messages it completed (zero or one, two when
    /// a packet of another type cut the previous message short).
    public mutating func feed(packet: ByteBuffer, at time: DumpTimestamp) -> [String] {
        guard let header = try? TDSPacketHeader.peek(from: packet) else {
            return [block(time: time, title: "not a TDS packet (\(packet.readableBytes) bytes)",
                          lines: ["\(RequestText.failure): packet shorter than 8 bytes or with a length below 8"]
                              + DumpText.hexDump(packet.dumpBytes, limit: 256))]
        }
        var out: [String] = []
        var payload = packet
        payload.moveReaderIndex(forwardBy: TDSPacketHeader.size)
        var notes: [String] = []
        if Int(header.length) != packet.readableBytes {
            notes.append("note: header length \(header.length) but the packet has \(packet.readableBytes) bytes")
        }
        if let c = current, c.type != header.type {
            out.append(finishCurrent(note: "\(RequestText.failure): message cut short by a \(header.type) packet before its end"))
        }
        if current == nil { start(header: header, payload: payload, at: time) }
        current?.notes += notes
        append(header: header, payload: payload)
        if header.status.contains(.endOfMessage) {
            out.append(finishCurrent(note: nil))
        }
        return out
    }

    /// The stream ended: renders a message still missing its last packet.
    public mutating func finish() -> [String] {
        guard current != nil else { return [] }
        return [finishCurrent(note: "\(RequestText.failure): the stream ended before the message's last packet")]
    }

    private mutating func start(header: TDSPacketHeader, payload: ByteBuffer, at time: DumpTimestamp) {
        let body: Body
        if header.type == .tabularResult, !startsLikePrelogin(payload) {
            body = .reply(ReplyDecoder(scanner: scanner, options: options))
        } else {
            body = .buffered(ByteBuffer())
        }
        current = Current(type: header.type, start: time, body: body)
    }

    /// A server's PRELOGIN answer is a 0x04 message whose body begins with the VERSION option
    /// (token 0x00), a byte no token stream starts with; TLS records ride in PRELOGIN too.
    private func startsLikePrelogin(_ payload: ByteBuffer) -> Bool {
        guard let first = payload.getInteger(at: payload.readerIndex, as: UInt8.self) else { return false }
        return first == 0x00 || RequestText.isTLSRecord(payload)
    }

    private mutating func append(header: TDSPacketHeader, payload: ByteBuffer) {
        guard var c = current else { return }
        current = nil
        c.packetCount += 1
        c.totalBytes += payload.readableBytes
        let line = "packet \(c.packetCount): " + DumpStreamDecoder.describe(header, fromClient: direction.isFromClientSide)
        if c.headerLines.count < 3 { c.headerLines.append(line) } else { c.lastHeaderLine = line }
        switch c.body {
        case .buffered(var b):
            c.body = .buffered(ByteBuffer())
            let room = options.maxBufferedRequestBytes - b.readableBytes
            if room > 0 {
                var part = payload.getSlice(at: payload.readerIndex, length: min(room, payload.readableBytes)) ?? ByteBuffer()
                b.writeBuffer(&part)
            }
            c.body = .buffered(b)
        case .reply(var r):
            c.body = .buffered(ByteBuffer())
            r.feed(payload)
            c.body = .reply(r)
        }
        current = c
    }

    private mutating func finishCurrent(note: String?) -> String {
        guard let c = current else { return "" }
        current = nil
        messageCount += 1
        var lines = c.headerLines
        if c.packetCount > 4 { lines.append("… \(c.packetCount - 4) more packets") }
        if let last = c.lastHeaderLine { lines.append(last) }
        lines += c.notes
        var decode: [String]
        switch c.body {
        case .buffered(var payload):
            let report = SecretRedactor.redact(type: c.type, payload: &payload)
            if c.type == .prelogin || c.type == .tabularResult {
                decode = RequestText.prelogin(payload)
                if RequestText.isTLSRecord(payload) { sawTLSHandshake = true }
                if options.hex, !RequestText.isTLSRecord(payload) {
                    decode.append("hex:")
                    decode += DumpText.hexDump(payload.dumpBytes, limit: options.maxHexBytes)
                }
            } else {
                decode = RequestText.render(type: c.type, payload: payload, totalBytes: c.totalBytes, options: options)
            }
            if let n = report.note { decode.append("note: \(n)") }
        case .reply(var r):
            decode = r.finish()
            scanner = r.scannerState
            decode.insert("REPLY (\(r.tokenCount) tokens)", at: 0)
        }
        if let note { decode.append(note) }
        lines += decode.map { "  " + $0 }
        let title = "\(c.type) message, \(c.packetCount) packet\(c.packetCount == 1 ? "" : "s"), \(DumpText.grouped(c.totalBytes)) payload bytes"
        return block(time: c.start, title: title, lines: lines)
    }

    private func block(time: DumpTimestamp, title: String, lines: [String]) -> String {
        var s = "[\(time)] \(label) \(title)\n"
        for l in lines { s += "  " + l + "\n" }
        return s
    }

    static func describe(_ h: TDSPacketHeader, fromClient: Bool) -> String {
        let names: [(UInt8, String)] = [(0x01, "EOM"), (0x02, "IGNORE"), (0x08, "RESET_CONNECTION"), (0x10, "RESET_CONNECTION_SKIP_TRAN")]
        return "type \(h.type) (\(DumpText.hex8(h.type.rawValue))), status \(DumpText.hex8(h.status.rawValue)) "
            + "\(DumpText.flags(h.status.rawValue, names)), length \(h.length), SPID \(h.spid), packet id \(h.packetID), window \(h.window)"
    }
}

/// Whole-message rendering for callers that already hold reassembled messages.
public enum DumpTextRenderer {
    /// Renders one message as it would appear in a dump (split into 4,096-byte packets).
    public static func render(message: TDSMessage, direction: DumpDirection, at time: DumpTimestamp,
                              options: DumpTextOptions = DumpTextOptions()) -> String {
        var buffer = ByteBuffer()
        message.writePackets(into: &buffer, packetSize: 4096)
        var decoder = DumpStreamDecoder(direction: direction, options: options)
        var out = ""
        while let packet = try? TDSPacket.read(from: &buffer, maxPacketSize: 65535) {
            var whole = ByteBuffer()
            packet.write(into: &whole)
            out += decoder.feed(packet: whole, at: time).joined()
        }
        out += decoder.finish().joined()
        return out
    }

    /// Renders packets (header + payload each) of one direction, in order.
    public static func render(packets: [ByteBuffer], direction: DumpDirection, at time: DumpTimestamp,
                              options: DumpTextOptions = DumpTextOptions()) -> String {
        var decoder = DumpStreamDecoder(direction: direction, options: options)
        var out = ""
        for p in packets { out += decoder.feed(packet: p, at: time).joined() }
        return out + decoder.finish().joined()
    }
}
