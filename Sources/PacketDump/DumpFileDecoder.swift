import NIOCore
import TDS

/// One TCP connection of a capture, both directions reassembled.
public struct CapturedTCPConnection: Sendable {
    public var client: DumpSocketAddress
    public var server: DumpSocketAddress
    /// Payload chunks of both directions in capture order; `fromClient` says whose.
    public var chunks: [(fromClient: Bool, bytes: ArraySlice<UInt8>, time: DumpTimestamp, gapBefore: Int)]

    /// Everything one side sent, in order.
    public func stream(fromClient: Bool) -> [UInt8] {
        var out: [UInt8] = []
        for c in chunks where c.fromClient == fromClient { out += c.bytes }
        return out
    }
}

/// Offline decode of a capture or hex dump into the same text the live dump writes.
public enum DumpFileDecoder {
    public static let tlsAfterPrelogin = "this session is TLS-encrypted after PRELOGIN; its contents cannot be decoded from a capture — use tdsgate's dump mode"
    public static let tlsStrict = "this session is TLS-encrypted from its first byte (TDS 8.0 strict); its contents cannot be decoded from a capture — use tdsgate's dump mode"

    /// TCP connections of a pcap/pcapng file that carry TDS: on `port` when given, else those
    /// whose client opened with PRELOGIN or LOGIN7, or that use port 1433.
    public static func tdsConnections(in bytes: [UInt8], port: UInt16? = nil) throws -> (connections: [CapturedTCPConnection], frames: Int, note: String?) {
        let (frames, note) = try CaptureFileReader.frames(bytes)
        struct Key: Hashable { var a: DumpSocketAddress; var b: DumpSocketAddress }
        var order: [Key] = []
        var streams: [Key: TCPStreamAssembler] = [:]
        var firstSeen: [Key: Int] = [:]
        for frame in frames {
            guard let seg = CaptureFileReader.tcpSegment(frame) else { continue }
            let key = Key(a: seg.source, b: seg.destination)
            if streams[key] == nil {
                streams[key] = TCPStreamAssembler()
                order.append(key)
                firstSeen[key] = order.count
            }
            streams[key]?.add(seg)
        }
        var done = Set<Key>()
        var result: [CapturedTCPConnection] = []
        for key in order where !done.contains(key) {
            let reverse = Key(a: key.b, b: key.a)
            done.insert(key)
            done.insert(reverse)
            var forward = streams[key] ?? TCPStreamAssembler()
            var backward = streams[reverse] ?? TCPStreamAssembler()
            forward.finish()
            backward.finish()
            // The side that sent a bare SYN is the client; else the one talking to the TDS port
            // or opening with a TDS request.
            var clientIsA: Bool
            if forward.sawSYN && !forward.sawSYNACK { clientIsA = true } else if backward.sawSYN && !backward.sawSYNACK { clientIsA = false } else {
                let wanted = port ?? 1433
                if key.b.port == wanted { clientIsA = true } else if key.a.port == wanted { clientIsA = false } else {
                    clientIsA = looksLikeTDSRequest(forward.chunks.first?.bytes) || !looksLikeTDSRequest(backward.chunks.first?.bytes)
                }
            }
            let (c, s) = clientIsA ? (forward, backward) : (backward, forward)
            let client = clientIsA ? key.a : key.b
            let server = clientIsA ? key.b : key.a
            let isTDS: Bool
            if let port {
                isTDS = client.port == port || server.port == port
            } else {
                isTDS = server.port == 1433 || client.port == 1433 || looksLikeTDSRequest(c.chunks.first?.bytes)
            }
            guard isTDS, !(c.chunks.isEmpty && s.chunks.isEmpty) else { continue }
            var chunks: [(fromClient: Bool, bytes: ArraySlice<UInt8>, time: DumpTimestamp, gapBefore: Int)] = []
            var i = 0, j = 0
            while i < c.chunks.count || j < s.chunks.count {
                let takeClient = j >= s.chunks.count || (i < c.chunks.count && c.chunks[i].time <= s.chunks[j].time)
                if takeClient {
                    chunks.append((true, c.chunks[i].bytes, c.chunks[i].time, c.chunks[i].gapBefore))
                    i += 1
                } else {
                    chunks.append((false, s.chunks[j].bytes, s.chunks[j].time, s.chunks[j].gapBefore))
                    j += 1
                }
            }
            result.append(CapturedTCPConnection(client: client, server: server, chunks: chunks))
        }
        return (result, frames.count, note)
    }

    static func looksLikeTDSRequest(_ bytes: ArraySlice<UInt8>?) -> Bool {
        guard let b = bytes, b.count >= 8 else { return false }
        let type = b[b.startIndex]
        let length = Int(b[b.startIndex + 2]) << 8 | Int(b[b.startIndex + 3])
        return (type == 0x12 || type == 0x10) && length >= 8 && b[b.startIndex + 1] & ~0x1B == 0
    }

