import Foundation
import Testing
@testable import Routing

@Suite("DrillReport: failover figures and the unsafe-write check")
struct DrillReportTests {
    let clock = TestClock()

    /// Failover asked at 10 s; the proxy sees east READ_ONLY at 11.2 s and west READ_WRITE at 13 s.
    func recorded() -> DrillRecorder {
        var drill = DrillRecorder(cluster: "orders", start: clock(0), initialPrimary: "east")
        drill.failoverStarted(at: clock(10))
        drill.record(TopologyEvent.endpointDown(endpoint: "r1", reason: .timeout, at: clock(10.5)))
        drill.record(TopologyEvent.primaryChanged(from: "east", to: nil, at: clock(11.2)))
        drill.primaryChanged(from: nil, to: "west", at: clock(13))
        drill.writeAcknowledged(endpoint: "east", key: "k1", sentAt: clock(9), ackedAt: clock(9.1))
        // Sent while east was primary, acknowledged just after: the commit may have been before.
        drill.writeAcknowledged(endpoint: "east", key: "k2", sentAt: clock(11.1), ackedAt: clock(11.3))
        // Sent and acknowledged while the cluster had no primary: unsafe.
        drill.writeAcknowledged(endpoint: "east", key: "k3", sentAt: clock(11.5), ackedAt: clock(11.6))
        // West acknowledged before the proxy confirmed it: unsafe by the recorded timeline.
        drill.writeAcknowledged(endpoint: "west", key: "k4", sentAt: clock(12), ackedAt: clock(12.5))
        drill.writeAcknowledged(endpoint: "west", key: "k5", sentAt: clock(12.9), ackedAt: clock(13.05))
        drill.writeAcknowledged(endpoint: "west", key: "k6", sentAt: clock(14), ackedAt: clock(14.1))
        for t in [1.0, 12.0, 14.0] { drill.readSucceeded(endpoint: "r1", at: clock(t)) }
        drill.error(number: 40613, endpoint: "east", at: clock(12))
        drill.error(number: 3906, endpoint: "east", at: clock(11.4))
        drill.error(label: "connection reset", endpoint: "east", at: clock(11.2))
        drill.error(number: 3906, endpoint: "east", at: clock(11.5))
        drill.stalled(for: .milliseconds(1_500), at: clock(12))
        drill.stalled(for: .milliseconds(2_200), at: clock(13))
        drill.sessionClosed(endpoint: "east", at: clock(11.2))
        drill.sessionClosed(endpoint: "east", at: clock(11.3))
        return drill
    }

    @Test func timelineAnswersWhoWasPrimary() {
        let drill = recorded()
        #expect(drill.primary(at: clock(5)) == "east")
        #expect(drill.primary(at: clock(11.2)) == nil)
        #expect(drill.primary(at: clock(12.99)) == nil)
        #expect(drill.primary(at: clock(13)) == "west")
        #expect(drill.wasPrimary("east", between: clock(11.1), and: clock(11.3)))
        #expect(drill.wasPrimary("west", between: clock(12.9), and: clock(13.05)))
        #expect(!drill.wasPrimary("west", between: clock(12), and: clock(12.5)))
    }

