/// Replaces literals in T-SQL text with `?`, so a dump or audit line shows a statement's shape
/// without the values in it.
///
/// Masked: string literals ('...' with '' escapes, N'...'), numbers (12, 1.5, .5, 1e-3, $12.50
/// money) and binary literals (0x1F). Kept as they are: identifiers (including [bracketed] and
/// "double-quoted" ones, @variables, #temp names and names containing digits like t1), keywords,
/// and comments (-- line and /* block */, nested), which are copied untouched. An unterminated
/// string or comment runs to the end of the text (a string is still masked).
///
/// Works on UTF-8 bytes: every character the rules look at is ASCII, and the audit trail masks
/// every statement on the event loop, so it must not cost a Unicode lookup per character.
public enum SQLLiteralMasker {
    public static func mask(_ sql: String) -> String {
        var sql = sql
        return sql.withUTF8 { String(decoding: mask(utf8: $0), as: UTF8.self) }
    }

    static func mask(utf8 s: UnsafeBufferPointer<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(s.count)
        var i = 0
        let n = s.count

        func isDigit(_ c: UInt8) -> Bool { c >= 0x30 && c <= 0x39 }
        func isHex(_ c: UInt8) -> Bool { isDigit(c) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x66) }
        /// Whether the character that ends right before `end` can be part of an identifier.
        func identifierEnds(before end: Int) -> Bool {
            guard end > 0 else { return false }
            let c = s[end - 1]
            if c < 0x80 {
                return c == 0x5F || c == 0x40 || c == 0x23 || c == 0x24 || isDigit(c) || (c | 0x20 >= 0x61 && c | 0x20 <= 0x7A)
            }
            // Non-ASCII: decode the scalar that ends here and ask Unicode.
            var start = end - 1
            while start > 0, s[start] & 0xC0 == 0x80, end - start < 4 { start -= 1 }
            var decoder = UTF8()
            var it = UnsafeBufferPointer(rebasing: s[start..<end]).makeIterator()
            if case .scalarValue(let scalar) = decoder.decode(&it) { return scalar.properties.isAlphabetic }
            return false
        }
        func copy(until end: Int) {
            if end > i { out.append(contentsOf: UnsafeBufferPointer(rebasing: s[i..<end])) }
            i = end
        }
        func skipString(from start: Int) -> Int {
            // start points at the opening quote; returns the index after the closing quote.
            var j = start + 1
            while j < n {
                if s[j] == 0x27 {
                    if j + 1 < n, s[j + 1] == 0x27 { j += 2; continue }
                    return j + 1
                }
                j += 1
            }
            return n
        }
        /// Index after the closing `close` of a quoted identifier opened at `i` (doubled
        /// closers are escapes).
        func skipQuoted(closing close: UInt8) -> Int {
            var j = i + 1
            while j < n {
                if s[j] == close {
                    if j + 1 < n, s[j + 1] == close { j += 2; continue }
                    return j + 1
                }
                j += 1
            }
            return n
        }

        while i < n {
            let c = s[i]
            let next: UInt8? = i + 1 < n ? s[i + 1] : nil
            if c >= 0x80 {
                // Part of a non-ASCII character: never a literal's start.
                out.append(c)
                i += 1
                continue
            }
            // Comments: copied verbatim.
            if c == UInt8(ascii: "-"), next == UInt8(ascii: "-") {
                var j = i
                while j < n, s[j] != UInt8(ascii: "\n") { j += 1 }
                copy(until: j)
                continue
            }
            if c == UInt8(ascii: "/"), next == UInt8(ascii: "*") {
                var depth = 0
                var j = i
                while j < n {
                    if s[j] == UInt8(ascii: "/"), j + 1 < n, s[j + 1] == UInt8(ascii: "*") { depth += 1; j += 2; continue }
                    if s[j] == UInt8(ascii: "*"), j + 1 < n, s[j + 1] == UInt8(ascii: "/") {
                        depth -= 1
                        j += 2
                        if depth == 0 { break }
                        continue
                    }
                    j += 1
                }
                copy(until: min(j, n))
                continue
            }
            // Quoted identifiers: copied verbatim.
            if c == UInt8(ascii: "[") {
                copy(until: skipQuoted(closing: UInt8(ascii: "]")))
                continue
            }
            if c == UInt8(ascii: "\"") {
                copy(until: skipQuoted(closing: UInt8(ascii: "\"")))
                continue
            }
            let afterIdent = identifierEnds(before: i)
            // N'...' (the N must start a token, not end an identifier such as "IN'").
            if c | 0x20 == UInt8(ascii: "n"), next == 0x27, !afterIdent {
                i = skipString(from: i + 1)
                out.append(UInt8(ascii: "?"))
                continue
            }
            if c == 0x27 {
                i = skipString(from: i)
                out.append(UInt8(ascii: "?"))
                continue
            }
            if afterIdent {
                out.append(c)
                i += 1
                continue
            }
            // 0x... binary literal.
            if c == UInt8(ascii: "0"), next == UInt8(ascii: "x") || next == UInt8(ascii: "X") {
                var j = i + 2
                while j < n, isHex(s[j]) { j += 1 }
                i = j
                out.append(UInt8(ascii: "?"))
                continue
            }
            // Money: $12.50 (a lone $ followed by a digit).
            let moneyStart = c == UInt8(ascii: "$") && next.map(isDigit) == true
            if isDigit(c) || (c == UInt8(ascii: ".") && next.map(isDigit) == true) || moneyStart {
                var j = moneyStart ? i + 1 : i
                while j < n, isDigit(s[j]) { j += 1 }
                if j < n, s[j] == UInt8(ascii: ".") {
                    j += 1
                    while j < n, isDigit(s[j]) { j += 1 }
                }
                if j < n, s[j] | 0x20 == UInt8(ascii: "e") {
                    var k = j + 1
                    if k < n, s[k] == UInt8(ascii: "+") || s[k] == UInt8(ascii: "-") { k += 1 }
                    if k < n, isDigit(s[k]) {
                        while k < n, isDigit(s[k]) { k += 1 }
                        j = k
                    }
                }
                i = j
                out.append(UInt8(ascii: "?"))
                continue
            }
            out.append(c)
            i += 1
        }
        return out
    }
}
