import Foundation
import Logging

/// A bounded, non-blocking queue in front of a `SpoolSink`, drained by one background
/// thread.
///
/// `offer(_:)` is safe to call from any thread, including NIO event loops: it takes a lock
/// only to append to an array and never waits for I/O. When the queue is full the record is
/// dropped and counted (in total and per destination key); the sink is told about the gap
/// (`SpoolSink.gap`) right before the next record for that key, or after
/// `gapReportInterval` if no further record for that key arrives, or at `close()`.
///
/// With a `linger`, the writer waits that long after the first record of a quiet spell
/// before it writes, so a busy proxy wakes it once per linger instead of once per record
/// (a wake-up per query was a context switch per query on a small machine). A queue filling
/// past half its capacity, `flush()` and `close()` cut the wait short.
///
/// Sink failures are counted and logged at most once per minute; they never reach the
/// caller.
public final class SpoolWriter: Sendable {
    public struct Stats: Sendable, Equatable {
        /// Accepted but not yet handed to the sink.
        public var queuedRecords = 0
        public var queuedBytes = 0
        /// Handed to the sink successfully.
        public var writtenRecords = 0
        public var writtenBytes = 0
        /// Refused by `offer` (queue full, or writer closed).
        public var droppedRecords = 0
        public var droppedBytes = 0
        /// Refused by the sink on purpose (`SpoolRejection`: disk cap, peer down, bad key).
        public var rejectedRecords = 0
        public var rejectedBytes = 0
        /// Records whose write threw something other than `SpoolRejection` (lost).
        public var failedRecords = 0
        public var failedBytes = 0
        /// Sink calls (write, close, gap, flush) that threw something other than
        /// `SpoolRejection`.
        public var sinkErrors = 0
        /// `SpoolSink.gap` calls made.
        public var gapsReported = 0

        /// Everything that did not reach its destination: queue drops, rejections and
        /// failed writes.
        public var lostRecords: Int { droppedRecords + rejectedRecords + failedRecords }
        public var lostBytes: Int { droppedBytes + rejectedBytes + failedBytes }

        public init() {}
    }

    private let core: Core

    /// - Parameters:
    ///   - capacityBytes: most payload bytes held in the queue (including the batch being
    ///     written).
    ///   - capacityRecords: most records held in the queue.
    ///   - sink: handed over to the writer thread; do not use it afterwards.
    ///   - gapReportInterval: how long a drop for a key waits for a next record of that key
    ///     before it is reported on its own.
    ///   - linger: how long a record may wait for others to be written with it.
    public init(
        capacityBytes: Int,
        capacityRecords: Int,
        sink: some SpoolSink,
        gapReportInterval: Duration = .seconds(2),
        linger: Duration = .zero,
        logger: Logger = Logger(label: "tdsgate.spool"),
        threadName: String = "tdsgate-spool"
    ) {
        precondition(capacityBytes > 0 && capacityRecords > 0, "spool capacities must be positive")
        let core = Core(
            capacityBytes: capacityBytes,
            capacityRecords: capacityRecords,
            sink: sink,
            gapReportInterval: gapReportInterval,
            linger: linger,
            logger: logger
        )
        self.core = core
        let thread = Thread { core.run() }
        thread.name = threadName
        thread.start()
    }

    /// Same, with a logger made from `logLabel` (for modules that do not import Logging).
    public convenience init(
        capacityBytes: Int,
        capacityRecords: Int,
        sink: some SpoolSink,
        gapReportInterval: Duration = .seconds(2),
        linger: Duration = .zero,
        logLabel: String,
        threadName: String = "tdsgate-spool"
    ) {
        self.init(
            capacityBytes: capacityBytes,
            capacityRecords: capacityRecords,
            sink: sink,
            gapReportInterval: gapReportInterval,
            linger: linger,
            logger: Logger(label: logLabel),
            threadName: threadName
        )
    }

    deinit {
        core.requestStop()
    }

