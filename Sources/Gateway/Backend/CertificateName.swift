import Foundation
import X509

/// Does the server certificate carry the name tdsgate dialled (or was redirected to)?
/// NIOSSL also accepts a certificate whose IP address entry matches the socket's peer,
/// whatever name was expected; tdsgate checks the name itself so that a redirect to
/// another worker is verified against that worker's name.
public enum CertificateName {
    public static func matches(_ name: String, certificateDER: [UInt8]) -> Bool {
        guard let cert = try? Certificate(derEncoded: certificateDER) else { return false }
        let wanted = name.lowercased().trimmingSuffix(".")
        let isIP = wanted.contains(":") || wanted.split(separator: ".").allSatisfy { UInt8($0) != nil }
        guard let sans = try? cert.extensions.subjectAlternativeNames else { return false }
        for san in sans {
            switch san {
            case .dnsName(let dns) where !isIP:
                if dnsMatches(pattern: dns.lowercased().trimmingSuffix("."), host: wanted) { return true }
            case .ipAddress(let bytes) where isIP:
                if formatIP(Array(bytes.bytes)) == normalizeIP(wanted) { return true }
            default:
                continue
            }
        }
        return false
    }

    /// RFC 6125: a wildcard only as the whole left-most label, matching exactly one label.
    static func dnsMatches(pattern: String, host: String) -> Bool {
        if pattern == host { return true }
        guard pattern.hasPrefix("*.") else { return false }
        let suffix = pattern.dropFirst(1)
        guard host.hasSuffix(suffix) else { return false }
        let label = host.dropLast(suffix.count)
        return !label.isEmpty && !label.contains(".")
    }

    private static func formatIP(_ b: [UInt8]) -> String {
        if b.count == 4 { return b.map(String.init).joined(separator: ".") }
        var groups: [String] = []
        for i in stride(from: 0, to: b.count - 1, by: 2) { groups.append(String(UInt16(b[i]) << 8 | UInt16(b[i + 1]), radix: 16)) }
        return normalizeIP(groups.joined(separator: ":"))
    }

    private static func normalizeIP(_ s: String) -> String {
        guard s.contains(":") else { return s }
        // Expand "::" so both sides compare in full form.
        let parts = s.components(separatedBy: "::")
        let head = parts[0].split(separator: ":").map(String.init)
        let tail = parts.count > 1 ? parts[1].split(separator: ":").map(String.init) : []
        let zeros = Array(repeating: "0", count: max(0, 8 - head.count - tail.count))
        return (head + (parts.count > 1 ? zeros : []) + tail).map { String(UInt16($0, radix: 16) ?? 0, radix: 16) }.joined(separator: ":")
    }
}

extension String {
    func trimmingSuffix(_ s: String) -> String { hasSuffix(s) ? String(dropLast(s.count)) : self }
}
