import Foundation
import Logging
import NIOCore
import Spool
import Synchronization

/// The packet dump's switch: the current settings (or off), the writer thread, and the
/// sessions it can attach to. `sessionOpened` runs for every client connection, so a dump
/// that is on sees PRELOGIN and LOGIN7; switching on, off or re-filtering reaches running
/// sessions at their next packet boundary, on their own event loops.
public final class DumpController: Sendable {
    public struct Status: Codable, Sendable {
        public var enabled: Bool
        public var generation: Int
        public var settings: DumpSettings?
        public var directory: String?
        public var sessionsDumped: Int
        public var writtenRecords: Int
        public var droppedRecords: Int
        public var droppedBytes: Int
        public var fileRejections: Int
        public var gaps: Int
        public var followCursor: Int

        enum CodingKeys: String, CodingKey {
            case enabled, generation, settings, directory
            case sessionsDumped = "sessions_dumped", writtenRecords = "written_records", droppedRecords = "dropped_records"
            case droppedBytes = "dropped_bytes", fileRejections = "file_rejections", gaps, followCursor = "follow_cursor"
        }
    }

    private struct Entry: Sendable {
        let tap: NIOLoopBound<SessionTap>
        let loop: any EventLoop
        let client: SocketAddress?
    }

    private struct State: Sendable {
        var settings: DumpSettings?
        var generation = 0
        var writer: SpoolWriter?
        var sessions: [Int: Entry] = [:]
    }

    let config: DumpConfig
    let ring: DumpFollowRing
    let stats = DumpSinkStats()
    let runStamp: String
    private let metrics: GatewayMetrics
    private let logger: Logger
    private let state = Mutex(State())

    init(config: DumpConfig?, metrics: GatewayMetrics, logger: Logger) throws {
        self.config = config ?? DumpConfig(enabled: false)
        self.metrics = metrics
        self.logger = logger
        ring = DumpFollowRing(capacity: self.config.followLines)
        runStamp = Self.stamp(Date())
        if let config, config.enabled {
            _ = try enable(config.settings)
        }
    }

    var isEnabled: Bool { state.withLock { $0.settings != nil } }

    /// Every new client connection, on its event loop, before its first byte.
    func sessionOpened(_ tap: SessionTap, channel: any Channel) {
        let entry = Entry(tap: NIOLoopBound(tap, eventLoop: channel.eventLoop), loop: channel.eventLoop, client: channel.remoteAddress)
        let id = tap.sessionID
        let current = state.withLock { s in
            s.sessions[id] = entry
            return (s.settings, s.generation, s.writer)
        }
        channel.closeFuture.whenComplete { [self] _ in _ = state.withLock { $0.sessions.removeValue(forKey: id) } }
        if let settings = current.0, let writer = current.2 {
            attach(tap, id: id, client: entry.client, settings: settings, generation: current.1, writer: writer)
        }
    }

    /// Switches the dump on (or replaces its settings); returns the new generation.
    @discardableResult
    public func enable(_ settings: DumpSettings) throws -> Int {
        let made: SpoolWriter? = if state.withLock({ $0.writer }) == nil { try makeWriter() } else { nil }
        let (generation, previous, entries, writer) = state.withLock { s in
            if s.writer == nil { s.writer = made }
            let previous = s.settings != nil ? s.generation : nil
            s.generation += 1
            s.settings = settings
            return (s.generation, previous, Array(s.sessions), s.writer!)
        }
        if let made, made !== writer { Task { await made.close() } }
        if let previous { writer.offer(.close(key: DumpSink.dumpKey(previous))) }
        logger.notice("packet dump on", metadata: ["filter": "\(settings.filter)", "formats": "\(settings.formats.map(\.rawValue))",
                                                   "directory": "\(config.directory ?? "-")"])
        for (id, e) in entries {
            let (tap, client) = (e.tap, e.client)
            e.loop.execute { [self] in
                Self.detach(tap.value, note: "dump settings changed")
                attach(tap.value, id: id, client: client, settings: settings, generation: generation, writer: writer)
            }
        }
        return generation
    }

    /// Switches the dump off; running sessions stop being dumped at their next packet.
    public func disable() {
        let (previous, entries, writer) = state.withLock { s in
            let previous = s.settings != nil ? s.generation : nil
            s.settings = nil
            return (previous, Array(s.sessions.values), s.writer)
        }
        guard let previous else { return }
        writer?.offer(.close(key: DumpSink.dumpKey(previous)))
        logger.notice("packet dump off")
        for e in entries {
            let tap = e.tap
            e.loop.execute { Self.detach(tap.value, note: "dump switched off") }
        }
    }

    public var status: Status {
        let (settings, generation, writer) = state.withLock { ($0.settings, $0.generation, $0.writer) }
        let w = writer?.stats ?? SpoolWriter.Stats()
        return Status(enabled: settings != nil, generation: generation, settings: settings, directory: config.directory,
                      sessionsDumped: stats.sessions.load(ordering: .relaxed), writtenRecords: w.writtenRecords,
                      droppedRecords: w.droppedRecords, droppedBytes: w.droppedBytes,
                      fileRejections: stats.fileRejections.load(ordering: .relaxed), gaps: stats.gaps.load(ordering: .relaxed),
                      followCursor: ring.cursor)
    }

    /// Waits until everything offered so far is written (tests, shutdown).
    public func flush() async {
        await state.withLock { $0.writer }?.flush()
    }

    public func close() async {
        let writer = state.withLock { s in
            if s.settings != nil { s.writer?.offer(.close(key: DumpSink.dumpKey(s.generation))) }
            s.settings = nil
            return s.writer
        }
        await writer?.close()
    }

    private func attach(_ tap: SessionTap, id: Int, client: SocketAddress?, settings: DumpSettings, generation: Int, writer: SpoolWriter) {
        guard settings.filter.matches(clientAddress: client?.ipAddress) else { return }
        let metrics = self.metrics
        tap.add(DumpObserver(sessionID: id, generation: generation, client: client, settings: settings, writer: writer,
                             onDrop: { metrics.dumpDropped(records: $0) }))
    }

    private static func detach(_ tap: SessionTap, note: String) {
        for o in tap.observers {
            (o as? DumpObserver)?.detach(note: note)
        }
        tap.remove { $0 is DumpObserver }
    }

    private func makeWriter() throws -> SpoolWriter {
        let sink = try DumpSink(directory: config.directory, maxFileBytes: config.maxFileBytes, maxTotalBytes: config.maxTotalBytes,
                                keepRotated: config.keepRotated, ring: ring, stats: stats, runStamp: runStamp)
        return SpoolWriter(capacityBytes: config.queueBytes, capacityRecords: max(1024, config.queueBytes / 64), sink: sink,
                           gapReportInterval: .seconds(1), linger: .milliseconds(20), logLabel: "tdsgate.dump", threadName: "tdsgate-dump")
    }

    /// yyyymmddThhmmss (UTC), so file names sort by time and runs do not collide.
    static func stamp(_ date: Date) -> String {
        let f = DateFormatter()
        f.locale = Locale(identifier: "en_US_POSIX")
        f.timeZone = TimeZone(identifier: "UTC")
        f.dateFormat = "yyyyMMdd'T'HHmmss"
        return f.string(from: date)
    }
}
