extension DrillReport {
    /// One phase of a drill as the HTML report shows it (the failover, then the failback).
    public struct HTMLPhase: Sendable {
        public var name: String
        public var report: DrillReport

        public init(name: String, report: DrillReport) {
            self.name = name
            self.report = report
        }
    }

    /// `tdsgate drill failover --report FILE.html`: one self-contained page (inline CSS and
    /// SVG, no script, no external asset) with, per phase, the summary table, a timeline of
    /// writes and reads per time slice (acknowledged and failed), the primary over time,
    /// markers for failover start, detection, new primary and first write, and the errors
    /// by number. Every text from outside (names, error labels, messages) is escaped.
    public static func renderHTML(phases: [HTMLPhase]) -> String {
        let mode = phases.first?.report.mode.map { " --\($0)" } ?? ""
        let cluster = phases.first?.report.cluster ?? "?"
        var html = """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <title>\(HTMLText.escape("tdsgate drill failover\(mode): cluster \(cluster)"))</title>
        <style>\(HTMLStyle.css)</style>
        </head>
        <body>
        <h1>\(HTMLText.escape("tdsgate drill failover\(mode)"))</h1>

        """
        for phase in phases {
            html += phaseSection(phase)
        }
        html += """
        <p class="note">Written by tdsgate drill failover. Times are seconds since the phase began; \
        the primary is the endpoint tdsgate routed writes to at that moment.</p>
        </body>
        </html>

        """
        return html
    }

    private static func phaseSection(_ phase: HTMLPhase) -> String {
        let r = phase.report
        let id = HTMLText.identifier(phase.name)
        var out = "<section class=\"phase\" id=\"phase-\(id)\">\n<h2>\(HTMLText.escape(phase.name))</h2>\n"
        out += r.verdictHTML()
        out += "<table class=\"summary\">\n"
        for row in r.summaryRows() {
            out += "<tr><th>\(HTMLText.escape(row.label))</th><td>\(HTMLText.escape(row.value))</td></tr>\n"
        }
        out += "</table>\n"
        out += DrillTimelineSVG(report: r, id: id).render()
        out += "<h3>Errors by number</h3>\n"
        if r.errors.isEmpty {
            out += "<p class=\"none\">No errors.</p>\n"
        } else {
            out += "<table class=\"errors\">\n<tr><th>error</th><th>count</th><th>meaning</th></tr>\n"
            for e in r.errors {
                out += "<tr><td class=\"num\">\(e.number.map(String.init) ?? "-")</td><td class=\"num\">\(e.count)</td>"
                    + "<td>\(HTMLText.escape(e.label))</td></tr>\n"
            }
            out += "</table>\n"
        }
        if !r.unsafeWrites.isEmpty {
            out += "<h3>Writes acknowledged by an endpoint that was not primary</h3>\n"
            out += "<table class=\"unsafe\">\n<tr><th>key</th><th>endpoint</th><th>sent</th><th>acked</th><th>primary then</th></tr>\n"
            for w in r.unsafeWrites {
                out += "<tr><td>\(HTMLText.escape(w.key))</td><td>\(HTMLText.escape(w.endpoint))</td>"
                    + "<td class=\"num\">\(seconds(w.sentMs))</td><td class=\"num\">\(seconds(w.ackedMs))</td>"
                    + "<td>\(HTMLText.escape(w.primaryAtAck ?? "none"))</td></tr>\n"
            }
            out += "</table>\n"
        }
        out += "</section>\n"
        return out
    }

    private func verdictHTML() -> String {
        var parts: [String] = []
        parts.append(safe ? "<span class=\"ok\">SAFETY OK</span> every write was acknowledged by the primary of its moment"
            : "<span class=\"bad\">SAFETY FAILED</span> \(unsafeWrites.count) write(s) acknowledged by an endpoint that was not primary")
        if let aborted {
            parts.append("<span class=\"bad\">ABORTED</span> \(HTMLText.escape(aborted))")
        } else if timeToFirstWriteMs == nil {
            parts.append("<span class=\"bad\">NO WRITE</span> after the failover was detected")
        }
        return "<p class=\"verdict\">" + parts.joined(separator: "<br>") + "</p>\n"
    }
}

