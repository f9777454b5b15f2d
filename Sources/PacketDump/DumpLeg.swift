/// The two TCP connections a proxied session is made of.
public enum DumpLeg: String, Hashable, Sendable, CaseIterable {
    /// Application driver <-> proxy.
    case client
    /// Proxy <-> SQL Server.
    case backend
}

/// Which way a TDS packet travelled; each leg has a client-to-server and a server-to-client side.
public enum DumpDirection: String, Hashable, Sendable, CaseIterable, CustomStringConvertible {
    case clientToProxy
    case proxyToClient
    case proxyToBackend
    case backendToProxy

    public var leg: DumpLeg {
        switch self {
        case .clientToProxy, .proxyToClient: return .client
        case .proxyToBackend, .backendToProxy: return .backend
        }
    }

    /// True for requests (the side of the leg that opened the TCP connection).
    public var isFromClientSide: Bool { self == .clientToProxy || self == .proxyToBackend }

    public var reversed: DumpDirection {
        switch self {
        case .clientToProxy: return .proxyToClient
        case .proxyToClient: return .clientToProxy
        case .proxyToBackend: return .backendToProxy
        case .backendToProxy: return .proxyToBackend
        }
    }

    public static func requests(on leg: DumpLeg) -> DumpDirection { leg == .client ? .clientToProxy : .proxyToBackend }
    public static func replies(on leg: DumpLeg) -> DumpDirection { leg == .client ? .proxyToClient : .backendToProxy }

    public var description: String {
        switch self {
        case .clientToProxy: return "client->proxy"
        case .proxyToClient: return "proxy->client"
        case .proxyToBackend: return "proxy->backend"
        case .backendToProxy: return "backend->proxy"
        }
    }
}

/// An IP address and TCP port, without Foundation or NIO socket types so a capture read from
/// disk and a live channel's addresses look the same.
public struct DumpSocketAddress: Hashable, Sendable, CustomStringConvertible {
    /// 4 bytes (IPv4) or 16 bytes (IPv6), network order.
    public var address: [UInt8]
    public var port: UInt16

    public init(ipv4 a: UInt8, _ b: UInt8, _ c: UInt8, _ d: UInt8, port: UInt16) {
        address = [a, b, c, d]
        self.port = port
    }

    /// Raw 4- or 16-byte address; anything else is an error in the caller and becomes 0.0.0.0.
    public init(bytes: [UInt8], port: UInt16) {
        address = (bytes.count == 4 || bytes.count == 16) ? bytes : [0, 0, 0, 0]
        self.port = port
    }

    /// Parses "1.2.3.4" or an IPv6 literal ("::1", "fe80::1", "[2001:db8::1]"); nil when invalid.
    public init?(_ text: String, port: UInt16) {
        var s = Substring(text)
        if s.hasPrefix("["), s.hasSuffix("]") { s = s.dropFirst().dropLast() }
        if let zone = s.firstIndex(of: "%") { s = s[..<zone] }
        if s.contains(":") {
            guard let bytes = DumpSocketAddress.parseIPv6(s) else { return nil }
            address = bytes
        } else {
            let parts = s.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 4 else { return nil }
            var bytes: [UInt8] = []
            for p in parts {
                guard let v = UInt8(p) else { return nil }
                bytes.append(v)
            }
            address = bytes
        }
        self.port = port
    }

    public var isIPv6: Bool { address.count == 16 }

    public var addressText: String {
        if !isIPv6 { return address.map(String.init).joined(separator: ".") }
        var groups: [UInt16] = []
        for i in stride(from: 0, to: 16, by: 2) { groups.append(UInt16(address[i]) << 8 | UInt16(address[i + 1])) }
        // RFC 5952: compress the longest run (2 or more) of zero groups.
        var bestStart = -1, bestLength = 0, i = 0
        while i < 8 {
            if groups[i] == 0 {
                var j = i
                while j < 8, groups[j] == 0 { j += 1 }
                if j - i > bestLength, j - i >= 2 { bestStart = i; bestLength = j - i }
                i = j
            } else {
                i += 1
            }
        }
        func hex(_ r: ArraySlice<UInt16>) -> String { r.map { String($0, radix: 16) }.joined(separator: ":") }
        if bestStart < 0 { return hex(groups[...]) }
        return hex(groups[..<bestStart]) + "::" + hex(groups[(bestStart + bestLength)...])
    }

    public var description: String { isIPv6 ? "[\(addressText)]:\(port)" : "\(addressText):\(port)" }

    private static func parseIPv6(_ s: Substring) -> [UInt8]? {
        let halves = s.splitAtDoubleColons()
        guard halves.count <= 2 else { return nil }
        func groups(_ part: Substring) -> [UInt16]? {
            if part.isEmpty { return [] }
            var out: [UInt16] = []
            for g in part.split(separator: ":", omittingEmptySubsequences: false) {
                guard !g.isEmpty, g.count <= 4, let v = UInt16(g, radix: 16) else { return nil }
                out.append(v)
            }
            return out
        }
        guard let head = groups(halves[0]) else { return nil }
        var all: [UInt16]
        if halves.count == 2 {
            guard let tail = groups(halves[1]), head.count + tail.count < 8 else { return nil }
            all = head + [UInt16](repeating: 0, count: 8 - head.count - tail.count) + tail
        } else {
            all = head
        }
        guard all.count == 8 else { return nil }
        return all.flatMap { [UInt8($0 >> 8), UInt8(truncatingIfNeeded: $0)] }
    }
}

extension Substring {
    fileprivate func splitAtDoubleColons() -> [Substring] {
        var parts: [Substring] = []
        var start = startIndex
        var i = startIndex
        while i < endIndex {
            let next = index(after: i)
            if self[i] == ":", next < endIndex, self[next] == ":" {
                parts.append(self[start..<i])
                start = index(after: next)
                i = start
                continue
            }
            i = next
        }
        parts.append(self[start..<endIndex])
        return parts
    }
}

/// The four sockets of a proxied session, as the relay sees them.
public struct DumpEndpoints: Hashable, Sendable {
    /// The application's address and port.
    public var client: DumpSocketAddress
    /// The proxy's listening address and port the client connected to.
    public var proxyListen: DumpSocketAddress
    /// The proxy's local address and port on its backend connection.
    public var proxyBackendLocal: DumpSocketAddress
    /// The SQL Server (or gateway) address and port.
    public var backend: DumpSocketAddress

    public init(client: DumpSocketAddress, proxyListen: DumpSocketAddress,
                proxyBackendLocal: DumpSocketAddress, backend: DumpSocketAddress) {
        self.client = client
        self.proxyListen = proxyListen
        self.proxyBackendLocal = proxyBackendLocal
        self.backend = backend
    }

    /// (connecting side, listening side) of a leg.
    public func sockets(of leg: DumpLeg) -> (client: DumpSocketAddress, server: DumpSocketAddress) {
        leg == .client ? (client, proxyListen) : (proxyBackendLocal, backend)
    }

    /// (source, destination) of a packet travelling in `direction`.
    public func route(_ direction: DumpDirection) -> (source: DumpSocketAddress, destination: DumpSocketAddress) {
        let s = sockets(of: direction.leg)
        return direction.isFromClientSide ? (s.client, s.server) : (s.server, s.client)
    }
}
