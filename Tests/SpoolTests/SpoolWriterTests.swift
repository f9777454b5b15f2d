import Foundation
import Testing

@testable import Spool

/// Records every sink call; optionally slow, optionally gated on the first write.
final class RecordingSink: SpoolSink, @unchecked Sendable {
    enum Event: Equatable {
        case write(String, [UInt8])
        case gap(String, Int, Int)
        case close(String)
    }

    private let lock = NSLock()
    private var _events: [Event] = []
    private var _shutdowns = 0
    let delay: TimeInterval
    let gate: DispatchSemaphore?
    let entered = DispatchSemaphore(value: 0)
    private var gated = true

    init(delay: TimeInterval = 0, gated: Bool = false) {
        self.delay = delay
        self.gate = gated ? DispatchSemaphore(value: 0) : nil
    }

    var events: [Event] { lock.withLock { _events } }
    var shutdowns: Int { lock.withLock { _shutdowns } }

    func write(key: String, bytes: [UInt8]) throws {
        if let gate, lock.withLock({ let first = gated; gated = false; return first }) {
            entered.signal()
            gate.wait()
        }
        if delay > 0 { Thread.sleep(forTimeInterval: delay) }
        lock.withLock { _events.append(.write(key, bytes)) }
    }

    func close(key: String) throws { lock.withLock { _events.append(.close(key)) } }

    func gap(key: String, droppedRecords: Int, droppedBytes: Int) throws {
        lock.withLock { _events.append(.gap(key, droppedRecords, droppedBytes)) }
    }

    func shutdown() { lock.withLock { _shutdowns += 1 } }
}

private func record(_ key: String, _ number: Int) -> SpoolRecord {
    SpoolRecord(key: key, bytes: withUnsafeBytes(of: UInt32(number).bigEndian, Array.init))
}

private func number(_ bytes: [UInt8]) -> Int {
    Int(bytes.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }.bigEndian)
}

@Suite struct SpoolWriterTests {
    @Test func fullQueueDropsWithoutBlockingAndReportsGapsInOrder() async throws {
        let sink = RecordingSink(delay: 0.002)
        let writer = SpoolWriter(capacityBytes: 1 << 20, capacityRecords: 16, sink: sink, gapReportInterval: .seconds(60))
        let threads = 8
        let perThread = 400
        let maxWait = LockedBox(0.0)
        let slowOffers = LockedBox(0)
        let accepted = LockedBox(0)
        DispatchQueue.concurrentPerform(iterations: threads) { t in
            var worst = 0.0
            var slow = 0
            var ok = 0
            for i in 0..<perThread {
                let start = DispatchTime.now().uptimeNanoseconds
                if writer.offer(record("k\(t)", i)) { ok += 1 }
                let millis = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6
                worst = max(worst, millis)
                if millis > 2 { slow += 1 }
            }
            maxWait.update { $0 = max($0, worst) }
            slowOffers.update { $0 += slow }
            accepted.update { $0 += ok }
        }
        await writer.close()
        let stats = writer.stats
        // The sink takes 2 ms per record: an offer that waited for it would take that long.
        // Allow a few scheduler hiccups on a loaded 2-core machine, nothing systematic.
        #expect(slowOffers.value <= threads * perThread / 100, "\(slowOffers.value) offers took over 2 ms")
        #expect(maxWait.value < 250, "offer waited \(maxWait.value) ms")
        #expect(stats.droppedRecords > 0)
        #expect(stats.droppedRecords + accepted.value == threads * perThread)
        #expect(stats.writtenRecords == accepted.value)
        #expect(stats.droppedBytes == stats.droppedRecords * 4)
        #expect(stats.queuedRecords == 0 && stats.queuedBytes == 0)
        #expect(sink.shutdowns == 1)

        // Per key: written numbers ascend, and each gap accounts exactly for the numbers
        // missing at that point of the stream (trailing drops are reported at close).
        for t in 0..<threads {
            let key = "k\(t)"
            var expectedNext = 0
            var pendingGap = 0
            for event in sink.events {
                switch event {
                case .gap(key, let records, let bytes):
                    #expect(bytes == records * 4)
                    pendingGap += records
                case .write(key, let bytes):
                    let n = number(bytes)
                    #expect(n - expectedNext == pendingGap, "key \(key): \(n - expectedNext) missing before \(n), gap said \(pendingGap)")
                    expectedNext = n + 1
                    pendingGap = 0
                default:
                    break
                }
            }
            #expect(perThread - expectedNext == pendingGap, "trailing drops for \(key)")
        }
    }