/// The timeline of one phase as inline SVG: the primary band, writes and reads per time
/// slice, and the four markers. Pure layout arithmetic; sizes are in SVG user units.
struct DrillTimelineSVG {
    let report: DrillReport
    let id: String

    static let width = 960.0
    static let left = 64.0
    static let right = 24.0
    static let plotWidth = width - left - right
    /// At most this many bars per chart: slices are merged beyond it.
    static let maxColumns = 480
    static let bandTop = 40.0
    static let bandHeight = 22.0
    static let chartHeight = 110.0
    static let writesTop = 92.0
    static let readsTop = 242.0
    static let axisTop = readsTop + chartHeight
    /// Below the axis: the tick labels, then one row per marker label (four at most).
    static let height = axisTop + 34 + 4 * 14 + 4

    static let palette = ["#2b6cb0", "#c05621", "#2f855a", "#6b46c1", "#b7791f", "#0987a0"]

    struct Marker {
        var key: String
        var label: String
        var atMs: Double
    }

    var markers: [Marker] {
        var m: [Marker] = []
        if let t0 = report.failoverStartedMs { m.append(Marker(key: "failover-start", label: "failover start", atMs: t0)) }
        if let t1 = report.detectedMs { m.append(Marker(key: "detection", label: "detected", atMs: t1)) }
        if let t0 = report.failoverStartedMs, let d = report.timeToNewPrimaryMs {
            m.append(Marker(key: "new-primary", label: "new primary", atMs: t0 + d))
        }
        if let t1 = report.detectedMs, let d = report.timeToFirstWriteMs {
            m.append(Marker(key: "first-write", label: "first write", atMs: t1 + d))
        }
        return m
    }

    private var durationMs: Double { max(report.durationMs, 1) }

    func x(_ ms: Double) -> Double {
        Self.left + min(max(ms, 0), durationMs) / durationMs * Self.plotWidth
    }

    func render() -> String {
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"timeline\" id=\"timeline-\(id)\" "
            + "viewBox=\"0 0 \(n(Self.width)) \(n(Self.height))\" width=\"\(n(Self.width))\" height=\"\(n(Self.height))\" role=\"img\">\n"
        svg += "<title>\(HTMLText.escape("Timeline of the \(report.cluster) drill"))</title>\n"
        svg += primaryBand()
        let traffic = report.traffic
        svg += chart(kind: "writes", top: Self.writesTop, ok: traffic.writesAcknowledged, failed: traffic.writesFailed,
                     okLabel: "acknowledged", bucketMs: traffic.bucketMs)
        svg += chart(kind: "reads", top: Self.readsTop, ok: traffic.readsSucceeded, failed: traffic.readsFailed,
                     okLabel: "succeeded", bucketMs: traffic.bucketMs)
        svg += axis()
        svg += markerLines()
        svg += "</svg>\n"
        return svg
    }

    private func primaryBand() -> String {
        var out = "<g class=\"primary-band\">\n"
        out += "<text class=\"label\" x=\"\(n(Self.left))\" y=\"\(n(Self.bandTop - 8))\">primary (as tdsgate saw it)</text>\n"
        // A colour per endpoint name, by sorted name: the failover and the failback of one
        // drill show each endpoint in the same colour.
        let names = Set(report.primaryTimeline.compactMap(\.to)).sorted()
        let entries = report.primaryTimeline
        for (i, entry) in entries.enumerated() {
            let start = entry.atMs
            let end = i + 1 < entries.count ? entries[i + 1].atMs : report.durationMs
            let x0 = x(start)
            let w = max(x(end) - x0, 0)
            guard w > 0 else { continue }
            let name = entry.to
            let fill: String
            if let name, let index = names.firstIndex(of: name) {
                fill = Self.palette[index % Self.palette.count]
            } else {
                fill = "#cbd5e0"
            }
            let text = name ?? "no primary"
            out += "<rect class=\"primary\" data-endpoint=\"\(HTMLText.escape(text))\" x=\"\(n(x0))\" y=\"\(n(Self.bandTop))\" "
                + "width=\"\(n(w))\" height=\"\(n(Self.bandHeight))\" fill=\"\(fill)\"><title>\(HTMLText.escape(text)) from \(DrillReport.seconds(start))</title></rect>\n"
            // About 6.5 units per character at the band's font size: no label spills over.
            if w > Double(text.count) * 6.5 + 8 {
                out += "<text class=\"band-text\" x=\"\(n(x0 + 4))\" y=\"\(n(Self.bandTop + 15))\">\(HTMLText.escape(text))</text>\n"
            }
        }
        out += "</g>\n"
        return out
    }