    /// Decodes a file's bytes (pcapng, pcap or hex text, detected by content) to dump text.
    public static func decode(_ bytes: [UInt8], port: UInt16? = nil, options: DumpTextOptions = DumpTextOptions(),
                              name: String = "input") throws -> String {
        switch CaptureFileReader.detect(bytes) {
        case .pcapng?, .pcap?:
            let format = CaptureFileReader.detect(bytes) == .pcapng ? "pcapng" : "pcap"
            let (connections, frames, note) = try tdsConnections(in: bytes, port: port)
            var out = "# \(name): \(format), \(frames) frames, \(connections.count) TDS connection\(connections.count == 1 ? "" : "s")\n"
            if let note { out += "# note: \(note)\n" }
            if connections.isEmpty {
                out += "# no TDS traffic found (try --port)\n"
            }
            for (n, c) in connections.enumerated() {
                out += "\n=== connection \(n + 1): \(c.client) -> \(c.server) ===\n"
                out += decode(connection: c, options: options)
            }
            return out
        case .hex?:
            let stream = try HexDumpReader.parse(String(decoding: bytes, as: UTF8.self))
            var out = "# \(name): hex, \(DumpText.grouped(stream.count)) bytes\n\n"
            let fromServer = stream.first == 0x04
            let connection = CapturedTCPConnection(
                client: DumpSocketAddress(ipv4: 0, 0, 0, 0, port: 0), server: DumpSocketAddress(ipv4: 0, 0, 0, 0, port: 0),
                chunks: [(!fromServer, stream[...], DumpTimestamp(nanosecondsSinceEpoch: 0), 0)])
            out += decode(connection: connection, options: options)
            return out
        case nil:
            throw DumpReadError("unrecognised file format: expected pcapng, pcap or hex text")
        }
    }

    /// Frames both directions into TDS packets and decodes them in capture order.
    public static func decode(connection: CapturedTCPConnection, options: DumpTextOptions) -> String {
        var decoders = [true: DumpStreamDecoder(direction: .clientToProxy, options: options),
                        false: DumpStreamDecoder(direction: .proxyToClient, options: options)]
        decoders[true]?.label = "client->server"
        decoders[false]?.label = "server->client"
        var framers = [true: TDSPacketFramer(), false: TDSPacketFramer()]
        var out = ""
        for chunk in connection.chunks {
            guard var framer = framers[chunk.fromClient] else { continue }
            if chunk.gapBefore > 0 { out += "(capture is missing \(chunk.gapBefore) bytes of the \(chunk.fromClient ? "client" : "server") side here)\n" }
            let result = framer.append(chunk.bytes, gap: chunk.gapBefore > 0)
            framers[chunk.fromClient] = framer
            for packet in result.packets {
                out += decoders[chunk.fromClient]?.feed(packet: packet, at: chunk.time).joined() ?? ""
            }
            if let stop = result.stop {
                switch stop {
                case .tls(let atStart):
                    out += (atStart && (decoders[true]?.messageCount ?? 0) == 0 && (decoders[false]?.messageCount ?? 0) == 0)
                        ? tlsStrict + "\n" : tlsAfterPrelogin + "\n"
                    return out
                case .corrupt(let why):
                    out += "\(RequestText.failure): \(chunk.fromClient ? "client" : "server") stream is not TDS from here (\(why)); the rest of that side is skipped\n"
                }
            }
        }
        for side in [true, false] {
            out += decoders[side]?.finish().joined() ?? ""
            if let f = framers[side], f.leftover > 0, !f.stopped {
                out += "\(RequestText.failure): \(f.leftover) bytes of an incomplete packet at the end of the \(side ? "client" : "server") stream\n"
            }
        }
        return out
    }
}

/// Cuts a TCP byte stream into TDS packets by their header lengths, and notices when the
/// stream is TLS instead.
struct TDSPacketFramer: Sendable {
    enum Stop: Sendable {
        case tls(atStart: Bool)
        case corrupt(String)
    }

    private var buffer = ByteBuffer()
    private(set) var stopped = false
    private var delivered = 0

    var leftover: Int { buffer.readableBytes }

    mutating func append(_ bytes: ArraySlice<UInt8>, gap: Bool) -> (packets: [ByteBuffer], stop: Stop?) {
        guard !stopped else { return ([], nil) }
        if gap { buffer.clear() }
        buffer.writeBytes(bytes)
        var packets: [ByteBuffer] = []
        while buffer.readableBytes >= 2 {
            let b0 = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) ?? 0
            let b1 = buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self) ?? 0
            if (0x14...0x17).contains(b0), b1 == 0x03 {
                stopped = true
                return (packets, .tls(atStart: delivered == 0))
            }
            guard buffer.readableBytes >= TDSPacketHeader.size else { break }
            let length = Int(buffer.getInteger(at: buffer.readerIndex + 2, endianness: .big, as: UInt16.self) ?? 0)
            guard length >= TDSPacketHeader.size, b0 != 0, b0 <= 0x12 else {
                stopped = true
                return (packets, .corrupt("packet header type \(DumpText.hex8(b0)) length \(length)"))
            }
            guard buffer.readableBytes >= length, let packet = buffer.readSlice(length: length) else { break }
            packets.append(packet)
            delivered += 1
        }
        buffer.discardReadBytes()
        return (packets, nil)
    }
}
