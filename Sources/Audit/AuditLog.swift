import Foundation
import Spool

/// The audit trail: `record(_:)` never blocks (it formats the event and offers it to a
/// bounded `SpoolWriter`; one background thread does all I/O). Lost events are counted in
/// `stats` and reported in the trail itself by an `audit_dropped` event: right before the
/// next event that gets through, or after `gapReportInterval`, or at `close()`.
public final class AuditLog: Sendable {
    public enum Destination: Sendable, Hashable {
        /// JSON lines on standard output.
        case stdout
        /// JSON lines appended to `path` (mode 0600); at `maxBytes` it is renamed to `path.1`.
        case file(path: String, maxBytes: Int)
        /// RFC 5424 over UDP or TCP (RFC 6587 octet counting).
        case syslog(SyslogConfiguration)
    }

    public struct Stats: Sendable, Equatable {
        /// Events accepted by `record` (statement events skipped while statements are off
        /// are not counted).
        public var recorded = 0
        /// Events handed to the destination.
        public var written = 0
        /// Events lost: queue full, destination refused or disconnected, write failed.
        public var dropped = 0
        public var droppedBytes = 0
        /// Waiting in the queue.
        public var queued = 0
        /// Destination failures (each one also counted in `dropped` when it lost an event).
        public var sinkErrors = 0
    }

    public let destination: Destination
    /// Whether the caller should build `sql_batch` / `rpc` events at all. When false,
    /// `record` ignores them anyway.
    public let statementsEnabled: Bool

    private let writer: SpoolWriter
    private let syslogFormatter: SyslogFormatter?

    static let key = "audit"

    /// `linger`: how long an event may wait to be written together with the next ones
    /// (`SpoolWriter`); `flush()` and `close()` do not wait for it.
    public init(
        destination: Destination,
        statements: Bool,
        queueCapacity: Int = 10_000,
        queueCapacityBytes: Int = 16 << 20,
        gapReportInterval: Duration = .seconds(5),
        linger: Duration = .milliseconds(20)
    ) throws {
        self.destination = destination
        self.statementsEnabled = statements
        let sink: any SpoolSink
        switch destination {
        case .stdout:
            sink = try AuditLineSink(.standardOutput)
            syslogFormatter = nil
        case .file(let path, let maxBytes):
            sink = try AuditLineSink(.file(path: path, maxBytes: maxBytes))
            syslogFormatter = nil
        case .syslog(let config):
            let formatter = SyslogFormatter(facility: config.facility, hostname: config.hostname, appName: config.appName)
            sink = SyslogSink(config: config, formatter: formatter)
            syslogFormatter = formatter
        }
        writer = SpoolWriter(
            capacityBytes: queueCapacityBytes,
            capacityRecords: queueCapacity,
            sink: sink,
            gapReportInterval: gapReportInterval,
            linger: linger,
            logLabel: "tdsgate.audit",
            threadName: "tdsgate-audit"
        )
    }

    /// Queue `event`. Never blocks; returns false when the event was dropped (queue full,
    /// log closed) or skipped (a statement event while statements are off).
    @discardableResult
    public func record(_ event: AuditEvent) -> Bool {
        if !statementsEnabled, event.name == "sql_batch" || event.name == "rpc" { return false }
        let bytes = syslogFormatter?.format(event) ?? event.jsonLine()
        return writer.offer(SpoolRecord(key: Self.key, bytes: bytes))
    }

    /// Queue the event `make` builds on the writer's thread (statement events: decoding and
    /// masking stay off the event loop). `estimatedBytes` stands for the line in the queue's
    /// byte capacity. Returns false when the event was dropped.
    @discardableResult
    public func record(estimatedBytes: Int, _ make: @escaping @Sendable () -> AuditEvent) -> Bool {
        let formatter = syslogFormatter
        return writer.offer(key: Self.key, estimatedBytes: estimatedBytes) {
            let event = make()
            return formatter?.format(event) ?? event.jsonLine()
        }
    }

    public var stats: Stats {
        let s = writer.stats
        var stats = Stats()
        stats.recorded = s.writtenRecords + s.lostRecords + s.queuedRecords
        stats.written = s.writtenRecords
        stats.dropped = s.lostRecords
        stats.droppedBytes = s.lostBytes
        stats.queued = s.queuedRecords
        stats.sinkErrors = s.sinkErrors
        return stats
    }

    /// Waits until everything recorded so far has been handed to the destination.
    public func flush() async {
        await writer.flush()
    }

    /// Flush, report remaining drops, close the destination. Idempotent.
    public func close() async {
        await writer.close()
    }
}

/// JSON lines to stdout or a file; writes `audit_dropped` where events were lost
/// (queue full, or earlier writes failed).
final class AuditLineSink: SpoolSink {
    private let lines: LineSink
    private var failed = 0
    private var failedBytes = 0

    init(_ target: LineSink.Target) throws {
        lines = try LineSink(target)
    }

    func write(key: String, bytes: [UInt8]) throws {
        if failed > 0 {
            try lines.write(key: key, bytes: AuditEvent.auditDropped(droppedEvents: failed, droppedBytes: failedBytes, reason: .writeFailed).jsonLine())
            failed = 0
            failedBytes = 0
        }
        let (records, size) = (lines.bufferedRecords, lines.bufferedBytes)
        do {
            try lines.write(key: key, bytes: bytes)
        } catch {
            failed += records + 1
            failedBytes += size + bytes.count
            throw error
        }
    }

    /// One write for the batch the spool writer just handed over.
    func flush() throws {
        let (records, size) = (lines.bufferedRecords, lines.bufferedBytes)
        do {
            try lines.flush()
        } catch {
            failed += records
            failedBytes += size
            throw error
        }
    }

    func close(key: String) throws {}

    func gap(key: String, droppedRecords: Int, droppedBytes: Int) throws {
        try lines.write(key: key, bytes: AuditEvent.auditDropped(droppedEvents: droppedRecords, droppedBytes: droppedBytes, reason: .queueFull).jsonLine())
    }

    func shutdown() {
        if failed > 0 {
            try? lines.write(key: AuditLog.key, bytes: AuditEvent.auditDropped(droppedEvents: failed, droppedBytes: failedBytes, reason: .writeFailed).jsonLine())
        }
        lines.shutdown()
    }
}
