import Foundation

/// The targets the issue sets for tdsgate, checked against one run's figures.
public struct BenchGoal: Sendable, Equatable {
    public var text: String
    /// nil when a figure is missing.
    public var met: Bool?
    public var detail: String
}

public enum BenchGoals {
    public static let maxBytesPerIdleSession = 64.0 * 1024
    /// The emulator streams one session on one thread: at this share of a core it is the limit.
    public static let emulatorSaturated = 0.9

    /// Whether the streaming goal is judged on the parallel figure (see `evaluate`).
    public static func streamingUsesParallel(_ r: BenchResults) -> Bool {
        let proxies = [r.target("tdsgate"), r.target("haproxy")]
        let saturated = proxies.allSatisfy { ($0?.throughput?.cpuBusy["emulator"] ?? 0) >= emulatorSaturated }
        return saturated && proxies.allSatisfy { $0?.throughput?.parallelMedianMBps != nil }
    }

    public static func evaluate(_ r: BenchResults) -> [BenchGoal] {
        let direct = r.target("direct")
        let haproxy = r.target("haproxy")
        let tdsgate = r.target("tdsgate")
        var goals: [BenchGoal] = []

        // One session: the emulator streams it on one thread. When that thread is saturated
        // for both proxies, the single-session figure measures the emulator, and the goal is
        // judged on the parallel figure, where the machine's CPUs are the limit.
        let parallel = streamingUsesParallel(r)
        let ts = parallel ? tdsgate?.throughput?.parallelMedianMBps : tdsgate?.throughput?.medianMBps
        let hs = parallel ? haproxy?.throughput?.parallelMedianMBps : haproxy?.throughput?.medianMBps
        var streamDetail = "tdsgate \(BenchFormat.number(ts, digits: 0)) MB/s vs HAProxy \(BenchFormat.number(hs, digits: 0)) MB/s"
        if parallel {
            let n = tdsgate?.throughput?.parallelSessions ?? 2
            streamDetail += " with \(n) sessions at once (*: one session saturates the emulator's streaming thread for every target: "
                + "tdsgate \(BenchFormat.number(tdsgate?.throughput?.medianMBps, digits: 0)) vs HAProxy \(BenchFormat.number(haproxy?.throughput?.medianMBps, digits: 0)) MB/s there)"
        }
        let tc = tdsgate?.throughput?.cpuSecondsPerGB["tdsgate"]
        let hc = haproxy?.throughput?.cpuSecondsPerGB["haproxy"]
        if tc != nil || hc != nil {
            streamDetail += "; proxy CPU per GB: tdsgate \(BenchFormat.number(tc, digits: 2)) s, HAProxy \(BenchFormat.number(hc, digits: 2)) s"
        }
        goals.append(BenchGoal(
            text: "streaming throughput >= HAProxy's",
            met: ts.flatMap { t in hs.map { t >= $0 } },
            detail: streamDetail))

        let d = direct?.latency1?.p50Micros
        let ta = tdsgate?.latency1?.p50Micros.flatMapDiff(d)
        let ha = haproxy?.latency1?.p50Micros.flatMapDiff(d)
        goals.append(BenchGoal(
            text: "added p50 latency (1 session) <= HAProxy's",
            met: ta.flatMap { t in ha.map { t <= $0 } },
            detail: "tdsgate +\(BenchFormat.number(ta, digits: 0)) us vs HAProxy +\(BenchFormat.number(ha, digits: 0)) us over direct"))

        let tm = tdsgate?.memory?.bytesPerSession
        goals.append(BenchGoal(
            text: "< 64 KiB per idle session",
            met: tm.map { $0 < maxBytesPerIdleSession },
            detail: "tdsgate \(BenchFormat.number(tm.map { $0 / 1024 }, digits: 1)) KiB per session (\(tdsgate?.memory?.sessions ?? 0) sessions)"))
        return goals
    }
}

extension Double {
    fileprivate func flatMapDiff(_ other: Double?) -> Double? {
        other.map { self - $0 }
    }
}

