/// Text that came from a client (a user name, a database, an application name), made safe
/// to quote back: in an ERROR message the client reads, in a log line, in an audit record.
/// A 40,000-character name must not become a 40,000-character message, and a name with a
/// newline must not start a line of its own.
public enum ClientText {
    /// How much of a client's text a message quotes.
    public static let echoLimit = 128

    /// `text` cut at `limit` characters (with "…" when cut) and with control characters
    /// escaped, for quoting in a message.
    public static func echo(_ text: String, limit: Int = echoLimit) -> String {
        var head = Substring(text)
        var cut = false
        if let end = text.index(text.startIndex, offsetBy: max(0, limit), limitedBy: text.endIndex), end < text.endIndex {
            head = text[..<end]
            cut = true
        }
        return escapingControls(head) + (cut ? "…" : "")
    }

    /// `text` with every character that can break a line or reorder what is shown written
    /// as an escape: \n, \r, \t, and \u{…} for other controls (C0, DEL, C1), the Unicode line
    /// and paragraph separators and the bidirectional formatting characters. Backslashes
    /// are doubled when `escapeBackslash` (where the result must read back unambiguously).
    public static func escapingControls<S: StringProtocol>(_ text: S, escapeBackslash: Bool = false, escapeQuote: Bool = false) -> String {
        if !text.unicodeScalars.contains(where: { needsEscape($0, escapeBackslash, escapeQuote) }) { return String(text) }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            guard needsEscape(scalar, escapeBackslash, escapeQuote) else {
                out.unicodeScalars.append(scalar)
                continue
            }
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            default: out += "\\u{" + String(scalar.value, radix: 16) + "}"
            }
        }
        return out
    }

    /// Whether the character can break a line or reorder what is shown: a control (C0, DEL,
    /// C1), a Unicode line or paragraph separator, a bidirectional mark, embedding,
    /// override or isolate.
    public static func isDisruptive(_ s: Unicode.Scalar) -> Bool {
        switch s.value {
        case 0x00...0x1F, 0x7F...0x9F, 0x2028, 0x2029, 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: return true
        default: return false
        }
    }

    private static func needsEscape(_ s: Unicode.Scalar, _ backslash: Bool, _ quote: Bool) -> Bool {
        isDisruptive(s) || (backslash && s == "\\") || (quote && s == "\"")
    }
}
