#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The outcome of `tdsgate drill failover`. Times are milliseconds since the drill began;
/// durations are milliseconds. The JSON form has fixed snake_case keys, every key always
/// present (null when not measured), so scripts can rely on it.
public struct DrillReport: Sendable, Hashable, Codable {
    public struct ErrorCount: Sendable, Hashable, Codable {
        public var number: Int32?
        public var label: String
        public var count: Int
    }

    /// A write acknowledged by an endpoint that was not the primary at any moment between
    /// sending it and its acknowledgement.
    public struct UnsafeWrite: Sendable, Hashable, Codable {
        public var key: String
        public var endpoint: String
        public var sentMs: Double
        public var ackedMs: Double
        public var primaryAtSend: String?
        public var primaryAtAck: String?

        enum CodingKeys: String, CodingKey {
            case key, endpoint
            case sentMs = "sent_ms"
            case ackedMs = "acked_ms"
            case primaryAtSend = "primary_at_send"
            case primaryAtAck = "primary_at_ack"
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(key, forKey: .key)
            try c.encode(endpoint, forKey: .endpoint)
            try c.encode(sentMs, forKey: .sentMs)
            try c.encode(ackedMs, forKey: .ackedMs)
            try c.encode(primaryAtSend, forKey: .primaryAtSend)
            try c.encode(primaryAtAck, forKey: .primaryAtAck)
        }
    }

    public struct TimelineEntry: Sendable, Hashable, Codable {
        public var atMs: Double
        public var from: String?
        public var to: String?

        enum CodingKeys: String, CodingKey {
            case atMs = "at_ms"
            case from, to
        }

