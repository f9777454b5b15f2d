import Testing
@testable import PacketDump

/// The masker works on UTF-8 bytes for speed; this is its earlier, Unicode-scalar version,
/// kept as the reference it must agree with.
enum ScalarReferenceMasker {
    static func mask(_ sql: String) -> String {
        let s = Array(sql.unicodeScalars)
        var out = String.UnicodeScalarView()
        var i = 0
        let n = s.count

        func isIdentChar(_ c: Unicode.Scalar) -> Bool {
            c == "_" || c == "@" || c == "#" || c == "$" || c.properties.isAlphabetic || ("0"..."9").contains(c)
        }
        func isDigit(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) }
        func isHex(_ c: Unicode.Scalar) -> Bool {
            isDigit(c) || ("a"..."f").contains(c) || ("A"..."F").contains(c)
        }
        func copy(until end: Int) {
            while i < end { out.append(s[i]); i += 1 }
        }
        func skipString(from start: Int) -> Int {
            // start points at the opening quote; returns the index after the closing quote.
            var j = start + 1
            while j < n {
                if s[j] == "'" {
                    if j + 1 < n, s[j + 1] == "'" { j += 2; continue }
                    return j + 1
                }
                j += 1
            }
            return n
        }

        while i < n {
            let c = s[i]
            let next: Unicode.Scalar? = i + 1 < n ? s[i + 1] : nil
            // Comments: copied verbatim.
            if c == "-", next == "-" {
                var j = i
                while j < n, s[j] != "\n" { j += 1 }
                copy(until: j)
                continue
            }
            if c == "/", next == "*" {
                var depth = 0
                var j = i
                while j < n {
                    if s[j] == "/", j + 1 < n, s[j + 1] == "*" { depth += 1; j += 2; continue }
                    if s[j] == "*", j + 1 < n, s[j + 1] == "/" {
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
            if c == "[" {
                var j = i + 1
                while j < n {
                    if s[j] == "]" {
                        if j + 1 < n, s[j + 1] == "]" { j += 2; continue }
                        j += 1
                        break
                    }
                    j += 1
                }
                copy(until: min(j, n))
                continue
            }
            if c == "\"" {
                var j = i + 1
                while j < n {
                    if s[j] == "\"" {
                        if j + 1 < n, s[j + 1] == "\"" { j += 2; continue }
                        j += 1
                        break
                    }
                    j += 1
                }
                copy(until: min(j, n))
                continue
            }
            let afterIdent = i > 0 && isIdentChar(s[i - 1])
            // N'...' (the N must start a token, not end an identifier such as "IN'").
            if (c == "N" || c == "n"), next == "'", !afterIdent {
                i = skipString(from: i + 1)
                out.append("?")
                continue
            }
            if c == "'" {
                i = skipString(from: i)
                out.append("?")
                continue
            }
            if afterIdent {
                out.append(c)
                i += 1
                continue
            }
            // 0x... binary literal.
            if c == "0", next == "x" || next == "X" {
                var j = i + 2
                while j < n, isHex(s[j]) { j += 1 }
                i = j
                out.append("?")
                continue
            }
            // Money: $12.50 (a lone $ followed by a digit).
            let moneyStart = c == "$" && next.map(isDigit) == true
            if isDigit(c) || (c == "." && next.map(isDigit) == true) || moneyStart {
                var j = moneyStart ? i + 1 : i
                while j < n, isDigit(s[j]) { j += 1 }
                if j < n, s[j] == "." {
                    j += 1
                    while j < n, isDigit(s[j]) { j += 1 }
                }
                if j < n, s[j] == "e" || s[j] == "E" {
                    var k = j + 1
                    if k < n, s[k] == "+" || s[k] == "-" { k += 1 }
                    if k < n, isDigit(s[k]) {
                        while k < n, isDigit(s[k]) { k += 1 }
                        j = k
                    }
                }
                i = j
                out.append("?")
                continue
            }
            out.append(c)
            i += 1
        }
        return String(out)
    }
}

@Suite struct MaskerDifferentialTests {
    /// Random statements from pieces that exercise every rule, mixed with non-ASCII letters,
    /// symbols and digits (Arabic-Indic, full-width) next to literals.
    @Test func agreesWithTheScalarReference() {
        let pieces = ["SELECT", " ", "'", "''", "N'", "n", "IN", "0x", "1F", "12", ".", "5", "e", "E", "-", "+", "--", "\n",
                      "/*", "*/", "[", "]", "]]", "\"", "@p1", "#t", "$", "_", "t1", "é", "€", "ж", "٣", "１", "😀", "\u{301}",
                      "ß", ",", "(", ")", "=", "a", "Z", "money", "\t", "x", "X"]
        var rng = SplitMix64(seed: 20261122)
        for _ in 0..<20_000 {
            var text = ""
            for _ in 0..<Int(rng.next() % 24) { text += pieces[Int(rng.next() % UInt64(pieces.count))] }
            #expect(SQLLiteralMasker.mask(text) == ScalarReferenceMasker.mask(text), "\(text.debugDescription)")
        }
    }

    @Test func nonASCIILettersAndSymbolsBeforeDigits() {
        #expect(SQLLiteralMasker.mask("SELECT é1, €5, ж2, x€3") == "SELECT é1, €?, ж2, x€?")
    }
}
