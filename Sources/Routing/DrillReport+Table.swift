extension DrillReport {
    /// The figures of the summary, as (label, value) in reading order: the terminal table
    /// and the HTML report show the same rows.
    public func summaryRows() -> [(label: String, value: String)] {
        var rows: [(label: String, value: String)] = [
            ("cluster", cluster),
            ("run time", Self.seconds(durationMs)),
            ("failover started", failoverStartedMs.map { "at " + Self.seconds($0) } ?? "not recorded"),
            ("primary", "\(oldPrimary ?? "none") -> \(newPrimary ?? "no new primary")"),
            ("time to detect", timeToDetectMs.map(Self.seconds) ?? "not detected"),
            ("time to new primary", timeToNewPrimaryMs.map(Self.seconds) ?? "none confirmed"),
            ("time to first write", timeToFirstWriteMs.map { Self.seconds($0) + " after detection" } ?? "no write after detection"),
            ("longest write gap", longestWriteGapMs.map(Self.seconds) ?? "no writes"),
            ("max stall", maxStallMs.map { Self.seconds($0) + " (\(stalls) stalls)" } ?? "none"),
            ("writes acknowledged", "\(writesAcknowledged)"),
            ("reads ok", "\(readsSucceeded)"),
            ("sessions closed", "\(sessionsClosed)"),
            ("errors", "\(errorTotal)"),
        ]
        if let verified = writesVerified {
            var text = "\(verified) of \(writesAcknowledged) still on the primary"
            if lostWriteCount > 0 { text += " (\(lostWriteCount) lost: \(lostWrites.joined(separator: ", ")))" }
            rows.append(("writes verified after", text))
        }
        let timeline: [String] = primaryTimeline.map { entry in Self.seconds(entry.atMs) + " " + (entry.to ?? "none") }
        rows.append(("primary timeline", timeline.joined(separator: ", ")))
        if let aborted { rows.append(("aborted", aborted)) }
        return rows
    }

    /// The report as aligned plain text for a terminal (no colour, no box drawing, so it
    /// survives logs and copy-paste).
    public func renderTable() -> String {
        let rows = summaryRows()
        let width = rows.map(\.label.count).max() ?? 0
        var lines = ["tdsgate drill failover" + (mode.map { " --\($0)" } ?? "")]
        lines += rows.map { "  " + Self.pad($0.label, width) + "  " + $0.value }
        if !errors.isEmpty {
            lines.append("")
            lines += Self.table(
                header: ["error", "count", "meaning"],
                rows: errors.map { [$0.number.map(String.init) ?? "-", "\($0.count)", $0.label] },
                rightAligned: [0, 1])
        }
        lines.append("")
        if safe {
            lines.append("SAFETY OK: every write was acknowledged by the primary of its moment")
        } else {
            lines.append("SAFETY FAILED: \(unsafeWrites.count) write(s) acknowledged by an endpoint that was not primary")
            lines += Self.table(
                header: ["key", "endpoint", "sent", "acked", "primary then"],
                rows: unsafeWrites.map {
                    [$0.key, $0.endpoint, Self.seconds($0.sentMs), Self.seconds($0.ackedMs), $0.primaryAtAck ?? "none"]
                },
                rightAligned: [2, 3])
        }
        return lines.joined(separator: "\n") + "\n"
    }

    static func seconds(_ ms: Double) -> String {
        let total = Int((ms).rounded())
        let sign = total < 0 ? "-" : ""
        let magnitude = abs(total)
        let fraction = String(magnitude % 1000)
        return "\(sign)\(magnitude / 1000).\(String(repeating: "0", count: 3 - fraction.count))\(fraction) s"
    }

    static func pad(_ text: String, _ width: Int, right: Bool = false) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return right ? fill + text : text + fill
    }

    static func table(header: [String], rows: [[String]], rightAligned: Set<Int>) -> [String] {
        let all = [header] + rows
        let widths = header.indices.map { column in all.map { $0[column].count }.max() ?? 0 }
        return all.map { row in
            let cells = row.indices.map { pad(row[$0], widths[$0], right: rightAligned.contains($0)) }
            // Trailing spaces would only make copy-paste and golden files noisier.
            var line = "  " + cells.joined(separator: "  ")
            while line.last == " " { line.removeLast() }
            return line
        }
    }
}
