/// Wall-clock time in nanoseconds since the Unix epoch. Kept free of Foundation so pcapng
/// timestamps stay exact and the module has no platform dependency.
public struct DumpTimestamp: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var nanosecondsSinceEpoch: UInt64

    public init(nanosecondsSinceEpoch: UInt64) {
        self.nanosecondsSinceEpoch = nanosecondsSinceEpoch
    }

    public init(seconds: UInt64, nanoseconds: UInt64 = 0) {
        nanosecondsSinceEpoch = seconds &* 1_000_000_000 &+ nanoseconds
    }

    public static func < (lhs: DumpTimestamp, rhs: DumpTimestamp) -> Bool {
        lhs.nanosecondsSinceEpoch < rhs.nanosecondsSinceEpoch
    }

    public func adding(nanoseconds: UInt64) -> DumpTimestamp {
        DumpTimestamp(nanosecondsSinceEpoch: nanosecondsSinceEpoch &+ nanoseconds)
    }

    /// ISO 8601 UTC with microseconds, e.g. 2026-01-02T03:04:05.123456Z.
    public var description: String {
        let totalSeconds = Int64(nanosecondsSinceEpoch / 1_000_000_000)
        let micros = Int((nanosecondsSinceEpoch % 1_000_000_000) / 1000)
        let secondOfDay = Int(totalSeconds % 86_400)
        return DumpTimestamp.dateText(daysSinceEpoch: totalSeconds / 86_400) + "T"
            + DumpTimestamp.timeText(secondOfDay: secondOfDay) + "." + DumpText.pad(String(micros), 6) + "Z"
    }

    /// yyyy-mm-dd of a day counted from 1970-01-01 (Howard Hinnant's civil_from_days).
    static func dateText(daysSinceEpoch days: Int64) -> String {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        return DumpText.pad(String(year), 4) + "-" + DumpText.pad(String(month), 2) + "-" + DumpText.pad(String(day), 2)
    }

    static func timeText(secondOfDay: Int) -> String {
        DumpText.pad(String(secondOfDay / 3600), 2) + ":" + DumpText.pad(String(secondOfDay / 60 % 60), 2) + ":"
            + DumpText.pad(String(secondOfDay % 60), 2)
    }
}
