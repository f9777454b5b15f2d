import Foundation

/// Hand-written JSON output for audit lines: deterministic field order, strict escaping.
enum JSONText {
    /// Appends `value` as a JSON string literal (with quotes). Quotes, backslashes and all
    /// control characters are escaped (`\n`, `\r`, `\t`, `\b`, `\f`, otherwise `\u00XX`),
    /// as are DEL, U+2028 and U+2029. Other characters are written as UTF-8, or, with
    /// `asciiOnly`, as `\uXXXX` (surrogate pairs outside the BMP).
    static func appendString(_ value: String, to out: inout [UInt8], asciiOnly: Bool) {
        out.append(UInt8(ascii: "\""))
        if asciiOnly {
            for scalar in value.unicodeScalars { appendScalar(scalar, to: &out, asciiOnly: true) }
        } else {
            // UTF-8 is copied through; only ASCII bytes and U+2028/U+2029 (E2 80 A8/A9) need
            // escapes, so no scalar decoding on the common path.
            let bytes = value.utf8
            var index = bytes.startIndex
            while index != bytes.endIndex {
                let byte = bytes[index]
                if byte >= 0x20, byte < 0x7F, byte != 0x22, byte != 0x5C {
                    out.append(byte)
                } else if byte < 0x80 {
                    appendScalar(Unicode.Scalar(byte), to: &out, asciiOnly: false)
                } else if byte == 0xE2, let separator = lineSeparator(bytes, at: index) {
                    appendUnicodeEscape(separator, to: &out)
                    index = bytes.index(index, offsetBy: 2)
                } else {
                    out.append(byte)
                }
                index = bytes.index(after: index)
            }
        }
        out.append(UInt8(ascii: "\""))
    }

    /// U+2028 or U+2029 when the UTF-8 at `index` (an 0xE2 byte) is one of them.
    private static func lineSeparator(_ bytes: String.UTF8View, at index: String.Index) -> UInt16? {
        let second = bytes.index(after: index)
        guard second != bytes.endIndex, bytes[second] == 0x80 else { return nil }
        let third = bytes.index(after: second)
        guard third != bytes.endIndex else { return nil }
        switch bytes[third] {
        case 0xA8: return 0x2028
        case 0xA9: return 0x2029
        default: return nil
        }
    }

    private static func appendScalar(_ scalar: Unicode.Scalar, to out: inout [UInt8], asciiOnly: Bool) {
        let v = scalar.value
        switch v {
        case 0x22: out.append(0x5C); out.append(0x22)
        case 0x5C: out.append(0x5C); out.append(0x5C)
        case 0x0A: out.append(0x5C); out.append(UInt8(ascii: "n"))
        case 0x0D: out.append(0x5C); out.append(UInt8(ascii: "r"))
        case 0x09: out.append(0x5C); out.append(UInt8(ascii: "t"))
        case 0x08: out.append(0x5C); out.append(UInt8(ascii: "b"))
        case 0x0C: out.append(0x5C); out.append(UInt8(ascii: "f"))
        case 0x00..<0x20, 0x7F, 0x2028, 0x2029:
            appendUnicodeEscape(UInt16(v), to: &out)
        case 0x20..<0x7F:
            out.append(UInt8(v))
        default:
            if asciiOnly {
                if v > 0xFFFF {
                    let offset = v - 0x10000
                    appendUnicodeEscape(UInt16(0xD800 + (offset >> 10)), to: &out)
                    appendUnicodeEscape(UInt16(0xDC00 + (offset & 0x3FF)), to: &out)
                } else {
                    appendUnicodeEscape(UInt16(v), to: &out)
                }
            } else {
                out.append(contentsOf: String(Character(scalar)).utf8)
            }
        }
    }

    private static let hex = Array("0123456789abcdef".utf8)

    private static func appendUnicodeEscape(_ unit: UInt16, to out: inout [UInt8]) {
        out.append(0x5C)
        out.append(UInt8(ascii: "u"))
        out.append(hex[Int(unit >> 12) & 0xF])
        out.append(hex[Int(unit >> 8) & 0xF])
        out.append(hex[Int(unit >> 4) & 0xF])
        out.append(hex[Int(unit) & 0xF])
    }

    static func appendInt(_ value: Int, to out: inout [UInt8]) {
        out.append(contentsOf: String(value).utf8)
    }
}

/// RFC 3339 timestamps with milliseconds in UTC: `2024-05-01T12:34:56.789Z`.
public enum RFC3339 {
    public static func string(from date: Date) -> String {
        var out: [UInt8] = []
        append(date, to: &out)
        return String(decoding: out, as: UTF8.self)
    }

    /// Appends the timestamp's 24 ASCII bytes.
    public static func append(_ date: Date, to out: inout [UInt8]) {
        let millisTotal = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        var days = millisTotal >= 0 ? millisTotal / 86_400_000 : (millisTotal - 86_399_999) / 86_400_000
        let millisOfDay = millisTotal - days * 86_400_000
        // Civil date from days since 1970-01-01 (H. Hinnant's algorithm).
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let dayOfEra = days - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        digits(year, 4, &out); out.append(UInt8(ascii: "-"))
        digits(month, 2, &out); out.append(UInt8(ascii: "-"))
        digits(day, 2, &out); out.append(UInt8(ascii: "T"))
        digits(millisOfDay / 3_600_000, 2, &out); out.append(UInt8(ascii: ":"))
        digits(millisOfDay / 60_000 % 60, 2, &out); out.append(UInt8(ascii: ":"))
        digits(millisOfDay / 1000 % 60, 2, &out); out.append(UInt8(ascii: "."))
        digits(millisOfDay % 1000, 3, &out); out.append(UInt8(ascii: "Z"))
    }

    /// `value` in decimal, zero-padded to `width` (wider values are written whole).
    private static func digits(_ value: Int64, _ width: Int, _ out: inout [UInt8]) {
        guard value >= 0 else {
            out.append(contentsOf: String(value).utf8)
            return
        }
        var scratch: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                      UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &scratch) { buffer in
            var v = value
            var at = buffer.count
            repeat {
                at -= 1
                buffer[at] = UInt8(truncatingIfNeeded: v % 10) + 0x30
                v /= 10
            } while v > 0 || buffer.count - at < width
            out.append(contentsOf: buffer[at...])
        }
    }
}
