import PacketDump

/// An IP address or CIDR network, for the dump's client filter.
struct DumpClientMatcher: Sendable {
    let network: [UInt8]
    let prefixBits: Int

    init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard let first = parts.first, let address = DumpSocketAddress(first, port: 0) else { return nil }
        network = address.address
        let maxBits = network.count * 8
        if parts.count == 2 {
            guard let bits = Int(parts[1]), (0...maxBits).contains(bits) else { return nil }
            prefixBits = bits
        } else {
            prefixBits = maxBits
        }
    }

    func matches(_ addressText: String) -> Bool {
        var text = addressText
        if text.lowercased().hasPrefix("::ffff:"), text.contains(".") { text = String(text.dropFirst(7)) }
        guard var bytes = DumpSocketAddress(text, port: 0)?.address else { return false }
        // An IPv4-mapped IPv6 client (::ffff:a.b.c.d) matches IPv4 networks.
        if bytes.count == 16, network.count == 4, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xFF, bytes[11] == 0xFF {
            bytes = Array(bytes[12...])
        }
        guard bytes.count == network.count else { return false }
        var bits = prefixBits
        for i in bytes.indices where bits > 0 {
            let take = min(8, bits)
            let mask = UInt8(truncatingIfNeeded: 0xFF << (8 - take))
            if bytes[i] & mask != network[i] & mask { return false }
            bits -= take
        }
        return true
    }
}
