/// Collects what a failover drill sees: observations from its synthetic sessions and the
/// topology's primary changes. Append in any order (sessions report concurrently); the
/// report sorts by time.
public struct DrillRecorder: Sendable {
    /// What a synthetic session was doing when it failed.
    public enum RequestKind: Sendable, Hashable {
        case write, read
    }

    /// One thing a synthetic session saw.
    public enum Observation: Sendable, Hashable {
        /// A write with unique `key` was sent at `sentAt` and acknowledged (DONE without
        /// error) by `endpoint` at `ackedAt`.
        case writeAcknowledged(endpoint: String, key: String, sentAt: ContinuousClock.Instant, ackedAt: ContinuousClock.Instant)
        case readSucceeded(endpoint: String?, at: ContinuousClock.Instant)
        /// `number` is the server's error number; nil for errors with no number (connection
        /// reset, timeout), which `label` names. `request`: what failed, when known.
        case error(number: Int32?, label: String, endpoint: String?, at: ContinuousClock.Instant, request: RequestKind?)
        /// A request took `duration` (reported when it is over the drill's stall threshold).
        case stall(duration: Duration, at: ContinuousClock.Instant)
        case sessionClosed(endpoint: String?, at: ContinuousClock.Instant)
    }

    public struct PrimaryChange: Sendable, Hashable {
        public var from: String?
        public var to: String?
        public var at: ContinuousClock.Instant
    }

    public let cluster: String
    public let start: ContinuousClock.Instant
    /// The primary when the drill began (the topology's `currentPrimary`).
    public let initialPrimary: String?
    public private(set) var observations: [Observation] = []
    public private(set) var failoverStartedAt: ContinuousClock.Instant?
    public private(set) var primaryChanges: [PrimaryChange] = []

    public init(cluster: String, start: ContinuousClock.Instant, initialPrimary: String?) {
        self.cluster = cluster
        self.start = start
        self.initialPrimary = initialPrimary
    }

    /// The drill asked for the failover (t0). Only the first call counts.
    public mutating func failoverStarted(at t: ContinuousClock.Instant) {
        if failoverStartedAt == nil { failoverStartedAt = t }
    }

    public mutating func primaryChanged(from: String?, to: String?, at t: ContinuousClock.Instant) {
        primaryChanges.append(PrimaryChange(from: from, to: to, at: t))
    }

    /// Feed every topology event of the drilled cluster; only primary changes matter here.
    public mutating func record(_ event: TopologyEvent) {
        if case .primaryChanged(let from, let to, let at) = event {
            primaryChanged(from: from, to: to, at: at)
        }
    }

    public mutating func record(_ observation: Observation) {
        observations.append(observation)
    }

    public mutating func writeAcknowledged(endpoint: String, key: String, sentAt: ContinuousClock.Instant, ackedAt: ContinuousClock.Instant) {
        record(.writeAcknowledged(endpoint: endpoint, key: key, sentAt: sentAt, ackedAt: ackedAt))
    }

    public mutating func readSucceeded(endpoint: String?, at t: ContinuousClock.Instant) {
        record(.readSucceeded(endpoint: endpoint, at: t))
    }

    public mutating func error(number: Int32, endpoint: String?, at t: ContinuousClock.Instant, request: RequestKind? = nil) {
        record(.error(number: number, label: DrillReport.errorLabel(number), endpoint: endpoint, at: t, request: request))
    }

    public mutating func error(label: String, endpoint: String?, at t: ContinuousClock.Instant, request: RequestKind? = nil) {
        record(.error(number: nil, label: label, endpoint: endpoint, at: t, request: request))
    }

    public mutating func stalled(for duration: Duration, at t: ContinuousClock.Instant) {
        record(.stall(duration: duration, at: t))
    }

    public mutating func sessionClosed(endpoint: String?, at t: ContinuousClock.Instant) {
        record(.sessionClosed(endpoint: endpoint, at: t))
    }

    // MARK: the timeline

    private var sortedChanges: [PrimaryChange] {
        // Stable: changes recorded at the same instant keep their order.
        primaryChanges.enumerated().sorted { ($0.element.at, $0.offset) < ($1.element.at, $1.offset) }.map(\.element)
    }

    /// The primary at `t` according to the recorded timeline (a change takes effect at its
    /// own instant).
    public func primary(at t: ContinuousClock.Instant) -> String? {
        var current = initialPrimary
        for change in sortedChanges where change.at <= t {
            current = change.to
        }
        return current
    }

    /// Whether `endpoint` was the primary at some moment of [sentAt, ackedAt]. The server
    /// commits somewhere inside that window and the client cannot tell where, so a write is
    /// unsafe only if no moment of it had that endpoint as primary.
    public func wasPrimary(_ endpoint: String, between sentAt: ContinuousClock.Instant, and ackedAt: ContinuousClock.Instant) -> Bool {
        let (from, to) = sentAt <= ackedAt ? (sentAt, ackedAt) : (ackedAt, sentAt)
        if primary(at: from) == endpoint { return true }
        return primaryChanges.contains { $0.at > from && $0.at <= to && $0.to == endpoint }
    }