    /// Stacked bars: successes from the base line up, failures on top of them.
    private func chart(kind: String, top: Double, ok: [Int], failed: [Int], okLabel: String, bucketMs: Double) -> String {
        let merge = max(1, Int((Double(ok.count) / Double(Self.maxColumns)).rounded(.up)))
        var okColumns: [Int] = []
        var failedColumns: [Int] = []
        var i = 0
        while i < ok.count {
            let r = i..<min(i + merge, ok.count)
            okColumns.append(ok[r].reduce(0, +))
            failedColumns.append(r.reduce(0) { $0 + (failed.indices.contains($1) ? failed[$1] : 0) })
            i += merge
        }
        let peak = max(1, zip(okColumns, failedColumns).map { $0 + $1 }.max() ?? 1)
        let slice = bucketMs * Double(merge)
        let base = top + Self.chartHeight
        var out = "<g class=\"chart \(kind)\">\n"
        out += "<text class=\"label\" x=\"\(n(Self.left))\" y=\"\(n(top - 8))\">\(kind) per \(n(slice)) ms: "
            + "<tspan class=\"\(kind)-ok-text\">\(okLabel)</tspan> / <tspan class=\"failed-text\">failed</tspan> (max \(peak))</text>\n"
        out += "<rect class=\"frame\" x=\"\(n(Self.left))\" y=\"\(n(top))\" width=\"\(n(Self.plotWidth))\" height=\"\(n(Self.chartHeight))\"/>\n"
        out += "<text class=\"tick\" x=\"\(n(Self.left - 6))\" y=\"\(n(top + 10))\" text-anchor=\"end\">\(peak)</text>\n"
        out += "<text class=\"tick\" x=\"\(n(Self.left - 6))\" y=\"\(n(base))\" text-anchor=\"end\">0</text>\n"
        let columnWidth = Self.plotWidth * slice / durationMs
        for (c, (good, bad)) in zip(okColumns, failedColumns).enumerated() where good + bad > 0 {
            let x0 = x(Double(c) * slice)
            let w = max(min(columnWidth, Self.left + Self.plotWidth - x0) - (columnWidth > 3 ? 1 : 0), 0.5)
            let okHeight = Double(good) / Double(peak) * Self.chartHeight
            let failedHeight = Double(bad) / Double(peak) * Self.chartHeight
            let at = DrillReport.seconds(Double(c) * slice)
            if good > 0 {
                out += "<rect class=\"bar \(kind)-ok\" x=\"\(n(x0))\" y=\"\(n(base - okHeight))\" width=\"\(n(w))\" height=\"\(n(okHeight))\">"
                    + "<title>\(at): \(good) \(okLabel)</title></rect>\n"
            }
            if bad > 0 {
                out += "<rect class=\"bar \(kind)-failed\" x=\"\(n(x0))\" y=\"\(n(base - okHeight - failedHeight))\" width=\"\(n(w))\" height=\"\(n(failedHeight))\">"
                    + "<title>\(at): \(bad) failed</title></rect>\n"
            }
        }
        out += "</g>\n"
        return out
    }

    private func axis() -> String {
        var out = "<g class=\"axis\">\n"
        out += "<line x1=\"\(n(Self.left))\" y1=\"\(n(Self.axisTop))\" x2=\"\(n(Self.left + Self.plotWidth))\" y2=\"\(n(Self.axisTop))\"/>\n"
        let seconds = durationMs / 1000
        let steps = [0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600]
        let step = steps.first { seconds / $0 <= 12 } ?? 1200
        var t = 0.0
        while t <= seconds + 1e-9 {
            let px = x(t * 1000)
            out += "<line class=\"tick-line\" x1=\"\(n(px))\" y1=\"\(n(Self.axisTop))\" x2=\"\(n(px))\" y2=\"\(n(Self.axisTop + 5))\"/>\n"
            out += "<text class=\"tick\" x=\"\(n(px))\" y=\"\(n(Self.axisTop + 18))\" text-anchor=\"middle\">\(n(t)) s</text>\n"
            t += step
        }
        out += "</g>\n"
        return out
    }

