import NIOCore

// The PROXY protocol (HAProxy's proxy-protocol.txt, versions 1 and 2): a load balancer in
// front of tdsgate (HAProxy `send-proxy` / `send-proxy-v2`, Azure Private Link service)
// writes one header before the client's first byte, saying who the client really is.

public enum ProxyProtocolVersion: String, Sendable, Hashable, CaseIterable {
    /// The text header: `PROXY TCP4 <src> <dst> <sport> <dport>\r\n`.
    case v1
    /// The binary header with its 12-byte signature, address block and TLVs.
    case v2
}

/// One type-length-value entry of a v2 header, kept as it came.
public struct ProxyTLV: Sendable, Hashable {
    public var type: UInt8
    public var value: [UInt8]

    public init(type: UInt8, value: [UInt8]) {
        self.type = type
        self.value = value
    }

    /// `PP2_TYPE_AZURE`: Azure Private Link service; its value is a subtype byte then data.
    public static let azure: UInt8 = 0xEE
    /// `PP2_SUBTYPE_AZURE_PRIVATEENDPOINT_LINKID`: a 32-bit little-endian private endpoint link id.
    public static let azurePrivateEndpointLinkID: UInt8 = 0x01
}

/// A parsed PROXY header.
public struct ProxyHeader: Sendable, Hashable {
    public enum Addresses: Sendable, Hashable {
        /// LOCAL command: the balancer's own connection (a health check). The socket's
        /// addresses are the real ones.
        case local
        /// PROXY for a protocol the header does not describe (v2 `AF_UNSPEC`, v1 `UNKNOWN`):
        /// the socket's addresses are all there is.
        case unspecified
        /// A TCP client over IPv4 or IPv6.
        case inet(source: SocketAddress, destination: SocketAddress)
        /// A client of a UNIX socket on the balancer's machine (paths as sent, NULs removed).
        case unix(source: String, destination: String)
    }

    public var version: ProxyProtocolVersion
    public var addresses: Addresses
    /// v2 only; empty for LOCAL (the spec has the receiver discard LOCAL's block).
    public var tlvs: [ProxyTLV]

    public init(version: ProxyProtocolVersion, addresses: Addresses, tlvs: [ProxyTLV] = []) {
        self.version = version
        self.addresses = addresses
        self.tlvs = tlvs
    }

    /// The client's address, when the header names one (PROXY with an INET family).
    public var source: SocketAddress? {
        if case .inet(let source, _) = addresses { return source }
        return nil
    }

    /// The address the client connected to (the balancer's frontend).
    public var destination: SocketAddress? {
        if case .inet(_, let destination) = addresses { return destination }
        return nil
    }

    /// Azure Private Link's private endpoint link id (TLV 0xEE, subtype 0x01).
    public var azurePrivateLinkID: UInt32? {
        for tlv in tlvs where tlv.type == ProxyTLV.azure && tlv.value.count == 5 && tlv.value[0] == ProxyTLV.azurePrivateEndpointLinkID {
            return tlv.value[1...4].reversed().reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        }
        return nil
    }
}

/// Why bytes are not a PROXY header tdsgate accepts. Descriptions are for people reading a
/// log line about a refused connection.
public enum ProxyProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// The first bytes match neither signature (a client speaking TDS or TLS straight away).
    case notProxyProtocol
    case versionNotAllowed(ProxyProtocolVersion)
    /// v1: no CRLF within the 107 bytes the spec allows, or a CR not followed by LF.
    case v1LineTooLong
    case v1Malformed(String)
    /// v2: the version nibble of byte 13 is not 2.
    case v2BadVersion(UInt8)
    case v2BadCommand(UInt8)
    case v2BadFamily(UInt8)
    /// v2: the length field is above what tdsgate reads.
    case v2TooLong(length: Int, limit: Int)
    /// v2: the length field is too short for the address family.
    case v2AddressBlockTooShort(length: Int, needed: Int)
    /// v2: a TLV runs past the end of the header.
    case v2BadTLV(offset: Int)

    public var description: String {
        switch self {
        case .notProxyProtocol:
            return "the connection does not start with a PROXY protocol header"
        case .versionNotAllowed(let v):
            return "PROXY protocol \(v.rawValue) header, which this listener does not accept"
        case .v1LineTooLong:
            return "PROXY protocol v1 header without CRLF within \(ProxyHeaderParser.maxV1Length) bytes"
        case .v1Malformed(let why):
            return "malformed PROXY protocol v1 header: \(why)"
        case .v2BadVersion(let v):
            return "PROXY protocol v2 header with version \(v) (expected 2)"
        case .v2BadCommand(let c):
            return "PROXY protocol v2 header with unknown command \(c) (expected LOCAL or PROXY)"
        case .v2BadFamily(let f):
            return "PROXY protocol v2 header with unsupported address family/transport 0x\(String(f, radix: 16)) (expected TCP over IPv4, IPv6 or a UNIX stream socket)"
        case .v2TooLong(let length, let limit):
            return "PROXY protocol v2 header of \(length) bytes, more than the \(limit) tdsgate reads"
        case .v2AddressBlockTooShort(let length, let needed):
            return "PROXY protocol v2 address block of \(length) bytes, too short for its address family (\(needed) bytes)"
        case .v2BadTLV(let offset):
            return "PROXY protocol v2 TLV at offset \(offset) runs past the end of the header"
        }
    }
}