    // MARK: the report

    public func report(end: ContinuousClock.Instant) -> DrillReport {
        let ms = { (t: ContinuousClock.Instant) in (t - start).millisecondsValue }
        var report = DrillReport(cluster: cluster, durationMs: (end - start).millisecondsValue)
        let changes = sortedChanges
        report.primaryTimeline = [DrillReport.TimelineEntry(atMs: 0, from: nil, to: initialPrimary)]
            + changes.map { DrillReport.TimelineEntry(atMs: ms($0.at), from: $0.from, to: $0.to) }

        var writeAcks: [ContinuousClock.Instant] = []
        var errors: [String: DrillReport.ErrorCount] = [:]
        var traffic = DrillReport.Traffic(buckets: Self.bucketCount(durationMs: report.durationMs, bucketMs: DrillReport.Traffic.defaultBucketMs))
        func bucket(_ t: ContinuousClock.Instant) -> Int? {
            guard traffic.bucketCount > 0 else { return nil }
            return min(traffic.bucketCount - 1, max(0, Int(ms(t) / traffic.bucketMs)))
        }
        for observation in observations {
            switch observation {
            case .writeAcknowledged(let endpoint, let key, let sentAt, let ackedAt):
                if let b = bucket(ackedAt) { traffic.writesAcknowledged[b] += 1 }
                report.writesAcknowledged += 1
                writeAcks.append(ackedAt)
                if !wasPrimary(endpoint, between: sentAt, and: ackedAt) {
                    report.unsafeWrites.append(DrillReport.UnsafeWrite(
                        key: key, endpoint: endpoint, sentMs: ms(sentAt), ackedMs: ms(ackedAt),
                        primaryAtSend: primary(at: sentAt), primaryAtAck: primary(at: ackedAt)))
                }
            case .readSucceeded(_, let at):
                if let b = bucket(at) { traffic.readsSucceeded[b] += 1 }
                report.readsSucceeded += 1
            case .error(let number, let label, _, let at, let request):
                if let b = bucket(at) {
                    switch request {
                    case .write?: traffic.writesFailed[b] += 1
                    case .read?: traffic.readsFailed[b] += 1
                    case nil: break
                    }
                }
                let key = number.map { "#\($0)" } ?? label
                errors[key, default: DrillReport.ErrorCount(number: number, label: label, count: 0)].count += 1
                report.errorTotal += 1
            case .stall(let duration, _):
                report.stalls += 1
                report.maxStallMs = max(report.maxStallMs ?? 0, duration.millisecondsValue)
            case .sessionClosed:
                report.sessionsClosed += 1
            }
        }
        report.traffic = traffic
        report.unsafeWrites.sort { ($0.ackedMs, $0.key) < ($1.ackedMs, $1.key) }
        report.safe = report.unsafeWrites.isEmpty
        // Numbered errors first, by number; then the unnumbered ones by name.
        report.errors = errors.values.sorted { a, b in
            switch (a.number, b.number) {
            case let (x?, y?): x < y
            case (.some, nil): true
            case (nil, .some): false
            case (nil, nil): a.label < b.label
            }
        }
        writeAcks.sort()

        let t0 = failoverStartedAt
        if let t0 {
            report.failoverStartedMs = ms(t0)
            let oldPrimary = primary(at: t0)
            report.oldPrimary = oldPrimary
            if let detected = changes.first(where: { $0.at >= t0 }) {
                report.detectedMs = ms(detected.at)
                report.timeToDetectMs = (detected.at - t0).millisecondsValue
                if let firstWrite = writeAcks.first(where: { $0 >= detected.at }) {
                    report.timeToFirstWriteMs = (firstWrite - detected.at).millisecondsValue
                }
            }
            if let promoted = changes.first(where: { $0.at >= t0 && $0.to != nil && $0.to != oldPrimary }) {
                report.newPrimary = promoted.to
                report.timeToNewPrimaryMs = (promoted.at - t0).millisecondsValue
            }
        }
        report.longestWriteGapMs = Self.longestGap(writeAcks, from: t0 ?? start, end: end)
        return report
    }

    /// Slices covering the drill, bounded so that a drill of the longest allowed duration
    /// (one hour) still gives a report of reasonable size.
    static func bucketCount(durationMs: Double, bucketMs: Double) -> Int {
        guard durationMs > 0, bucketMs > 0 else { return 0 }
        return min(36_000, Int((durationMs / bucketMs).rounded(.up)))
    }

    /// Longest time without an acknowledged write that touches [from, end]: the write outage
    /// a client saw. A gap still open at the end counts up to `end`.
    static func longestGap(_ acks: [ContinuousClock.Instant], from: ContinuousClock.Instant, end: ContinuousClock.Instant) -> Double? {
        guard let firstAck = acks.first else { return nil }
        var previous = firstAck
        var longest: Duration = .zero
        for ack in acks.dropFirst() {
            if ack >= from { longest = max(longest, ack - previous) }
            previous = ack
        }
        if end > previous && end >= from { longest = max(longest, end - previous) }
        return longest.millisecondsValue
    }
}