    /// Queue `record` for the writer thread. Never blocks; returns false (and counts the
    /// drop) when the queue is full or the writer is closed. A `.close` record whose
    /// payload does not fit is still queued without its payload (the payload counts as
    /// dropped and is reported as a gap), so destinations get closed even under pressure.
    @discardableResult
    public func offer(_ record: SpoolRecord) -> Bool {
        core.offer(record)
    }

    /// Queue a record whose bytes `render` makes on the writer thread, so that the caller
    /// (an event loop) pays only for capturing its inputs. `estimatedBytes` stands for its
    /// size in the queue's byte capacity and counts.
    @discardableResult
    public func offer(key: String, estimatedBytes: Int, render: @escaping @Sendable () -> [UInt8]) -> Bool {
        core.offer(SpoolRecord(key: key, bytes: []), render: render, estimatedBytes: estimatedBytes)
    }

    public var stats: Stats {
        core.snapshot()
    }

    /// Returns once every record accepted before the call has been handed to the sink
    /// (and the sink flushed), or the writer has stopped.
    public func flush() async {
        await core.flush()
    }

    /// Flush, report pending gaps, shut the sink down and stop the thread. Idempotent;
    /// concurrent callers all return once the thread has stopped.
    public func close() async {
        await core.flush()
        await core.stop()
    }
}

extension SpoolWriter {
    fileprivate struct Entry {
        var record: SpoolRecord
        /// Makes the record's bytes on the writer thread (then `record.bytes` is empty).
        var render: (@Sendable () -> [UInt8])?
        /// What the record counts for in the queue's capacity and the stats.
        var size: Int
        var gapRecords = 0
        var gapBytes = 0
    }

    fileprivate enum State {
        case running, stopping, stopped
    }

    /// Shared between callers and the writer thread. Every mutable field is guarded by
    /// `condition`, except `sink`, which only the writer thread touches.
    fileprivate final class Core: @unchecked Sendable {
        static let maxPendingGapKeys = 4096

        let condition = NSCondition()
        let capacityBytes: Int
        let capacityRecords: Int
        let closeReserve: Int
        let gapReportInterval: Duration
        let linger: Duration
        let logger: Logger
        let sink: any SpoolSink

        // guarded by `condition`
        var queue: [Entry] = []
        var state: State = .running
        var stats = Stats()
        var pendingGaps: [String: (records: Int, bytes: Int)] = [:]
        var acceptedSeq: UInt64 = 0
        var completedSeq: UInt64 = 0
        var flushWaiters: [(target: UInt64, continuation: CheckedContinuation<Void, Never>)] = []
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
        /// The writer waits for a first record (an offer must wake it).
        var writerIdle = false
        /// A flush is waiting: the writer stops lingering.
        var urgent = false

        // writer thread only
        var unloggedErrors = 0
        var unloggedRejections = 0
        var lastErrorText = ""
        var lastLog: ContinuousClock.Instant?

        init(
            capacityBytes: Int, capacityRecords: Int, sink: any SpoolSink,
            gapReportInterval: Duration, linger: Duration, logger: Logger
        ) {
            self.capacityBytes = capacityBytes
            self.capacityRecords = capacityRecords
            self.closeReserve = max(16, capacityRecords / 8)
            self.sink = sink
            self.gapReportInterval = gapReportInterval
            self.linger = linger
            self.logger = logger
            queue.reserveCapacity(min(capacityRecords, 4096))
        }

        // MARK: caller side

        func offer(_ record: SpoolRecord, render: (@Sendable () -> [UInt8])? = nil, estimatedBytes: Int? = nil) -> Bool {
            let size = estimatedBytes ?? record.bytes.count
            condition.lock()
            defer { condition.unlock() }
            guard case .running = state else {
                stats.droppedRecords += 1
                stats.droppedBytes += size
                return false
            }
            let full = stats.queuedRecords >= capacityRecords || stats.queuedBytes + size > capacityBytes
            var entry = Entry(record: record, render: render, size: size)
            var accepted = true
            if full {
                guard record.kind == .close, stats.queuedRecords < capacityRecords + closeReserve else {
                    stats.droppedRecords += 1
                    stats.droppedBytes += size
                    notePending(key: record.key, records: 1, bytes: size)
                    return false
                }
                // Keep the close, drop its payload.
                if size > 0 {
                    stats.droppedRecords += 1
                    stats.droppedBytes += size
                    notePending(key: record.key, records: 1, bytes: size)
                    entry.record.bytes = []
                    entry.size = 0
                    accepted = false
                }
            }
            if !pendingGaps.isEmpty, let gap = pendingGaps.removeValue(forKey: record.key) {
                entry.gapRecords = gap.records
                entry.gapBytes = gap.bytes
            }
            queue.append(entry)
            stats.queuedRecords += 1
            stats.queuedBytes += entry.size
            acceptedSeq += 1
            // Lingering, the writer is woken only by half a queue; otherwise by a first record.
            if writerIdle || (linger > .zero && (queue.count == capacityRecords / 2 || halfFull)) {
                writerIdle = false
                condition.signal()
            }
            return accepted
        }

        /// More than half the byte capacity is queued (guarded by `condition`).
        private var halfFull: Bool { stats.queuedBytes > capacityBytes / 2 }

        private func notePending(key: String, records: Int, bytes: Int) {
            if let existing = pendingGaps[key] {
                pendingGaps[key] = (existing.records + records, existing.bytes + bytes)
            } else if pendingGaps.count < Self.maxPendingGapKeys {
                pendingGaps[key] = (records, bytes)
            }
            // Beyond that many keys only the totals are kept.
        }

        func snapshot() -> Stats {
            condition.lock()
            defer { condition.unlock() }
            return stats
        }

        func flush() async {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                condition.lock()
                if case .stopped = state {
                    condition.unlock()
                    continuation.resume()
                    return
                }
                if completedSeq >= acceptedSeq {
                    condition.unlock()
                    continuation.resume()
                    return
                }
                flushWaiters.append((acceptedSeq, continuation))
                urgent = true
                condition.signal()
                condition.unlock()
            }
        }