public enum ProxyParseResult: Sendable, Hashable {
    /// Not enough bytes to decide yet; nothing was consumed.
    case needMore
    /// A complete header; `consumed` bytes (the header) were read from the buffer.
    case header(ProxyHeader, consumed: Int)
}

/// Parses a PROXY header from the front of a buffer. Pure and bounded: it reads at most
/// ``maxV1Length`` bytes for v1 and 16 + `maxV2Length` for v2, and may be called again with
/// more bytes after `.needMore` (it starts over each time; headers are small).
public enum ProxyHeaderParser {
    /// The spec's upper bound for a v1 line, CRLF included.
    public static let maxV1Length = 107
    /// What tdsgate reads of a v2 header after its 16 fixed bytes. HAProxy and Azure send
    /// well under 1 KiB; the format allows 64 KiB.
    public static let defaultMaxV2Length = 4096

    static let v1Signature: [UInt8] = Array("PROXY ".utf8)
    static let v2Signature: [UInt8] = [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A]

    public enum Detection: Sendable, Hashable {
        case notProxyProtocol
        case needMore
        case signature(ProxyProtocolVersion)
    }

    /// Which signature the buffer starts with, as soon as the bytes so far decide it.
    public static func detect(_ bytes: ByteBuffer) -> Detection {
        let available = bytes.readableBytesView
        for (signature, version) in [(v1Signature, ProxyProtocolVersion.v1), (v2Signature, .v2)] {
            let n = min(available.count, signature.count)
            guard n > 0, available.prefix(n).elementsEqual(signature.prefix(n)) else { continue }
            return n == signature.count ? .signature(version) : .needMore
        }
        return available.isEmpty ? .needMore : .notProxyProtocol
    }

    /// Parses the header at the buffer's reader index. On `.header` the reader index has
    /// moved past it; on `.needMore` and on errors the buffer is unchanged.
    public static func parse(_ bytes: inout ByteBuffer, versions: Set<ProxyProtocolVersion> = [.v1, .v2],
                             maxV2Length: Int = defaultMaxV2Length) throws(ProxyProtocolError) -> ProxyParseResult {
        switch detect(bytes) {
        case .notProxyProtocol:
            throw .notProxyProtocol
        case .needMore:
            return .needMore
        case .signature(let version):
            guard versions.contains(version) else { throw .versionNotAllowed(version) }
            let parsed = version == .v1 ? try parseV1(bytes) : try parseV2(bytes, maxLength: maxV2Length)
            guard let parsed else { return .needMore }
            bytes.moveReaderIndex(forwardBy: parsed.consumed)
            return .header(parsed.header, consumed: parsed.consumed)
        }
    }

    // MARK: v1