    @Test func figures() {
        let report = recorded().report(end: clock(14.5))
        #expect(report.durationMs == 14_500)
        #expect(report.failoverStartedMs == 10_000)
        #expect(report.oldPrimary == "east")
        #expect(report.newPrimary == "west")
        #expect(report.detectedMs == 11_200)
        #expect(report.timeToDetectMs == 1_200)
        #expect(report.timeToNewPrimaryMs == 3_000)
        #expect(report.timeToFirstWriteMs == 100)
        #expect(report.longestWriteGapMs == 2_200)
        #expect(report.writesAcknowledged == 6)
        #expect(report.readsSucceeded == 3)
        #expect(report.errorTotal == 4)
        #expect(report.errors == [
            DrillReport.ErrorCount(number: 3906, label: "database is read-only", count: 2),
            DrillReport.ErrorCount(number: 40613, label: "database not currently available", count: 1),
            DrillReport.ErrorCount(number: nil, label: "connection reset", count: 1),
        ])
        #expect(report.sessionsClosed == 2)
        #expect(report.stalls == 2)
        #expect(report.maxStallMs == 2_200)
        #expect(report.primaryTimeline.map(\.to) == ["east", nil, "west"])
    }

    @Test func unsafeWritesAreFlagged() {
        let report = recorded().report(end: clock(14.5))
        #expect(!report.safe)
        #expect(report.unsafeWrites == [
            DrillReport.UnsafeWrite(key: "k3", endpoint: "east", sentMs: 11_500, ackedMs: 11_600, primaryAtSend: nil, primaryAtAck: nil),
            DrillReport.UnsafeWrite(key: "k4", endpoint: "west", sentMs: 12_000, ackedMs: 12_500, primaryAtSend: nil, primaryAtAck: nil),
        ])
    }

    @Test func aCleanDrillIsSafe() {
        var drill = DrillRecorder(cluster: "orders", start: clock(0), initialPrimary: "east")
        drill.failoverStarted(at: clock(1))
        drill.primaryChanged(from: "east", to: "west", at: clock(2))
        drill.writeAcknowledged(endpoint: "east", key: "a", sentAt: clock(0.5), ackedAt: clock(0.6))
        drill.writeAcknowledged(endpoint: "west", key: "b", sentAt: clock(2.5), ackedAt: clock(2.6))
        let report = drill.report(end: clock(3))
        #expect(report.safe)
        #expect(report.unsafeWrites.isEmpty)
        #expect(report.timeToDetectMs == 1_000)
        #expect(report.timeToNewPrimaryMs == 1_000)
        #expect(report.timeToFirstWriteMs == 600)
        #expect(report.longestWriteGapMs == 2_000)
    }

    @Test func nothingMeasuredIsNullNotMissing() throws {
        let report = DrillRecorder(cluster: "orders", start: clock(0), initialPrimary: nil).report(end: clock(1))
        let json = try report.jsonText()
        for key in ["failover_started_ms", "time_to_detect_ms", "time_to_new_primary_ms", "time_to_first_write_ms", "longest_write_gap_ms", "max_stall_ms", "new_primary", "old_primary"] {
            #expect(json.contains("\"\(key)\" : null"), "\(key) missing in \(json)")
        }
        #expect(report.timeToDetectMs == nil)
        #expect(report.longestWriteGapMs == nil)
        #expect(report.safe)
    }

    @Test func jsonKeysAreSnakeCaseAndRoundTrip() throws {
        let report = recorded().report(end: clock(14.5))
        let json = try report.jsonText()
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(Set(object.keys) == [
            "cluster", "duration_ms", "failover_started_ms", "old_primary", "new_primary", "detected_ms",
            "time_to_detect_ms", "time_to_new_primary_ms", "time_to_first_write_ms", "longest_write_gap_ms",
            "writes_acknowledged", "reads_succeeded", "errors", "error_total", "sessions_closed", "stalls",
            "max_stall_ms", "unsafe_writes", "safe", "primary_timeline", "mode", "aborted", "writes_verified",
            "lost_write_count", "lost_writes", "traffic",
        ])
        #expect(json.contains("\"primary_at_send\" : null"))
        #expect(json.contains("\"at_ms\" : 11200"))
        let decoded = try JSONDecoder().decode(DrillReport.self, from: Data(json.utf8))
        #expect(decoded == report)
    }

    @Test func trafficIsCountedPer100Milliseconds() {
        var drill = recorded()
        drill.error(number: 3906, endpoint: "east", at: clock(11.45), request: .write)
        drill.error(label: "connection reset", endpoint: "r1", at: clock(11.42), request: .read)
        let report = drill.report(end: clock(14.5))
        let traffic = report.traffic
        #expect(traffic.bucketMs == 100)
        #expect(traffic.bucketCount == 145)
        #expect(traffic.writesAcknowledged.reduce(0, +) == report.writesAcknowledged)
        #expect(traffic.readsSucceeded.reduce(0, +) == report.readsSucceeded)
        // k1 acknowledged at 9.1 s: slice 91; k6 at 14.1 s: slice 141.
        #expect(traffic.writesAcknowledged[91] == 1 && traffic.writesAcknowledged[141] == 1)
        #expect(traffic.readsSucceeded[10] == 1 && traffic.readsSucceeded[120] == 1)
        // Failures count only where the recorder knows what failed.
        #expect(traffic.writesFailed[114] == 1 && traffic.writesFailed.reduce(0, +) == 1)
        #expect(traffic.readsFailed[114] == 1 && traffic.readsFailed.reduce(0, +) == 1)
    }

    @Test func tableIsAlignedPlainText() {
        let text = recorded().report(end: clock(14.5)).renderTable()
        let expected = """
        tdsgate drill failover
          cluster              orders
          run time             14.500 s
          failover started     at 10.000 s
          primary              east -> west
          time to detect       1.200 s
          time to new primary  3.000 s
          time to first write  0.100 s after detection
          longest write gap    2.200 s
          max stall            2.200 s (2 stalls)
          writes acknowledged  6
          reads ok             3
          sessions closed      2
          errors               4
          primary timeline     0.000 s east, 11.200 s none, 13.000 s west

          error  count  meaning
           3906      2  database is read-only
          40613      1  database not currently available
              -      1  connection reset

        SAFETY FAILED: 2 write(s) acknowledged by an endpoint that was not primary
          key  endpoint      sent     acked  primary then
          k3   east      11.500 s  11.600 s  none
          k4   west      12.000 s  12.500 s  none

        """
        #expect(text == expected)
        let clean = DrillRecorder(cluster: "orders", start: clock(0), initialPrimary: "east").report(end: clock(1)).renderTable()
        #expect(clean.contains("SAFETY OK: every write was acknowledged by the primary of its moment"))
        #expect(clean.contains("  time to detect       not detected"))
    }
}
