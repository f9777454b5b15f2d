/// Reads TDS bytes written as text: the repository's Fixtures/*.hex (comment lines starting
/// with '#', one packet per line), plain hex, `xxd` and `hexdump -C` output (offsets and the
/// ASCII column ignored). The result is one byte stream; packets are found by their headers.
public enum HexDumpReader {
    static func isHexDigit(_ c: UInt8) -> Bool {
        (0x30...0x39).contains(c) || (0x41...0x46).contains(c) || (0x61...0x66).contains(c)
    }

    /// Text made of printable ASCII whose first non-comment line starts with hex digits.
    static func looksLikeHex(_ bytes: [UInt8]) -> Bool {
        let sample = bytes.prefix(65_536)
        guard sample.allSatisfy({ $0 == 0x0A || $0 == 0x0D || $0 == 0x09 || (0x20..<0x7F).contains($0) }) else { return false }
        let text = String(decoding: sample, as: UTF8.self)
        for line in text.split(whereSeparator: \.isNewline) {
            let t = line.drop { $0 == " " || $0 == "\t" }
            if t.isEmpty || t.hasPrefix("#") { continue }
            return t.first.map { $0.isHexDigit } ?? false
        }
        return false
    }

    public static func parse(_ text: String) throws -> [UInt8] {
        var out: [UInt8] = []
        var sawCanonical = false
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(rawLine.trimmingSpaces())
            if line.isEmpty || line.hasPrefix("#") { continue }
            let firstToken = line.prefix { !$0.isWhitespace && $0 != ":" }
            let offsetLike = firstToken.count >= 4 && firstToken.allSatisfy(\.isHexDigit)
            if offsetLike, line.dropFirst(firstToken.count).first == ":" {
                // xxd: "00000000: 1201 0058 ...  ascii"
                line = line.dropFirst(firstToken.count + 1)
                if let cut = line.firstDoubleSpace() { line = line[..<cut] }
            } else if offsetLike, line.contains("|") || (sawCanonical && line.count == firstToken.count) {
                // hexdump -C: "00000000  12 01 00 58 ...  |ascii|"; its last line is a bare offset.
                sawCanonical = true
                line = line.dropFirst(firstToken.count)
                if let bar = line.firstIndex(of: "|") { line = line[..<bar] }
            }
            var high: UInt8?
            var i = line.utf8.startIndex
            let u = line.utf8
            while i < u.endIndex {
                let c = u[i]
                if c == 0x20 || c == 0x09 || c == 0x0D || c == 0x3A || c == 0x2C {
                    i = u.index(after: i)
                    continue
                }
                // "0x" prefixes are allowed between bytes.
                if c == 0x30, high == nil, let n = u.index(i, offsetBy: 1, limitedBy: u.endIndex), n < u.endIndex, u[n] == 0x78 || u[n] == 0x58 {
                    i = u.index(after: n)
                    continue
                }
                guard isHexDigit(c) else {
                    throw DumpReadError("line \(number + 1) is not hex: \(String(line.prefix(40)))")
                }
                let v: UInt8 = c <= 0x39 ? c - 0x30 : (c | 0x20) - 0x61 + 10
                if let h = high {
                    out.append(h << 4 | v)
                    high = nil
                } else {
                    high = v
                }
                i = u.index(after: i)
            }
            if high != nil { throw DumpReadError("line \(number + 1) has an odd number of hex digits") }
        }
        return out
    }
}

extension Substring {
    fileprivate func firstDoubleSpace() -> Index? {
        var previousWasSpace = false
        for i in indices {
            if self[i] == " " {
                if previousWasSpace { return index(before: i) }
                previousWasSpace = true
            } else {
                previousWasSpace = false
            }
        }
        return nil
    }

    fileprivate func trimmingSpaces() -> Substring {
        var s = self
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return s
    }
}