    private static func parseV1(_ bytes: ByteBuffer) throws(ProxyProtocolError) -> (header: ProxyHeader, consumed: Int)? {
        let view = bytes.readableBytesView.prefix(maxV1Length)
        guard let cr = view.firstIndex(of: 0x0D) else {
            if view.count >= maxV1Length { throw .v1LineTooLong }
            return nil
        }
        let lineLength = cr - view.startIndex
        guard lineLength + 2 <= maxV1Length else { throw .v1LineTooLong }
        guard cr + 1 < view.endIndex else { return nil }
        guard view[cr + 1] == 0x0A else { throw .v1Malformed("CR not followed by LF") }
        let line = view[view.startIndex..<cr]
        guard line.allSatisfy({ (0x20...0x7E).contains($0) }) else { throw .v1Malformed("a byte that is not printable ASCII") }
        let fields = line.split(separator: 0x20, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
        // fields[0] is "PROXY" (the signature said so).
        guard fields.count >= 2, !fields[1].isEmpty else { throw .v1Malformed("no protocol after PROXY") }
        let consumed = lineLength + 2
        switch fields[1] {
        case "UNKNOWN":
            // The spec: the receiver ignores whatever follows UNKNOWN up to the CRLF.
            return (ProxyHeader(version: .v1, addresses: .unspecified), consumed)
        case "TCP4", "TCP6":
            guard fields.count == 6 else {
                throw .v1Malformed("expected '\(fields[1]) <source> <destination> <source port> <destination port>'")
            }
            let family = fields[1] == "TCP4" ? 4 : 6
            let source = try v1Address(fields[2], port: fields[4], family: family)
            let destination = try v1Address(fields[3], port: fields[5], family: family)
            return (ProxyHeader(version: .v1, addresses: .inet(source: source, destination: destination)), consumed)
        default:
            throw .v1Malformed("unknown protocol '\(fields[1].prefix(16))' (expected TCP4, TCP6 or UNKNOWN)")
        }
    }

    private static func v1Address(_ address: String, port: String, family: Int) throws(ProxyProtocolError) -> SocketAddress {
        guard (1...5).contains(port.utf8.count), port.utf8.allSatisfy({ (0x30...0x39).contains($0) }),
              let number = Int(port), number <= 65535 else {
            throw .v1Malformed("'\(port.prefix(16))' is not a port number")
        }
        // TCP4 addresses are dotted quads only, TCP6 ones contain a colon; inet_pton checks the rest.
        let isV6Text = address.contains(":")
        guard isV6Text == (family == 6), let parsed = try? SocketAddress(ipAddress: address, port: number) else {
            throw .v1Malformed("'\(address.prefix(45))' is not an IPv\(family) address")
        }
        return parsed
    }

    // MARK: v2

    private static func parseV2(_ bytes: ByteBuffer, maxLength: Int) throws(ProxyProtocolError) -> (header: ProxyHeader, consumed: Int)? {
        let start = bytes.readerIndex
        guard bytes.readableBytes >= 16,
              let versionCommand = bytes.getInteger(at: start + 12, as: UInt8.self),
              let familyTransport = bytes.getInteger(at: start + 13, as: UInt8.self),
              let length16 = bytes.getInteger(at: start + 14, endianness: .big, as: UInt16.self)
        else { return nil }
        guard versionCommand >> 4 == 2 else { throw .v2BadVersion(versionCommand >> 4) }
        let command = versionCommand & 0x0F
        guard command <= 1 else { throw .v2BadCommand(command) }
        let length = Int(length16)
        guard length <= maxLength else { throw .v2TooLong(length: length, limit: maxLength) }
        guard bytes.readableBytes >= 16 + length, let block = bytes.getSlice(at: start + 16, length: length) else { return nil }
        let consumed = 16 + length
        if command == 0 {
            // LOCAL: "the receiver must ... discard the protocol block including the family".
            return (ProxyHeader(version: .v2, addresses: .local), consumed)
        }
        let addresses: ProxyHeader.Addresses
        let addressLength: Int
        switch familyTransport {
        case 0x00:
            (addresses, addressLength) = (.unspecified, 0)
        case 0x11:
            addressLength = 12
            try requireLength(length, addressLength)
            addresses = .inet(source: try inetAddress(block, at: 0, width: 4, portAt: 8),
                              destination: try inetAddress(block, at: 4, width: 4, portAt: 10))
        case 0x21:
            addressLength = 36
            try requireLength(length, addressLength)
            addresses = .inet(source: try inetAddress(block, at: 0, width: 16, portAt: 32),
                              destination: try inetAddress(block, at: 16, width: 16, portAt: 34))
        case 0x31:
            addressLength = 216
            try requireLength(length, addressLength)
            addresses = .unix(source: unixPath(block, at: 0), destination: unixPath(block, at: 108))
        default:
            throw .v2BadFamily(familyTransport)
        }
        let tlvs = try parseTLVs(block, from: addressLength)
        return (ProxyHeader(version: .v2, addresses: addresses, tlvs: tlvs), consumed)
    }

    private static func requireLength(_ length: Int, _ needed: Int) throws(ProxyProtocolError) {
        guard length >= needed else { throw .v2AddressBlockTooShort(length: length, needed: needed) }
    }

    private static func inetAddress(_ block: ByteBuffer, at offset: Int, width: Int, portAt: Int) throws(ProxyProtocolError) -> SocketAddress {
        let base = block.readerIndex
        guard let packed = block.getSlice(at: base + offset, length: width),
              let port = block.getInteger(at: base + portAt, endianness: .big, as: UInt16.self),
              let address = try? SocketAddress(packedIPAddress: packed, port: Int(port))
        else { throw .v2AddressBlockTooShort(length: block.readableBytes, needed: portAt + 2) }
        return address
    }

    private static func unixPath(_ block: ByteBuffer, at offset: Int) -> String {
        let bytes = block.getBytes(at: block.readerIndex + offset, length: 108) ?? []
        return String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }

    private static func parseTLVs(_ block: ByteBuffer, from offset: Int) throws(ProxyProtocolError) -> [ProxyTLV] {
        var tlvs: [ProxyTLV] = []
        var cursor = offset
        let end = block.readableBytes
        let base = block.readerIndex
        while cursor < end {
            guard end - cursor >= 3,
                  let type = block.getInteger(at: base + cursor, as: UInt8.self),
                  let length = block.getInteger(at: base + cursor + 1, endianness: .big, as: UInt16.self),
                  end - cursor - 3 >= Int(length),
                  let value = block.getBytes(at: base + cursor + 3, length: Int(length))
            else { throw .v2BadTLV(offset: 16 + cursor) }
            tlvs.append(ProxyTLV(type: type, value: value))
            cursor += 3 + Int(length)
        }
        return tlvs
    }
}
