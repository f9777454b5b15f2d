/// Tokens of the small T-SQL subset the emulator understands.
enum SQLToken: Equatable, Sendable {
    case word(String)          // identifier or keyword, as written
    case quoted(String)        // [bracketed] or "double quoted" identifier
    case variable(String)      // @name (without @)
    case system(String)        // @@NAME (upper-cased, without @@)
    case number(String)
    case string(String, unicode: Bool)
    case hex([UInt8])          // 0xABCD
    case symbol(String)        // ( ) , ; = < > <= >= <> != * . + -
    case end

    var keyword: String? {
        if case .word(let w) = self { return w.uppercased() }
        return nil
    }
}

struct SQLSyntaxError: Error, Sendable {
    var message: String
    var near: String
}

/// Splits T-SQL text into tokens, skipping comments. Input is bounded by the message cap.
struct SQLLexer {
    static func tokenize(_ text: String) throws -> [SQLToken] {
        let chars = Array(text.unicodeScalars)
        var i = 0
        var out: [SQLToken] = []
        func peek(_ k: Int = 0) -> Unicode.Scalar? { i + k < chars.count ? chars[i + k] : nil }
        while i < chars.count {
            let c = chars[i]
            if c.properties.isWhitespace { i += 1; continue }
            if c == "-", peek(1) == "-" {
                while i < chars.count, chars[i] != "\n" { i += 1 }
                continue
            }
            if c == "/", peek(1) == "*" {
                i += 2
                while i < chars.count, !(chars[i] == "*" && peek(1) == "/") { i += 1 }
                i += 2
                continue
            }
            if (c == "N" || c == "n"), peek(1) == "'" {
                i += 1
                out.append(.string(try readQuoted(chars, &i, close: "'"), unicode: true))
                continue
            }
            if c == "'" {
                out.append(.string(try readQuoted(chars, &i, close: "'"), unicode: false))
                continue
            }
            if c == "[" {
                out.append(.quoted(try readQuoted(chars, &i, close: "]")))
                continue
            }
            if c == "\"" {
                out.append(.quoted(try readQuoted(chars, &i, close: "\"")))
                continue
            }
            if c == "0", let x = peek(1), x == "x" || x == "X" {
                i += 2
                var hex = ""
                while let h = peek(), h.properties.isASCIIHexDigit { hex.unicodeScalars.append(h); i += 1 }
                var bytes: [UInt8] = []
                var idx = hex.startIndex
                if hex.count % 2 == 1 { hex = "0" + hex; idx = hex.startIndex }
                while idx < hex.endIndex {
                    let next = hex.index(idx, offsetBy: 2)
                    bytes.append(UInt8(hex[idx..<next], radix: 16)!)
                    idx = next
                }
                out.append(.hex(bytes))
                continue
            }
            if c.properties.numericType != nil && c.isASCII || (c == "." && (peek(1)?.properties.numericType != nil)) {
                var s = ""
                while let d = peek(), d.isASCII, d.properties.numericType != nil || d == "." { s.unicodeScalars.append(d); i += 1 }
                out.append(.number(s))
                continue
            }
            if c == "@" {
                if peek(1) == "@" {
                    i += 2
                    out.append(.system(readWord(chars, &i).uppercased()))
                } else {
                    i += 1
                    out.append(.variable(readWord(chars, &i)))
                }
                continue
            }
            if c.properties.isAlphabetic || c == "_" || c == "#" {
                out.append(.word(readWord(chars, &i)))
                continue
            }
            let two = peek(1).map { String(c) + String($0) }
            if let two, ["<=", ">=", "<>", "!="].contains(two) {
                out.append(.symbol(two))
                i += 2
                continue
            }
            if "(),;=<>*.+-/%".unicodeScalars.contains(c) {
                out.append(.symbol(String(c)))
                i += 1
                continue
            }
            throw SQLSyntaxError(message: "Incorrect syntax near '\(c)'.", near: String(c))
        }
        out.append(.end)
        return out
    }

    private static func readWord(_ chars: [Unicode.Scalar], _ i: inout Int) -> String {
        var s = ""
        while i < chars.count, chars[i].properties.isAlphabetic || chars[i].properties.numericType != nil || chars[i] == "_" || chars[i] == "#" || chars[i] == "$" {
            s.unicodeScalars.append(chars[i])
            i += 1
        }
        return s
    }

    private static func readQuoted(_ chars: [Unicode.Scalar], _ i: inout Int, close: Unicode.Scalar) throws -> String {
        i += 1
        var s = ""
        while i < chars.count {
            if chars[i] == close {
                if i + 1 < chars.count, chars[i + 1] == close {
                    s.unicodeScalars.append(close)
                    i += 2
                    continue
                }
                i += 1
                return s
            }
            s.unicodeScalars.append(chars[i])
            i += 1
        }
        throw SQLSyntaxError(message: "Unclosed quotation mark after the character string '\(s.prefix(40))'.", near: String(s.prefix(40)))
    }
}