        public func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(atMs, forKey: .atMs)
            try c.encode(from, forKey: .from)
            try c.encode(to, forKey: .to)
        }
    }

    /// Requests per time slice, from the drill's start: what the HTML report draws. Failed
    /// means an error came back or the session broke (a failed login counts for its kind).
    public struct Traffic: Sendable, Hashable, Codable {
        public static let defaultBucketMs: Double = 100

        public var bucketMs: Double
        public var writesAcknowledged: [Int]
        public var writesFailed: [Int]
        public var readsSucceeded: [Int]
        public var readsFailed: [Int]

        public init(bucketMs: Double = Traffic.defaultBucketMs, buckets: Int = 0) {
            self.bucketMs = bucketMs
            writesAcknowledged = Array(repeating: 0, count: buckets)
            writesFailed = writesAcknowledged
            readsSucceeded = writesAcknowledged
            readsFailed = writesAcknowledged
        }

        public var bucketCount: Int { writesAcknowledged.count }

        enum CodingKeys: String, CodingKey {
            case bucketMs = "bucket_ms"
            case writesAcknowledged = "writes_acknowledged"
            case writesFailed = "writes_failed"
            case readsSucceeded = "reads_succeeded"
            case readsFailed = "reads_failed"
        }
    }

    public var cluster: String
    public var durationMs: Double
    public var failoverStartedMs: Double?
    public var oldPrimary: String?
    public var newPrimary: String?
    /// When the proxy's topology first changed its primary after the failover began (t1).
    public var detectedMs: Double?
    /// t1 - t0.
    public var timeToDetectMs: Double?
    /// From t0 to the proxy confirming a new primary.
    public var timeToNewPrimaryMs: Double?
    /// From t1 to the first acknowledged write.
    public var timeToFirstWriteMs: Double?
    /// Longest stretch without an acknowledged write, from the failover on.
    public var longestWriteGapMs: Double?
    public var writesAcknowledged = 0
    public var readsSucceeded = 0
    public var errors: [ErrorCount] = []
    public var errorTotal = 0
    public var sessionsClosed = 0
    public var stalls = 0
    public var maxStallMs: Double?
    public var unsafeWrites: [UnsafeWrite] = []
    /// No write was acknowledged by a non-primary. Must be true.
    public var safe = true
    public var primaryTimeline: [TimelineEntry] = []
    /// planned, forced or simulate.
    public var mode: String?
    /// Set when the drill could not finish (ARM refused, admin API unreachable...).
    public var aborted: String?
    /// Acknowledged writes found on the primary after the drill; nil when not checked.
    public var writesVerified: Int?
    /// Acknowledged writes the primary no longer has (forced failover may lose some).
    public var lostWriteCount = 0
    /// The first of them (at most 20), for looking into.
    public var lostWrites: [String] = []
    public var traffic = Traffic()

    public init(cluster: String, durationMs: Double) {
        self.cluster = cluster
        self.durationMs = durationMs
    }

    enum CodingKeys: String, CodingKey {
        case cluster
        case durationMs = "duration_ms"
        case failoverStartedMs = "failover_started_ms"
        case oldPrimary = "old_primary"
        case newPrimary = "new_primary"
        case detectedMs = "detected_ms"
        case timeToDetectMs = "time_to_detect_ms"
        case timeToNewPrimaryMs = "time_to_new_primary_ms"
        case timeToFirstWriteMs = "time_to_first_write_ms"
        case longestWriteGapMs = "longest_write_gap_ms"
        case writesAcknowledged = "writes_acknowledged"
        case readsSucceeded = "reads_succeeded"
        case errors
        case errorTotal = "error_total"
        case sessionsClosed = "sessions_closed"
        case stalls
        case maxStallMs = "max_stall_ms"
        case unsafeWrites = "unsafe_writes"
        case safe
        case primaryTimeline = "primary_timeline"
        case mode, aborted
        case writesVerified = "writes_verified"
        case lostWriteCount = "lost_write_count"
        case lostWrites = "lost_writes"
        case traffic
    }

    // Written by hand only to put explicit nulls where a figure was not measured; the
    // synthesized form would leave such keys out.
    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(cluster, forKey: .cluster)
        try c.encode(durationMs, forKey: .durationMs)
        try c.encode(failoverStartedMs, forKey: .failoverStartedMs)
        try c.encode(oldPrimary, forKey: .oldPrimary)
        try c.encode(newPrimary, forKey: .newPrimary)
        try c.encode(detectedMs, forKey: .detectedMs)
        try c.encode(timeToDetectMs, forKey: .timeToDetectMs)
        try c.encode(timeToNewPrimaryMs, forKey: .timeToNewPrimaryMs)
        try c.encode(timeToFirstWriteMs, forKey: .timeToFirstWriteMs)
        try c.encode(longestWriteGapMs, forKey: .longestWriteGapMs)
        try c.encode(writesAcknowledged, forKey: .writesAcknowledged)
        try c.encode(readsSucceeded, forKey: .readsSucceeded)
        try c.encode(errors, forKey: .errors)
        try c.encode(errorTotal, forKey: .errorTotal)
        try c.encode(sessionsClosed, forKey: .sessionsClosed)
        try c.encode(stalls, forKey: .stalls)
        try c.encode(maxStallMs, forKey: .maxStallMs)
        try c.encode(unsafeWrites, forKey: .unsafeWrites)
        try c.encode(safe, forKey: .safe)
        try c.encode(primaryTimeline, forKey: .primaryTimeline)
        try c.encode(mode, forKey: .mode)
        try c.encode(aborted, forKey: .aborted)
        try c.encode(writesVerified, forKey: .writesVerified)
        try c.encode(lostWriteCount, forKey: .lostWriteCount)
        try c.encode(lostWrites, forKey: .lostWrites)
        try c.encode(traffic, forKey: .traffic)
    }

    /// Pretty JSON with sorted keys (stable for diffs and golden files).
    public func jsonText() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }

    /// Names for the errors a failover drill usually meets; others show as "error N".
    static func errorLabel(_ number: Int32) -> String {
        switch number {
        case 3906: "database is read-only"
        case 4060: "cannot open database"
        case 18456: "login failed"
        case 40197: "service error (failover in progress)"
        case 40501: "service busy"
        case 40613: "database not currently available"
        case 42108, 42109: "serverless pool not ready"
        case 49918, 49919, 49920: "too many operations"
        case 10928, 10929: "resource limit"
        default: "error \(number)"
        }
    }
}
