import Foundation
import Testing

@testable import Spool

private func contents(_ path: String) throws -> String {
    try String(contentsOfFile: path, encoding: .utf8)
}

private func directoryBytes(_ path: String) throws -> (count: Int, bytes: Int) {
    let names = try FileManager.default.contentsOfDirectory(atPath: path)
    var total = 0
    for name in names {
        let attributes = try FileManager.default.attributesOfItem(atPath: path + "/" + name)
        total += (attributes[.size] as? Int) ?? 0
    }
    return (names.count, total)
}

private func mode(_ path: String) throws -> Int {
    let attributes = try FileManager.default.attributesOfItem(atPath: path)
    return (attributes[.posixPermissions] as? Int) ?? -1
}

@Suite struct RotatingFileSinkTests {
    @Test func rotatesAtPerFileCapAndRewritesHeader() throws {
        let dir = try TemporaryDirectory()
        let root = dir.path + "/dumps"
        let sink = try RotatingFileSink(
            directory: root, maxFileBytes: 100, maxTotalBytes: 1 << 20, keepRotated: 3,
            header: { key in Array("HDR \(key)\n".utf8) })
        // Header is 10 bytes; each record 30 bytes: 3 records fit (100 bytes), the 4th rotates.
        func rec(_ i: Int) -> [UInt8] { Array(String(format: "record %02d ", i).padding(toLength: 29, withPad: ".", startingAt: 0).utf8) + [10] }
        for i in 1...13 { try sink.write(key: "s.txt", bytes: rec(i)) }
        sink.shutdown()

        let expected: [(String, ClosedRange<Int>)] = [("s.txt", 13...13), ("s.txt.1", 10...12), ("s.txt.2", 7...9), ("s.txt.3", 4...6)]
        for (name, range) in expected {
            let text = try contents(root + "/" + name)
            let want = "HDR s.txt\n" + range.map { String(decoding: rec($0), as: UTF8.self) }.joined()
            #expect(text == want, "\(name)")
            #expect(text.utf8.count <= 100)
        }
        #expect(!FileManager.default.fileExists(atPath: root + "/s.txt.4"))
        #expect(try directoryBytes(root).count == 4)
        #expect(try mode(root) == 0o700)
        #expect(try mode(root + "/s.txt") == 0o600)
        #expect(sink.totalBytes == (try directoryBytes(root).bytes))
    }

    @Test func totalCapOverTenThousandSessionFiles() throws {
        let dir = try TemporaryDirectory()
        let cap = 200_000
        let sink = try RotatingFileSink(
            directory: dir.path, maxFileBytes: 10_000, maxTotalBytes: cap, maxOpenFiles: 16,
            header: { _ in Array("HEADER\n".utf8) })
        let fileSize = 7 + 2 * 46
        var worst = 0
        for session in 0..<10_000 {
            let key = "session-\(session).txt"
            try sink.write(key: key, bytes: Array(String(repeating: "x", count: 45).utf8) + [10])
            try sink.write(key: key, bytes: Array(String(repeating: "y", count: 45).utf8) + [10])
            try sink.close(key: key)
            worst = max(worst, sink.totalBytes)
            if session % 1000 == 999 {
                let onDisk = try directoryBytes(dir.path)
                #expect(onDisk.bytes <= cap + fileSize)
                #expect(onDisk.bytes == sink.totalBytes)
            }
        }
        sink.shutdown()
        #expect(worst <= cap)
        #expect(sink.diskCapRejections == 0)
        let onDisk = try directoryBytes(dir.path)
        #expect(onDisk.bytes <= cap)
        #expect(onDisk.count == cap / fileSize)
        // Oldest deleted first: exactly the newest sessions remain.
        #expect(FileManager.default.fileExists(atPath: dir.path + "/session-9999.txt"))
        #expect(FileManager.default.fileExists(atPath: dir.path + "/session-\(10_000 - onDisk.count).txt"))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/session-\(10_000 - onDisk.count - 1).txt"))
        #expect(try contents(dir.path + "/session-9999.txt").hasPrefix("HEADER\n"))
    }

    @Test func refusesWritesWhenOnlyOpenFilesRemain() throws {
        let dir = try TemporaryDirectory()
        let sink = try RotatingFileSink(directory: dir.path, maxFileBytes: 1000, maxTotalBytes: 250)
        try sink.write(key: "a", bytes: [UInt8](repeating: 1, count: 100))
        try sink.write(key: "b", bytes: [UInt8](repeating: 2, count: 100))
        #expect(throws: SpoolRejection(.diskCap)) {
            try sink.write(key: "c", bytes: [UInt8](repeating: 3, count: 100))
        }
        #expect(sink.diskCapRejections == 1)
        // Once "a" is closed it may be deleted to make room.
        try sink.close(key: "a")
        try sink.write(key: "c", bytes: [UInt8](repeating: 3, count: 100))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/a"))
        #expect(sink.totalBytes == 200)
        #expect(throws: SpoolRejection(.invalidKey)) { try sink.write(key: "../escape", bytes: [1]) }
        sink.shutdown()
    }

    @Test func boundedDescriptorsReopenInAppendMode() throws {
        let dir = try TemporaryDirectory()
        let sink = try RotatingFileSink(
            directory: dir.path, maxFileBytes: 1 << 20, maxTotalBytes: 1 << 20, maxOpenFiles: 3,
            header: { _ in Array("H\n".utf8) })
        for round in 0..<5 {
            for key in 0..<10 { try sink.write(key: "k\(key)", bytes: Array("\(round)\n".utf8)) }
        }
        sink.shutdown()
        for key in 0..<10 {
            #expect(try contents(dir.path + "/k\(key)") == "H\n0\n1\n2\n3\n4\n")
        }
    }

    @Test func existingFilesCountTowardsTheCap() throws {
        let dir = try TemporaryDirectory()
        try Data(repeating: 65, count: 300).write(to: URL(fileURLWithPath: dir.path + "/old.bin"))
        let sink = try RotatingFileSink(directory: dir.path, maxFileBytes: 1000, maxTotalBytes: 400)
        #expect(sink.totalBytes == 300)
        try sink.write(key: "new", bytes: [UInt8](repeating: 1, count: 200))
        #expect(!FileManager.default.fileExists(atPath: dir.path + "/old.bin"))
        #expect(sink.totalBytes == 200)
        sink.shutdown()
    }

    @Test func lineSinkCapsItsFile() async throws {
        let dir = try TemporaryDirectory()
        let path = dir.path + "/audit/log.jsonl"
        let lines = try LineSink(.file(path: path, maxBytes: 50))
        let writer = SpoolWriter(capacityBytes: 1 << 20, capacityRecords: 100, sink: lines)
        for i in 0..<10 { writer.offer(SpoolRecord(key: "x", bytes: Array("line \(i) .......\n".utf8))) }
        await writer.close()
        let current = try contents(path)
        let previous = try contents(path + ".1")
        #expect(current.utf8.count <= 50 && previous.utf8.count <= 50)
        #expect(current.hasSuffix("line 9 .......\n"))
        #expect(previous.hasSuffix("line \(9 - current.split(separator: "\n").count) .......\n"))
        #expect(try mode(path) == 0o600)
    }
}