    private func markerLines() -> String {
        var out = "<g class=\"markers\">\n"
        for (i, m) in markers.enumerated() {
            let px = x(m.atMs)
            // One row per marker below the axis: markers a few milliseconds apart stay legible.
            let labelY = Self.axisTop + 34 + Double(i) * 14
            let nearRightEdge = px > Self.left + Self.plotWidth * 0.75
            out += "<rect class=\"marker marker-\(m.key)\" data-marker=\"\(m.key)\" x=\"\(n(px - 0.75))\" y=\"\(n(Self.bandTop))\" "
                + "width=\"1.5\" height=\"\(n(Self.axisTop - Self.bandTop))\"><title>\(m.label) at \(DrillReport.seconds(m.atMs))</title></rect>\n"
            out += "<rect class=\"marker-tick marker-\(m.key)\" x=\"\(n(px - 0.75))\" y=\"\(n(Self.axisTop + 20))\" width=\"1.5\" "
                + "height=\"\(n(labelY - Self.axisTop - 20))\"/>\n"
            out += "<text class=\"marker-label marker-\(m.key)\" x=\"\(n(px + (nearRightEdge ? -4 : 4)))\" y=\"\(n(labelY))\" "
                + "text-anchor=\"\(nearRightEdge ? "end" : "start")\">"
                + "\(m.label) \(DrillReport.seconds(m.atMs))</text>\n"
        }
        out += "</g>\n"
        return out
    }

    /// Numbers as SVG wants them: no exponent, at most two decimals.
    func n(_ value: Double) -> String {
        let r = (value * 100).rounded() / 100
        if r == r.rounded() { return String(Int(r)) }
        return "\(r)"
    }
}

/// Escaping for text and attribute values in the HTML report.
enum HTMLText {
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.append(c)
            }
        }
        return out
    }

    /// A phase name as an id fragment: letters, digits and dashes only.
    static func identifier(_ text: String) -> String {
        let mapped = text.lowercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "-" }
        return String(mapped)
    }
}

enum HTMLStyle {
    static let css = """
    body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#1a202c;background:#fff}\
    h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #e2e8f0}h3{font-size:15px}\
    table{border-collapse:collapse;margin:8px 0 16px}th,td{padding:3px 10px;text-align:left;border-bottom:1px solid #edf2f7}\
    table.summary th{font-weight:600;color:#4a5568}td.num{text-align:right;font-variant-numeric:tabular-nums}\
    .verdict .ok{color:#fff;background:#2f855a;padding:1px 6px;border-radius:3px;font-weight:700}\
    .verdict .bad{color:#fff;background:#c53030;padding:1px 6px;border-radius:3px;font-weight:700}\
    svg.timeline{display:block;max-width:100%;height:auto;font-size:11px}\
    svg .label{font-size:12px;fill:#2d3748}svg .tick{fill:#4a5568}svg .band-text{fill:#fff;font-size:11px}\
    svg .frame{fill:#f7fafc;stroke:#e2e8f0}svg .axis line{stroke:#718096}\
    svg .writes-ok{fill:#2f855a}svg .reads-ok{fill:#3182ce}svg .writes-failed,svg .reads-failed{fill:#e53e3e}\
    svg .writes-ok-text{fill:#2f855a}svg .reads-ok-text{fill:#3182ce}svg .failed-text{fill:#e53e3e}\
    svg .marker{fill:#1a202c;opacity:.7}svg .marker-tick{opacity:.35}svg .marker-label{font-size:10px;fill:#1a202c}\
    svg .marker-failover-start{fill:#c05621}svg .marker-detection{fill:#6b46c1}\
    svg .marker-new-primary{fill:#2b6cb0}svg .marker-first-write{fill:#2f855a}\
    .note{color:#718096;font-size:12px}.none{color:#4a5568}
    """
}
