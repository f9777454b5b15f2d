import Foundation
import NIOCore
@testable import PacketDump
@testable import TDS

enum Fixtures {
    static let directory: URL = URL(fileURLWithPath: #filePath).resolvingSymlinksInPath()
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("Fixtures", isDirectory: true).resolvingSymlinksInPath()

    static var hexFiles: [URL] {
        ((try? FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: nil)) ?? [])
            .filter { $0.pathExtension == "hex" }.sorted { $0.lastPathComponent < $1.lastPathComponent }
    }

    /// Packets (header + payload) of a fixture, one per non-comment line.
    static func packets(_ url: URL) throws -> [ByteBuffer] {
        let text = try String(contentsOf: url, encoding: .utf8)
        return text.split(separator: "\n").filter { !$0.hasPrefix("#") && !$0.isEmpty }.map {
            ByteBuffer(bytes: (try? HexDumpReader.parse(String($0))) ?? [])
        }
    }

    static var index: [[String: Any]] {
        let data = (try? Data(contentsOf: directory.appendingPathComponent("index.json"))) ?? Data()
        return ((try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]]) ?? []
    }

    static let password = "Fixture-Pa55!"
}

/// Deterministic generator so fuzz failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E9B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Reassembles packets into (type, payload) messages.
func messages(_ packets: [ByteBuffer]) -> [TDSMessage] {
    var assembler = TDSMessageAssembler(maxMessageSize: 1 << 26)
    var out: [TDSMessage] = []
    for p in packets {
        var b = p
        while let packet = try? TDSPacket.read(from: &b, maxPacketSize: 65535) {
            if let m = try? assembler.append(packet) { out.append(m) }
        }
    }
    return out
}

func packetize(_ type: TDSPacketType, _ payload: ByteBuffer, packetSize: Int = 4096) -> [ByteBuffer] {
    var buffer = ByteBuffer()
    TDSMessage(type: type, payload: payload).writePackets(into: &buffer, packetSize: packetSize)
    var out: [ByteBuffer] = []
    while let p = try? TDSPacket.read(from: &buffer, maxPacketSize: 65535) {
        var whole = ByteBuffer()
        p.write(into: &whole)
        out.append(whole)
    }
    return out
}

func encode(_ body: (inout ByteBuffer) -> Void) -> ByteBuffer {
    var b = ByteBuffer()
    body(&b)
    return b
}

let t0 = DumpTimestamp(seconds: 1_767_225_600)  // 2026-01-01T00:00:00Z

/// A reply with one result set of `rows` rows (id int, name nvarchar(50)) and a final DONE.
func resultReply(rows: Int, text: (Int) -> String = { "name \($0)" }) -> ByteBuffer {
    let cols = [TDSColumn(name: "id", type: .intN(length: 4), flags: 0), TDSColumn(name: "name", type: .nvarchar(maxLength: 8000))]
    var writer = TDSTokenWriter()
    return encode { b in
        writer.write(.colMetadata(cols), into: &b)
        for i in 0..<rows { writer.write(.row([.int(Int64(i)), .string(text(i))]), into: &b) }
        writer.write(.done(Done(status: [.count], currentCommand: 193, rowCount: UInt64(rows))), into: &b)
    }
}
