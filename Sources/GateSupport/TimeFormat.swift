import Foundation

/// Times in text that people and JSON readers see (error messages, admin API bodies).
public enum TimeFormat {
    /// ISO 8601 in UTC, whole seconds (`2025-01-31T12:00:00Z`), for messages.
    public static func iso(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.timeZone = TimeZone(secondsFromGMT: 0)
        return formatter.string(from: date)
    }

    /// RFC 3339 in UTC with milliseconds (`2025-01-31T12:00:00.123Z`): precise enough to
    /// time a failover.
    public static func rfc3339Milliseconds(_ date: Date) -> String {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        return formatter.string(from: date)
    }
}