enum BenchFormat {
    static func number(_ v: Double?, digits: Int) -> String {
        guard let v, v.isFinite else { return "-" }
        return String(format: "%.\(digits)f", v)
    }

    static func ratio(_ v: Double?) -> String {
        guard let v, v.isFinite else { return "-" }
        return String(format: "%.2fx", v)
    }

    static func pad(_ s: String, _ width: Int, left: Bool = false) -> String {
        let n = s.count
        guard n < width else { return s }
        let fill = String(repeating: " ", count: width - n)
        return left ? s + fill : fill + s
    }
}

/// The comparison table `tdsgate bench` prints.
public enum BenchReport {
    struct Row {
        var label: String
        var values: [String: Double]
        var digits: Int
        /// "higher" or "lower" is better: only for the ratio columns' reading, not computed.
        var goal: String = ""
        var signed = false
        /// Ratio columns against direct are left empty (the figure has no direct counterpart).
        var againstDirect = true
        var ratios = true
    }

    public static func render(_ r: BenchResults) -> String {
        let names = ["direct", "haproxy", "tdsgate"]
        func fig(_ name: String, _ f: (TargetFigures) -> Double?) -> Double? {
            r.target(name).flatMap(f)
        }
        func row(_ label: String, digits: Int, goal: String = "", signed: Bool = false, againstDirect: Bool = true, ratios: Bool = true,
                 _ f: (TargetFigures) -> Double?) -> Row {
            var v: [String: Double] = [:]
            for n in names { if let x = fig(n, f) { v[n] = x } }
            return Row(label: label, values: v, digits: digits, goal: goal, signed: signed, againstDirect: againstDirect && !signed, ratios: ratios)
        }
        let directP50 = fig("direct") { $0.latency1?.p50Micros }
        let parallel = r.targets.compactMap { $0.throughput?.parallelSessions }.max() ?? 2
        let parallelGoal = BenchGoals.streamingUsesParallel(r) ? "tdsgate >= haproxy (*)" : ""
        let direct64 = fig("direct") { $0.latency64?.p50Micros }
        let rows: [Row] = [
            row("SELECT 1 p50, 1 session (us)", digits: 0) { $0.latency1?.p50Micros },
            row("SELECT 1 p99, 1 session (us)", digits: 0) { $0.latency1?.p99Micros },
            row("  added p50 over direct (us)", digits: 0, goal: "tdsgate <= haproxy", signed: true) { t in
                t.name == "direct" ? nil : t.latency1.flatMap { l in directP50.map { l.p50Micros - $0 } }
            },
            row("SELECT 1 p50, 64 sessions (us)", digits: 0) { $0.latency64?.p50Micros },
            row("SELECT 1 p99, 64 sessions (us)", digits: 0) { $0.latency64?.p99Micros },
            row("  added p50 over direct (us)", digits: 0, signed: true) { t in
                t.name == "direct" ? nil : t.latency64.flatMap { l in direct64.map { l.p50Micros - $0 } }
            },
            row("  queries/s, 64 sessions", digits: 0) { $0.latency64?.queriesPerSecond },
            row("  proxy CPU us per query", digits: 1, againstDirect: false) { t in
                t.name == "direct" ? nil : t.latency64?.cpuMicrosPerQuery[t.name]
            },
            row("  emulator CPU us per query", digits: 1) { $0.latency64?.cpuMicrosPerQuery["emulator"] },
            row("streaming MB/s, 1 session", digits: 0, goal: "tdsgate >= haproxy") { $0.throughput?.medianMBps },
            row("streaming MB/s, \(parallel) sessions (sum)", digits: 0, goal: parallelGoal) { $0.throughput?.parallelMedianMBps },
            row("  proxy CPU s per GB", digits: 2, againstDirect: false) { t in
                t.name == "direct" ? nil : t.throughput?.cpuSecondsPerGB[t.name]
            },
            row("  emulator CPU s per GB", digits: 2) { $0.throughput?.cpuSecondsPerGB["emulator"] },
            row("  client CPU s per GB", digits: 2) { $0.throughput?.cpuSecondsPerGB["bench"] },
            row("  emulator busy (% of a core)", digits: 0, ratios: false) { $0.throughput?.cpuBusy["emulator"].map { $0 * 100 } },
            row("  proxy busy (% of a core)", digits: 0, ratios: false) { t in
                t.name == "direct" ? nil : t.throughput?.cpuBusy[t.name].map { $0 * 100 }
            },
            row("logins/s (8 loops)", digits: 0) { $0.logins?.perSecond },
            row("  login p50 (ms)", digits: 1) { $0.logins?.p50Millis },
            row("  login p99 (ms)", digits: 1) { $0.logins?.p99Millis },
            row("  proxy CPU ms per login", digits: 2, againstDirect: false) { t in
                t.name == "direct" ? nil : t.logins?.cpuMillisPerLogin[t.name]
            },
            row("RSS per idle session (KiB)", digits: 1, goal: "tdsgate < 64 KiB", againstDirect: false) { $0.memory.map { $0.bytesPerSession / 1024 } },
            row("  idle sessions held", digits: 0, ratios: false) { $0.memory.map { Double($0.sessions) } },
            row("  RSS before -> after (MiB)", digits: 0) { _ in nil },
        ]

        let labelWidth = 33
        let w = 10
        let rw = 15
        var lines: [String] = []
        let cpuNote = "\(r.cpus) CPUs shared by client, proxy and emulator"
        lines.append("tdsgate bench\(r.quick ? " --quick" : "") (\(r.startedAt); \(cpuNote); packet size \(r.packetSize); TLS 1.2 from the client on every target)")
        lines.append("")
        var header = BenchFormat.pad("", labelWidth, left: true)
        for n in names { header += BenchFormat.pad(n, w) }
        for h in ["haproxy/direct", "tdsgate/direct", "tdsgate/haproxy"] { header += BenchFormat.pad(h, rw + 1) }
        header += "  target"
        lines.append(header)
        lines.append(String(repeating: "-", count: header.count + 20))
        for row in rows {
            var line = BenchFormat.pad(row.label, labelWidth, left: true)
            if row.label.hasPrefix("  RSS before") {
                for n in names {
                    let m = r.target(n)?.memory
                    line += BenchFormat.pad(m.map { "\($0.rssBeforeKiB / 1024)->\($0.rssAfterKiB / 1024)" } ?? "-", w)
                }
                lines.append(line)
                continue
            }
            for n in names {
                var s = BenchFormat.number(row.values[n], digits: row.digits)
                if row.signed, let v = row.values[n], v >= 0 { s = "+" + s }
                line += BenchFormat.pad(s, w)
            }
            let pairs: [(String, String)] = [("haproxy", "direct"), ("tdsgate", "direct"), ("tdsgate", "haproxy")]
            for (a, b) in pairs {
                if !row.ratios || (!row.againstDirect && b == "direct") {
                    line += BenchFormat.pad("", rw + 1)
                    continue
                }
                line += BenchFormat.pad(BenchFormat.ratio(BenchMath.ratio(row.values[a], row.values[b])), rw + 1)
            }
            if !row.goal.isEmpty { line += "  " + row.goal }
            lines.append(line)
        }
        lines.append("")
        lines.append("Targets:")
        for g in BenchGoals.evaluate(r) {
            let mark = g.met.map { $0 ? "MET   " : "MISSED" } ?? "n/a   "
            lines.append("  [\(mark)] \(g.text): \(g.detail)")
        }
        lines.append("")
        lines.append("Notes:")
        for t in r.targets {
            lines.append("  \(t.name): \(t.summary)")
        }
        for n in r.notes { lines.append("  - \(n)") }
        for t in r.targets where !t.errors.isEmpty {
            for e in t.errors { lines.append("  ! \(t.name): \(e)") }
        }
        return lines.joined(separator: "\n")
    }
}