        func stop() async {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                condition.lock()
                if case .stopped = state {
                    condition.unlock()
                    continuation.resume()
                    return
                }
                state = .stopping
                stopWaiters.append(continuation)
                condition.signal()
                condition.unlock()
            }
        }

        func requestStop() {
            condition.lock()
            if case .running = state {
                state = .stopping
                condition.signal()
            }
            condition.unlock()
        }

        // MARK: writer thread

        func run() {
            var batch: [Entry] = []
            var nextGapSweep = ContinuousClock.now + gapReportInterval
            while true {
                var sweep: [(key: String, records: Int, bytes: Int)] = []
                var finishing = false
                condition.lock()
                while queue.isEmpty, case .running = state, ContinuousClock.now < nextGapSweep {
                    writerIdle = true
                    let remaining = ContinuousClock.now.duration(to: nextGapSweep)
                    _ = condition.wait(until: Date(timeIntervalSinceNow: remaining.seconds))
                }
                writerIdle = false
                if linger > .zero, !queue.isEmpty {
                    let deadline = ContinuousClock.now + linger
                    while case .running = state, !urgent, queue.count < capacityRecords / 2, !halfFull,
                          ContinuousClock.now < deadline {
                        _ = condition.wait(until: Date(timeIntervalSinceNow: ContinuousClock.now.duration(to: deadline).seconds))
                    }
                }
                urgent = false
                finishing = queue.isEmpty && state != .running
                swap(&queue, &batch)
                if finishing || ContinuousClock.now >= nextGapSweep {
                    nextGapSweep = ContinuousClock.now + gapReportInterval
                    // Gaps for keys that saw no further record. Every record accepted before
                    // these drops is in `batch`, so reporting them after it keeps the order.
                    for (key, gap) in pendingGaps { sweep.append((key, gap.records, gap.bytes)) }
                    pendingGaps.removeAll()
                }
                condition.unlock()

                for entry in batch {
                    process(entry)
                }
                for gap in sweep.sorted(by: { $0.key < $1.key }) {
                    reportGap(key: gap.key, records: gap.records, bytes: gap.bytes)
                }
                if !sweep.isEmpty { condition.lock(); stats.gapsReported += sweep.count; condition.unlock() }
                let processed = UInt64(batch.count)
                batch.removeAll(keepingCapacity: true)
                if processed > 0 || !sweep.isEmpty {
                    do { try sink.flush() } catch {
                        noteError(error)
                        condition.lock(); stats.sinkErrors += 1; condition.unlock()
                    }
                }
                logIfDue()

                condition.lock()
                completedSeq += processed
                let ready = takeReadyFlushWaiters()
                condition.unlock()
                for waiter in ready { waiter.resume() }

                if finishing { break }
            }

            sink.shutdown()
            logIfDue(force: true)
            condition.lock()
            state = .stopped
            let waiters = flushWaiters.map(\.continuation) + stopWaiters
            flushWaiters.removeAll()
            stopWaiters.removeAll()
            queue.removeAll()
            condition.unlock()
            for waiter in waiters { waiter.resume() }
        }

        private func takeReadyFlushWaiters() -> [CheckedContinuation<Void, Never>] {
            guard !flushWaiters.isEmpty else { return [] }
            var ready: [CheckedContinuation<Void, Never>] = []
            flushWaiters.removeAll { waiter in
                if waiter.target <= completedSeq {
                    ready.append(waiter.continuation)
                    return true
                }
                return false
            }
            return ready
        }

        private func reportGap(key: String, records: Int, bytes: Int) {
            do {
                try sink.gap(key: key, droppedRecords: records, droppedBytes: bytes)
            } catch is SpoolRejection {
                // Nothing more to count: the records were already counted as dropped.
            } catch {
                noteError(error)
                condition.lock(); stats.sinkErrors += 1; condition.unlock()
            }
        }

        private func process(_ entry: Entry) {
            let record = entry.record
            let size = entry.size
            if entry.gapRecords > 0 {
                reportGap(key: record.key, records: entry.gapRecords, bytes: entry.gapBytes)
            }
            var outcome: Result<Void, any Error> = .success(())
            do {
                let bytes = entry.render?() ?? record.bytes
                if !bytes.isEmpty {
                    try sink.write(key: record.key, bytes: bytes)
                }
                if record.kind == .close {
                    try sink.close(key: record.key)
                }
            } catch {
                outcome = .failure(error)
            }
            condition.lock()
            stats.queuedRecords -= 1
            stats.queuedBytes -= size
            if entry.gapRecords > 0 { stats.gapsReported += 1 }
            switch outcome {
            case .success:
                stats.writtenRecords += 1
                stats.writtenBytes += size
            case .failure(let error) where error is SpoolRejection:
                stats.rejectedRecords += 1
                stats.rejectedBytes += size
            case .failure:
                stats.sinkErrors += 1
                stats.failedRecords += 1
                stats.failedBytes += size
            }
            condition.unlock()
            if case .failure(let error) = outcome {
                if error is SpoolRejection {
                    unloggedRejections += 1
                } else {
                    noteError(error)
                }
            }
        }

        private func noteError(_ error: any Error) {
            unloggedErrors += 1
            lastErrorText = String(describing: error)
        }

        /// At most one log line per minute, summarising what happened since the last one.
        private func logIfDue(force: Bool = false) {
            guard unloggedErrors > 0 || unloggedRejections > 0 else { return }
            let now = ContinuousClock.now
            if !force, let last = lastLog, last.duration(to: now) < .seconds(60) { return }
            lastLog = now
            if unloggedErrors > 0 {
                logger.error(
                    "spool sink failures",
                    metadata: [
                        "failures": "\(unloggedErrors)",
                        "rejected": "\(unloggedRejections)",
                        "last_error": "\(lastErrorText)",
                    ])
            } else {
                logger.warning("spool sink refused records", metadata: ["rejected": "\(unloggedRejections)"])
            }
            unloggedErrors = 0
            unloggedRejections = 0
        }
    }
}

extension Duration {
    fileprivate var seconds: Double {
        let parts = components
        return Double(parts.seconds) + Double(parts.attoseconds) / 1e18
    }
}
