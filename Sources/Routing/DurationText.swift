// Every time in this module is a `ContinuousClock.Instant` handed in by the caller, so tests
// drive the clock and nothing here reads one. These helpers turn `Duration` into the numbers
// and words that reports and refusal messages need.

extension Duration {
    /// Seconds as a floating-point number (for EWMA maths and JSON).
    var secondsValue: Double {
        let c = components
        return Double(c.seconds) + Double(c.attoseconds) / 1e18
    }

    /// Milliseconds rounded to the microsecond, so JSON stays readable and stable.
    var millisecondsValue: Double {
        (secondsValue * 1_000_000).rounded() / 1_000
    }

    /// "350 ms", "1.2 s", "2 min 5 s": what a person reading a log line wants.
    var humanText: String {
        let s = secondsValue
        if s < 0 { return "-" + (Duration.zero - self).humanText }
        if s < 1 { return "\(Int((s * 1_000).rounded())) ms" }
        if s < 60 {
            let tenths = (s * 10).rounded() / 10
            return tenths == tenths.rounded() ? "\(Int(tenths)) s" : "\(tenths) s"
        }
        let total = Int(s.rounded())
        return total % 60 == 0 ? "\(total / 60) min" : "\(total / 60) min \(total % 60) s"
    }
}
