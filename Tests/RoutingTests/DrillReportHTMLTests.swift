import Foundation
import Testing
@testable import Routing

@Suite("DrillReport as HTML: one self-contained page with an SVG timeline")
struct DrillReportHTMLTests {
    let clock = TestClock()

    /// A planned failover from east to west: asked at 2 s, seen at 2.4 s, west at 2.5 s.
    func report(cluster: String = "orders", old: String = "east", new: String = "west") -> DrillReport {
        var drill = DrillRecorder(cluster: cluster, start: clock(0), initialPrimary: old)
        drill.failoverStarted(at: clock(2))
        drill.primaryChanged(from: old, to: nil, at: clock(2.4))
        drill.primaryChanged(from: nil, to: new, at: clock(2.5))
        for i in 0..<20 {
            let t = Double(i) * 0.25
            let endpoint = t < 2.4 ? old : new
            guard t < 2.1 || t > 2.6 else { continue }
            drill.writeAcknowledged(endpoint: endpoint, key: "k\(i)", sentAt: clock(t), ackedAt: clock(t + 0.01))
            drill.readSucceeded(endpoint: "r1", at: clock(t + 0.02))
        }
        drill.error(number: 3906, endpoint: old, at: clock(2.2), request: .write)
        drill.error(label: "connection closed", endpoint: "r1", at: clock(2.3), request: .read)
        var report = drill.report(end: clock(5))
        report.mode = "planned"
        return report
    }

    func count(_ needle: String, in text: String) -> Int {
        text.components(separatedBy: needle).count - 1
    }

    @Test func theTimelineHasEveryPart() {
        let html = DrillReport.renderHTML(phases: [.init(name: "failover", report: report())])
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(count("<svg ", in: html) == 1)
        #expect(html.contains("id=\"timeline-failover\""))
        // The primary over time: east, no primary, west.
        #expect(count("<rect class=\"primary\"", in: html) == 3)
        #expect(html.contains("data-endpoint=\"east\"") && html.contains("data-endpoint=\"no primary\"") && html.contains("data-endpoint=\"west\""))
        // Writes and reads, acknowledged and failed.
        #expect(count("class=\"bar writes-ok\"", in: html) == 18)
        #expect(count("class=\"bar writes-failed\"", in: html) == 1)
        #expect(count("class=\"bar reads-ok\"", in: html) == 18)
        #expect(count("class=\"bar reads-failed\"", in: html) == 1)
        #expect(html.contains("writes per 100 ms"))
        for marker in ["failover-start", "detection", "new-primary", "first-write"] {
            #expect(count("data-marker=\"\(marker)\"", in: html) == 1, "marker \(marker)")
        }
        // The summary table and the errors by number.
        #expect(html.contains("<tr><th>time to detect</th><td>0.400 s</td></tr>"))
        #expect(html.contains("<td class=\"num\">3906</td><td class=\"num\">1</td><td>database is read-only</td>"))
        #expect(html.contains("SAFETY OK"))
    }

    @Test func markersSitWhereTheirTimesAre() {
        let svg = DrillTimelineSVG(report: report(), id: "x")
        let byKey = Dictionary(uniqueKeysWithValues: svg.markers.map { ($0.key, $0.atMs) })
        #expect(byKey == ["failover-start": 2_000, "detection": 2_400, "new-primary": 2_500, "first-write": 2_760])
        #expect(svg.x(0) == DrillTimelineSVG.left)
        #expect(svg.x(5_000) == DrillTimelineSVG.left + DrillTimelineSVG.plotWidth)
        #expect(svg.x(2_500) == DrillTimelineSVG.left + DrillTimelineSVG.plotWidth / 2)
        #expect(svg.x(9_000) == DrillTimelineSVG.left + DrillTimelineSVG.plotWidth, "clamped to the plot")
    }

    @Test func nothingFromOutsideIsMarkup() {
        var r = report(cluster: "<b>orders</b>", old: "east\"><script>alert(1)</script>", new: "west & 'co'")
        r.aborted = "ARM said <error code=\"x\">"
        var drill = DrillRecorder(cluster: "c", start: clock(0), initialPrimary: nil)
        drill.error(label: "odd <label> & more", endpoint: nil, at: clock(1))
        r.errors = drill.report(end: clock(2)).errors
        let html = DrillReport.renderHTML(phases: [.init(name: "fail<over>", report: r)])
        #expect(!html.contains("<script"))
        #expect(!html.contains("<b>") && !html.contains("<error"))
        #expect(html.contains("&lt;b&gt;orders&lt;/b&gt;"))
        #expect(html.contains("east&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(html.contains("west &amp; &#39;co&#39;"))
        #expect(html.contains("odd &lt;label&gt; &amp; more"))
        #expect(html.contains("ARM said &lt;error code=&quot;x&quot;&gt;"))
        #expect(html.contains("id=\"phase-fail-over-\""), "ids keep only letters, digits and dashes")
        #expect(HTMLText.escape("a<b>&\"'") == "a&lt;b&gt;&amp;&quot;&#39;")
    }

    @Test func thePageNeedsNothingElse() {
        let html = DrillReport.renderHTML(phases: [.init(name: "failover", report: report()), .init(name: "failback", report: report(old: "west", new: "east"))])
        #expect(count("<svg ", in: html) == 2)
        for external in ["<script", "<link", "src=", "url(", "@import", "https://"] {
            #expect(!html.contains(external), "\(external) in a self-contained page")
        }
        // The only URL is the SVG namespace.
        #expect(count("http://", in: html) == count("xmlns=\"http://www.w3.org/2000/svg\"", in: html))
    }

    @Test func longDrillsAreMergedIntoFewerColumns() {
        var drill = DrillRecorder(cluster: "orders", start: clock(0), initialPrimary: "east")
        for i in 0..<1_200 { drill.writeAcknowledged(endpoint: "east", key: "k\(i)", sentAt: clock(Double(i) / 10), ackedAt: clock(Double(i) / 10 + 0.05)) }
        let report = drill.report(end: clock(120))
        #expect(report.traffic.bucketCount == 1_200)
        let html = DrillReport.renderHTML(phases: [.init(name: "failover", report: report)])
        #expect(count("class=\"bar writes-ok\"", in: html) == 400, "three slices of 100 ms per column")
        #expect(html.contains("writes per 300 ms"))
        #expect(!html.contains("data-marker="), "no failover, no markers")
    }
}
