import NIOCore

/// Small text helpers shared by the renderers.
enum DumpText {
    /// Control characters escaped so a hostile string cannot forge dump lines or terminal codes.
    static func printable(_ s: String) -> String {
        var out = ""
        out.reserveCapacity(s.utf8.count)
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\\": out += "\\\\"
            default:
                if scalar.value < 0x20 || (scalar.value >= 0x7F && scalar.value < 0xA0) {
                    out += "\\u{" + String(scalar.value, radix: 16) + "}"
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }

    /// Quoted, escaped, and cut after `limit` characters with the full length noted.
    static func quoted(_ s: String, limit: Int) -> String {
        let count = s.count
        if count <= limit { return "\"" + printable(s) + "\"" }
        return "\"" + printable(String(s.prefix(limit))) + "\"… (\(grouped(count)) chars)"
    }

    /// 12345 -> "12,345".
    static func grouped(_ n: Int) -> String {
        let digits = String(n.magnitude)
        var out = ""
        for (i, c) in digits.enumerated() {
            if i > 0, (digits.count - i) % 3 == 0 { out += "," }
            out.append(c)
        }
        return (n < 0 ? "-" : "") + out
    }

    static func hex<C: Collection>(_ bytes: C) -> String where C.Element == UInt8 {
        var s = ""
        s.reserveCapacity(bytes.count * 2)
        for b in bytes {
            s += String(b >> 4, radix: 16) + String(b & 0x0F, radix: 16)
        }
        return s
    }

    static func hex8(_ v: UInt8) -> String { "0x" + (v < 16 ? "0" : "") + String(v, radix: 16) }
    static func hex16(_ v: UInt16) -> String { "0x" + pad(String(v, radix: 16), 4) }
    static func hex32(_ v: UInt32) -> String { "0x" + pad(String(v, radix: 16), 8) }

    static func pad(_ s: String, _ width: Int) -> String {
        String(repeating: "0", count: max(0, width - s.count)) + s
    }

    /// Names of the set bits, plus any unnamed rest in hex; "none" when zero.
    static func flags<T: FixedWidthInteger>(_ value: T, _ names: [(T, String)]) -> String {
        var rest = value
        var parts: [String] = []
        for (bit, name) in names where value & bit != 0 {
            parts.append(name)
            rest &= ~bit
        }
        if rest != 0 { parts.append("0x" + String(rest, radix: 16)) }
        return parts.isEmpty ? "none" : parts.joined(separator: "|")
    }

    /// `hexdump -C`-style lines, indented; at most `limit` bytes shown.
    static func hexDump(_ bytes: [UInt8], indent: String = "    ", limit: Int = 4096) -> [String] {
        var lines: [String] = []
        let shown = bytes.prefix(limit)
        var offset = 0
        while offset < shown.count {
            let row = Array(shown[offset..<min(offset + 16, shown.count)])
            var hexPart = ""
            for (i, b) in row.enumerated() {
                hexPart += (i == 8 ? "  " : " ") + hex([b])
            }
            hexPart += String(repeating: " ", count: (16 - row.count) * 3 + (row.count <= 8 ? 1 : 0))
            let ascii = String(row.map { $0 >= 0x20 && $0 < 0x7F ? Character(UnicodeScalar($0)) : "." })
            lines.append("\(indent)\(pad(String(offset, radix: 16), 8)) \(hexPart)  |\(ascii)|")
            offset += 16
        }
        if bytes.count > limit {
            lines.append("\(indent)… \(grouped(bytes.count - limit)) more bytes not shown")
        }
        return lines
    }
}

extension ByteBuffer {
    var dumpBytes: [UInt8] { getBytes(at: readerIndex, length: readableBytes) ?? [] }
}
