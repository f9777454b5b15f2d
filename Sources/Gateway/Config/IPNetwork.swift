import Foundation

/// An IPv4 or IPv6 network in CIDR form (`10.0.0.0/8`, `2001:db8::/32`); a bare address is
/// the network of that one address (`/32`, `/128`). Pure: parsing and matching do no I/O and
/// no name lookups.
public struct IPNetwork: Sendable, Hashable, CustomStringConvertible {
    /// The network's address bytes (4 or 16), host bits zero.
    public let address: [UInt8]
    public let prefixLength: Int

    public var isIPv4: Bool { address.count == 4 }

    /// Why a text is not a network.
    public enum ParseError: Error, Sendable, Hashable, CustomStringConvertible {
        case notAnAddress
        case badPrefix(maximum: Int)
        /// Bits set after the prefix: `10.1.2.3/16` (the network is `10.1.0.0/16`).
        case hostBitsSet(network: String)

        public var description: String {
            switch self {
            case .notAnAddress: "expected an IPv4 or IPv6 address or network in CIDR form (10.0.0.0/8, fd00::/8)"
            case .badPrefix(let maximum): "the prefix length must be a number from 0 to \(maximum)"
            case .hostBitsSet(let network): "has bits set after the prefix (did you mean \(network)?)"
            }
        }
    }

    public init(address: [UInt8], prefixLength: Int) throws(ParseError) {
        guard address.count == 4 || address.count == 16 else { throw .notAnAddress }
        guard (0...address.count * 8).contains(prefixLength) else { throw .badPrefix(maximum: address.count * 8) }
        let masked = Self.mask(address, prefixLength)
        guard masked == address else {
            throw .hostBitsSet(network: "\(Self.format(masked))/\(prefixLength)")
        }
        self.address = address
        self.prefixLength = prefixLength
    }

    /// Parses `address` or `address/prefix`.
    public init(parsing text: String) throws(ParseError) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let bytes = Self.parseAddress(parts[0]) else { throw .notAnAddress }
        var prefix = bytes.count * 8
        if parts.count == 2 {
            let digits = parts[1]
            guard !digits.isEmpty, digits.count <= 3, digits.allSatisfy({ $0.isASCII && $0.isNumber }), let value = Int(digits) else {
                throw .badPrefix(maximum: bytes.count * 8)
            }
            prefix = value
        }
        try self.init(address: bytes, prefixLength: prefix)
    }

    /// Whether `bytes` (4 or 16) is in the network. An IPv4-mapped IPv6 address
    /// (`::ffff:a.b.c.d`, what a dual-stack socket reports for IPv4 clients) matches IPv4 networks.
    public func contains(_ bytes: [UInt8]) -> Bool {
        var candidate = bytes
        if candidate.count == 16, isIPv4, candidate[0..<10].allSatisfy({ $0 == 0 }), candidate[10] == 0xFF, candidate[11] == 0xFF {
            candidate = Array(candidate[12...])
        }
        guard candidate.count == address.count else { return false }
        return Self.mask(candidate, prefixLength) == address
    }

    /// Whether the address written as `text` is in the network (`false` for anything that
    /// is not an address).
    public func contains(_ text: String) -> Bool {
        guard let bytes = Self.parseAddress(Substring(text)) else { return false }
        return contains(bytes)
    }

    /// `10.0.0.0/8`, `2001:db8::/32` (RFC 5952 form).
    public var description: String { "\(Self.format(address))/\(prefixLength)" }

    // MARK: Addresses

    /// The bytes of a dotted IPv4 address (4) or an IPv6 address (16); `nil` for anything else
    /// (names, zones such as `fe80::1%eth0`, brackets, ports).
    public static func parseAddress(_ text: Substring) -> [UInt8]? {
        if text.contains(":") { return parseIPv6(text) }
        return parseIPv4(text)
    }

    static func parseIPv4(_ text: Substring) -> [UInt8]? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 4 else { return nil }
        var bytes: [UInt8] = []
        for part in parts {
            // No leading zeros: `010` is octal to some parsers and decimal to others.
            guard !part.isEmpty, part.count <= 3, part.allSatisfy({ $0.isASCII && $0.isNumber }),
                  part.count == 1 || part.first != "0", let value = UInt8(part) else { return nil }
            bytes.append(value)
        }
        return bytes
    }

    static func parseIPv6(_ text: Substring) -> [UInt8]? {
        guard text.count <= 45 else { return nil }
        let halves = text.components(separatedBy: "::")
        guard halves.count <= 2 else { return nil }
        func groups(_ part: String, allowIPv4Tail: Bool) -> [UInt16]? {
            if part.isEmpty { return [] }
            let fields = part.split(separator: ":", omittingEmptySubsequences: false)
            var result: [UInt16] = []
            for (index, field) in fields.enumerated() {
                if allowIPv4Tail, index == fields.count - 1, field.contains(".") {
                    guard let v4 = parseIPv4(field) else { return nil }
                    result.append(UInt16(v4[0]) << 8 | UInt16(v4[1]))
                    result.append(UInt16(v4[2]) << 8 | UInt16(v4[3]))
                    continue
                }
                guard !field.isEmpty, field.count <= 4, field.unicodeScalars.allSatisfy(\.properties.isASCIIHexDigit),
                      let value = UInt16(field, radix: 16) else { return nil }
                result.append(value)
            }
            return result
        }
        var words: [UInt16]
        if halves.count == 2 {
            guard let head = groups(halves[0], allowIPv4Tail: false), let tail = groups(halves[1], allowIPv4Tail: true),
                  head.count + tail.count <= 7 else { return nil }
            words = head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            guard let all = groups(halves[0], allowIPv4Tail: true), all.count == 8 else { return nil }
            words = all
        }
        return words.flatMap { [UInt8($0 >> 8), UInt8($0 & 0xFF)] }
    }

    static func mask(_ bytes: [UInt8], _ prefixLength: Int) -> [UInt8] {
        var bits = prefixLength
        return bytes.map { byte in
            let keep = max(0, min(8, bits))
            bits -= 8
            return keep == 0 ? 0 : byte & UInt8(truncatingIfNeeded: 0xFF << (8 - keep))
        }
    }

    /// Dotted IPv4, or IPv6 with the longest run of two or more zero groups as `::`.
    static func format(_ bytes: [UInt8]) -> String {
        if bytes.count == 4 { return bytes.map(String.init).joined(separator: ".") }
        let words = stride(from: 0, to: 16, by: 2).map { UInt16(bytes[$0]) << 8 | UInt16(bytes[$0 + 1]) }
        var best: Range<Int>?
        var index = 0
        while index < 8 {
            guard words[index] == 0 else { index += 1; continue }
            var end = index
            while end < 8 && words[end] == 0 { end += 1 }
            if end - index >= 2, end - index > (best?.count ?? 0) { best = index..<end }
            index = end
        }
        func hex(_ range: Range<Int>) -> String { words[range].map { String($0, radix: 16) }.joined(separator: ":") }
        guard let best else { return hex(0..<8) }
        return hex(0..<best.lowerBound) + "::" + hex(best.upperBound..<8)
    }
}