    @Test func gapMarkerLandsInTheRightFile() async throws {
        let dir = try TemporaryDirectory()
        let files = try RotatingFileSink(
            directory: dir.path, maxFileBytes: 1 << 20, maxTotalBytes: 1 << 20,
            gapMarker: RotatingFileSink.textGapMarker)
        let gate = GatedSink(inner: files)
        let writer = SpoolWriter(capacityBytes: 1 << 20, capacityRecords: 2, sink: gate, gapReportInterval: .seconds(60))
        let text = { (s: String) in SpoolRecord(key: s.hasPrefix("a") ? "a.txt" : "b.txt", bytes: Array("\(s)\n".utf8)) }
        #expect(writer.offer(text("a1")))
        gate.entered.wait()  // the writer holds a1 inside the sink
        #expect(writer.offer(text("a2")))
        #expect(!writer.offer(text("a3")))
        #expect(!writer.offer(text("b1")))
        gate.open()
        await writer.flush()
        #expect(writer.offer(text("a4")))
        #expect(writer.offer(text("b2")))
        await writer.close()
        let a = try String(contentsOfFile: dir.path + "/a.txt", encoding: .utf8)
        let b = try String(contentsOfFile: dir.path + "/b.txt", encoding: .utf8)
        #expect(a == "a1\na2\n# spool: 1 record(s), 3 byte(s) dropped here (queue full)\na4\n")
        #expect(b == "# spool: 1 record(s), 3 byte(s) dropped here (queue full)\nb2\n")
        #expect(writer.stats.gapsReported == 2)
    }

    @Test func flushWaitsForQueuedRecordsAndCloseIsIdempotent() async throws {
        let sink = RecordingSink(delay: 0.001)
        let writer = SpoolWriter(capacityBytes: 1 << 20, capacityRecords: 1000, sink: sink)
        for i in 0..<50 { #expect(writer.offer(record("f", i))) }
        await writer.flush()
        #expect(sink.events.count == 50)
        #expect(writer.stats.writtenRecords == 50)
        #expect(writer.offer(.close(key: "f")))
        async let first: Void = writer.close()
        async let second: Void = writer.close()
        _ = await (first, second)
        await writer.close()
        #expect(sink.events.last == .close("f"))
        #expect(sink.shutdowns == 1)
        #expect(!writer.offer(record("f", 99)))
        #expect(writer.stats.droppedRecords == 1)
        await writer.flush()  // returns at once after close
    }

    @Test func closeRecordsSurviveAFullQueue() async throws {
        let sink = RecordingSink(gated: true)
        let writer = SpoolWriter(capacityBytes: 1 << 20, capacityRecords: 1, sink: sink, gapReportInterval: .seconds(60))
        #expect(writer.offer(record("x", 0)))
        sink.entered.wait()
        #expect(!writer.offer(record("y", 0)))
        // No room, but the close is kept (its payload is dropped and reported).
        #expect(!writer.offer(SpoolRecord(key: "y", bytes: [1, 2, 3], kind: .close)))
        sink.gate!.signal()
        await writer.close()
        #expect(sink.events.contains(.gap("y", 2, 7)))
        #expect(sink.events.last == .close("y"))
    }

    @Test func sinkErrorsAreCountedNotThrown() async throws {
        final class FailingSink: SpoolSink {
            struct DiskFull: Error {}
            func write(key: String, bytes: [UInt8]) throws {
                if key == "cap" { throw SpoolRejection(.diskCap) }
                throw DiskFull()
            }
            func close(key: String) throws {}
            func shutdown() {}
        }
        let writer = SpoolWriter(capacityBytes: 1000, capacityRecords: 100, sink: FailingSink())
        for i in 0..<5 { writer.offer(record("disk", i)) }
        for i in 0..<3 { writer.offer(record("cap", i)) }
        await writer.close()
        let stats = writer.stats
        #expect(stats.sinkErrors == 5)
        #expect(stats.failedRecords == 5)
        #expect(stats.rejectedRecords == 3)
        #expect(stats.writtenRecords == 0)
        #expect(stats.lostRecords == 8)
    }
}

final class LockedBox<Value: Sendable>: @unchecked Sendable {
    private let lock = NSLock()
    private var _value: Value
    init(_ value: Value) { _value = value }
    var value: Value { lock.withLock { _value } }
    func update(_ body: (inout Value) -> Void) { lock.withLock { body(&_value) } }
}

/// Holds the first write until `open()`.
final class GatedSink: SpoolSink, @unchecked Sendable {
    let inner: any SpoolSink
    let entered = DispatchSemaphore(value: 0)
    private let gate = DispatchSemaphore(value: 0)
    private var first = true

