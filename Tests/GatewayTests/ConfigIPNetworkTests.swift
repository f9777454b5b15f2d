import Gateway
import Testing

@Suite("Config: IPNetwork (CIDR)")
struct ConfigIPNetworkTests {
    @Test("IPv4 networks and bare addresses parse and print back", arguments: [
        ("10.0.0.0/8", "10.0.0.0/8"), ("192.0.2.7", "192.0.2.7/32"), ("0.0.0.0/0", "0.0.0.0/0"),
        ("172.16.0.0/12", "172.16.0.0/12"), ("255.255.255.255/32", "255.255.255.255/32"),
    ])
    func ipv4(text: String, printed: String) throws {
        let network = try IPNetwork(parsing: text)
        #expect(network.description == printed && network.isIPv4)
        #expect(try IPNetwork(parsing: printed) == network)
    }

    @Test("IPv6 networks parse and print in RFC 5952 form", arguments: [
        ("2001:db8::/32", "2001:db8::/32"), ("::/0", "::/0"), ("::1", "::1/128"),
        ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8/128"), ("2001:DB8:0:0:1:0:0:1", "2001:db8::1:0:0:1/128"),
        ("fd00:0:0:0:0:0:0:0/8", "fd00::/8"), ("::ffff:192.0.2.1", "::ffff:c000:201/128"), ("1::", "1::/128"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1/128"),
    ])
    func ipv6(text: String, printed: String) throws {
        let network = try IPNetwork(parsing: text)
        #expect(network.description == printed && !network.isIPv4)
        #expect(try IPNetwork(parsing: printed) == network)
    }

    @Test("text that is not a network is refused with the reason", arguments: [
        ("", IPNetwork.ParseError.notAnAddress), ("10.0.0", .notAnAddress), ("256.1.1.1", .notAnAddress),
        ("010.0.0.1", .notAnAddress), ("a.b.c.d", .notAnAddress), ("10.0.0.0.0", .notAnAddress), (" 10.0.0.1", .notAnAddress),
        ("db.example.net", .notAnAddress), ("fe80::1%eth0", .notAnAddress), ("[::1]", .notAnAddress), ("1::2::3", .notAnAddress),
        ("1:2:3:4:5:6:7:8:9", .notAnAddress), ("12345::", .notAnAddress), (":1::", .notAnAddress), ("1:2:3:4:5:6:7::8", .notAnAddress),
        ("10.0.0.0/33", .badPrefix(maximum: 32)), ("10.0.0.0/", .badPrefix(maximum: 32)), ("10.0.0.0/-1", .badPrefix(maximum: 32)),
        ("10.0.0.0/8/8", .badPrefix(maximum: 32)), ("::/129", .badPrefix(maximum: 128)), ("::/1000000000000000000000", .badPrefix(maximum: 128)),
        ("10.1.2.3/16", .hostBitsSet(network: "10.1.0.0/16")), ("2001:db8::1/32", .hostBitsSet(network: "2001:db8::/32")),
    ])
    func refused(text: String, error: IPNetwork.ParseError) {
        #expect(throws: error) { try IPNetwork(parsing: text) }
    }

    @Test func containment() throws {
        let ten = try IPNetwork(parsing: "10.0.0.0/8")
        #expect(ten.contains("10.0.0.0") && ten.contains("10.255.255.255") && !ten.contains("11.0.0.0") && !ten.contains("9.255.255.255"))
        // A dual-stack socket reports IPv4 clients as IPv4-mapped IPv6 addresses.
        #expect(ten.contains("::ffff:10.1.2.3") && !ten.contains("::ffff:11.1.2.3"))
        #expect(!ten.contains("::a01:203") && !ten.contains("not an address") && !ten.contains(""))
        let v6 = try IPNetwork(parsing: "2001:db8::/32")
        #expect(v6.contains("2001:db8:ffff::1") && !v6.contains("2001:db9::") && !v6.contains("10.0.0.1"))
        #expect(v6.contains([0x20, 0x01, 0x0d, 0xb8] + [UInt8](repeating: 0, count: 12)))
        #expect(!v6.contains([1, 2, 3]))
        #expect(try IPNetwork(parsing: "0.0.0.0/0").contains("203.0.113.9") && !(try IPNetwork(parsing: "0.0.0.0/0").contains("::1")))
        #expect(try IPNetwork(parsing: "::/0").contains("::1"))
    }

    @Test("every prefix length splits the address space where it should")
    func everyPrefix() throws {
        for bits in 0...32 {
            let network = try IPNetwork(parsing: "128.0.0.0/\(bits)".replacingOccurrences(of: "128.0.0.0/0", with: "0.0.0.0/0"))
            #expect(network.prefixLength == bits)
            // 128.0.0.0 + 2^(32-bits) - 1 is the last address inside; + 2^(32-bits) the first outside.
            let size = UInt64(1) << UInt64(32 - bits)
            func address(_ value: UInt64) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: value >> (24 - 8 * UInt64($0))) } }
            let base: UInt64 = bits == 0 ? 0 : 0x8000_0000
            #expect(network.contains(address(base + size - 1)), "/\(bits)")
            if base + size <= 0xFFFF_FFFF { #expect(!network.contains(address(base + size)), "/\(bits)") }
            if bits > 0 { #expect(!network.contains(address(base - 1)), "/\(bits)") }
        }
    }

    @Test func proxyProtocolTrust() throws {
        let config = ProxyProtocolConfig(trustedSources: [try IPNetwork(parsing: "10.0.0.0/24"), try IPNetwork(parsing: "fd00::/8")])
        #expect(config.versions == [.v1, .v2])
        #expect(config.trusts([10, 0, 0, 9]) && !config.trusts([10, 0, 1, 9]))
        #expect(config.trusts([0xfd] + [UInt8](repeating: 0, count: 15)) && !config.trusts([0xfe] + [UInt8](repeating: 0, count: 15)))
    }
}
