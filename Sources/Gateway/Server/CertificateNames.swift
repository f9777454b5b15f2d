import Foundation
import X509

/// The names in a listener's certificate, for clients of tdsgate that read its config (the
/// drill) and must dial the listener by a name the certificate carries.
public enum CertificateNames {
    /// An IPv4 or IPv6 literal (which TLS SNI cannot carry, and which a certificate names
    /// as an IP address entry, not a DNS name).
    public static func isIPAddress(_ name: String) -> Bool {
        name.contains(":") || (!name.isEmpty && name.split(separator: ".", omittingEmptySubsequences: false).allSatisfy { UInt8($0) != nil })
    }

    /// DNS names (subject alternative names) of the first certificate in a PEM file, in
    /// file order; wildcards are left out (they name no host to dial).
    public static func dnsNames(pemFile: String) throws -> [String] {
        let text = try String(contentsOfFile: pemFile, encoding: .utf8)
        let begin = "-----BEGIN CERTIFICATE-----", end = "-----END CERTIFICATE-----"
        guard let open = text.range(of: begin), let close = text.range(of: end, range: open.upperBound..<text.endIndex),
              let der = Data(base64Encoded: text[open.upperBound..<close.lowerBound].filter { !$0.isWhitespace })
        else {
            throw CertificateNamesError(description: "\(pemFile) holds no PEM certificate")
        }
        let certificate = try Certificate(derEncoded: Array(der))
        guard let sans = try certificate.extensions.subjectAlternativeNames else { return [] }
        return sans.compactMap { name in
            if case .dnsName(let dns) = name, !dns.hasPrefix("*.") { return dns }
            return nil
        }
    }
}

public struct CertificateNamesError: Error, CustomStringConvertible {
    public var description: String
}
