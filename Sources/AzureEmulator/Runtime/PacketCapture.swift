import Foundation
import NIOCore
import Synchronization
import TDS

/// Records what clients send to a node, decrypted, one file per session in the Fixtures
/// format (`#` comment lines, then one client packet per line in hex). This is how the
/// TLS, login-only and strict-mode fixtures were captured from real drivers.
final class PacketCapture: Sendable {
    private let file: Mutex<FileHandle?>

    init?(directory: URL, node: String, session: Int, client: String) {
        try? FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let url = directory.appendingPathComponent("\(node)-session\(session).hex")
        guard FileManager.default.createFile(atPath: url.path, contents: nil),
              let handle = try? FileHandle(forWritingTo: url) else { return nil }
        let header = "# captured by tdsgate emulate --capture-dir: node \(node), client \(client), \(ISO8601DateFormatter().string(from: Date()))\n"
        handle.write(Data(header.utf8))
        file = Mutex(handle)
    }

    func record(_ packet: TDSPacket) {
        var bytes = ByteBuffer()
        packet.header.write(into: &bytes)
        var payload = packet.payload
        bytes.writeBuffer(&payload)
        let hex = bytes.readableBytesView.map { String(format: "%02x", $0) }.joined() + "\n"
        file.withLock { $0?.write(Data(hex.utf8)) }
    }

    deinit {
        file.withLock { try? $0?.close() }
    }
}