    init(inner: any SpoolSink) { self.inner = inner }
    func open() { gate.signal() }

    func write(key: String, bytes: [UInt8]) throws {
        if first {
            first = false
            entered.signal()
            gate.wait()
        }
        try inner.write(key: key, bytes: bytes)
    }
    func close(key: String) throws { try inner.close(key: key) }
    func gap(key: String, droppedRecords: Int, droppedBytes: Int) throws {
        try inner.gap(key: key, droppedRecords: droppedRecords, droppedBytes: droppedBytes)
    }
    func flush() throws { try inner.flush() }
    func shutdown() { inner.shutdown() }
}

struct TemporaryDirectory {
    let path: String
    init() throws {
        path = NSTemporaryDirectory() + "spooltest-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
}

@Suite struct SpoolWriterLingerTests {
    /// With a linger the writer waits for more records instead of waking per record; half a
    /// queue, `flush()` and `close()` cut the wait short.
    @Test func lingerGathersRecordsAndFlushCutsItShort() async throws {
        // The linger is an hour, so nothing in this test depends on how loaded the machine is:
        // a write seen before the hour is up was cut short by flush or by half a queue.
        let sink = RecordingSink()
        let writer = SpoolWriter(capacityBytes: 1 << 20, capacityRecords: 100, sink: sink, linger: .seconds(3600))
        for i in 0..<3 { #expect(writer.offer(record("f", i))) }
        try await Task.sleep(for: .milliseconds(200))
        #expect(sink.events.isEmpty, "records wait for the linger")
        await writer.flush()
        #expect(sink.events.map { if case .write(_, let b) = $0 { number(b) } else { -1 } } == [0, 1, 2])

        for i in 3..<53 { #expect(writer.offer(record("f", i))) }  // half of 100: written without waiting
        let deadline = ContinuousClock.now + .seconds(300)
        while sink.events.count < 53, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(10)) }
        #expect(sink.events.count == 53)
        await writer.close()
    }

    @Test func deferredRecordsAreRenderedOnTheWriterThreadInOrder() async throws {
        let sink = RecordingSink()
        let writer = SpoolWriter(capacityBytes: 1 << 20, capacityRecords: 100, sink: sink)
        #expect(writer.offer(record("f", 1)))
        #expect(writer.offer(key: "f", estimatedBytes: 100) { [0, 0, 0, 2] })
        #expect(writer.offer(record("f", 3)))
        await writer.flush()
        #expect(sink.events == [.write("f", [0, 0, 0, 1]), .write("f", [0, 0, 0, 2]), .write("f", [0, 0, 0, 3])])
        #expect(writer.stats.writtenBytes == 4 + 100 + 4, "a deferred record counts for its estimate")
        #expect(writer.stats.queuedBytes == 0)
        await writer.close()
    }
}

@Suite struct LineSinkBatchTests {
    /// Records are gathered and reach the file in one write at `flush`; the size cap and
    /// rotation count gathered bytes.
    @Test func recordsReachTheFileAtFlushAndRotationStillHolds() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("linesink-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let path = dir.appendingPathComponent("audit.jsonl").path
        let sink = try LineSink(.file(path: path, maxBytes: 100))
        try sink.write(key: "a", bytes: Array("first line\n".utf8))
        try sink.write(key: "a", bytes: Array("second line\n".utf8))
        #expect(sink.bufferedRecords == 2)
        #expect((try? String(contentsOfFile: path, encoding: .utf8)) == "")
        try sink.flush()
        #expect(sink.bufferedRecords == 0)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "first line\nsecond line\n")
        let long = Array((String(repeating: "x", count: 90) + "\n").utf8)
        try sink.write(key: "a", bytes: long)  // crosses the cap: the file rotates first
        try sink.flush()
        #expect(try String(contentsOfFile: path + ".1", encoding: .utf8) == "first line\nsecond line\n")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == String(decoding: long, as: UTF8.self))
        sink.shutdown()
    }
}
