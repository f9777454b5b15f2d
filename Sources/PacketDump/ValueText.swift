import TDS

/// TDSValue as a person reads it, cut to a bounded length.
enum ValueText {
    static let daysFrom1900To1970: Int64 = 25_567
    static let daysFrom0001To1970: Int64 = 719_162

    static func render(_ value: TDSValue, type: TDSTypeInfo, limit: Int) -> String {
        switch value {
        case .null: return "NULL"
        case .int(let v): return String(v)
        case .bit(let v): return v ? "1" : "0"
        case .float(let v): return "\(v)"
        case .string(let s): return DumpText.quoted(s, limit: limit)
        case .bytes(let b):
            let shown = "0x" + DumpText.hex(b.prefix(limit))
            return b.count > limit ? shown + "… (\(DumpText.grouped(b.count)) bytes)" : shown
        case .decimal(let d):
            switch type {
            case let .decimal(_, scale, _), let .numeric(_, scale, _): return d.string(scale: scale)
            default: return d.string(scale: 0)
            }
        case .money(let v):
            let sign = v < 0 ? "-" : ""
            let m = v.magnitude
            return sign + String(m / 10000) + "." + DumpText.pad(String(m % 10000), 4)
        case let .datetime(days, fraction):
            let ms = Int(fraction) * 10 / 3
            return DumpTimestamp.dateText(daysSinceEpoch: Int64(days) - daysFrom1900To1970) + " "
                + DumpTimestamp.timeText(secondOfDay: ms / 1000 % 86_400) + "." + DumpText.pad(String(ms % 1000), 3)
        case let .smallDateTime(days, minutes):
            return DumpTimestamp.dateText(daysSinceEpoch: Int64(days) - daysFrom1900To1970) + " "
                + DumpTimestamp.timeText(secondOfDay: Int(minutes) * 60 % 86_400)
        case .date(let days):
            return DumpTimestamp.dateText(daysSinceEpoch: Int64(days) - daysFrom0001To1970)
        case .time(let ticks):
            return timeText(ticks: ticks, type: type)
        case let .datetime2(days, ticks):
            return DumpTimestamp.dateText(daysSinceEpoch: Int64(days) - daysFrom0001To1970) + " " + timeText(ticks: ticks, type: type)
        case let .datetimeoffset(days, ticks, offset):
            let sign = offset < 0 ? "-" : "+"
            let m = Int(offset.magnitude)
            return DumpTimestamp.dateText(daysSinceEpoch: Int64(days) - daysFrom0001To1970) + " " + timeText(ticks: ticks, type: type)
                + " UTC" + sign + DumpText.pad(String(m / 60), 2) + ":" + DumpText.pad(String(m % 60), 2)
        case .guid(let g):
            guard g.count == 16 else { return "0x" + DumpText.hex(g) }
            let a = DumpText.hex(g[0..<4].reversed()), b = DumpText.hex(g[4..<6].reversed()), c = DumpText.hex(g[6..<8].reversed())
            return "\(a)-\(b)-\(c)-\(DumpText.hex(g[8..<10]))-\(DumpText.hex(g[10..<16]))".uppercased()
        }
    }

    private static func timeText(ticks: UInt64, type: TDSTypeInfo) -> String {
        var scale: UInt8 = 7
        switch type {
        case .time(let s), .datetime2(let s), .datetimeoffset(let s): scale = min(s, 7)
        default: break
        }
        var divisor: UInt64 = 1
        for _ in 0..<scale { divisor *= 10 }
        let seconds = Int((ticks / divisor) % 86_400)
        let fraction = ticks % divisor
        let base = DumpTimestamp.timeText(secondOfDay: seconds)
        return scale == 0 ? base : base + "." + DumpText.pad(String(fraction), Int(scale))
    }
}
