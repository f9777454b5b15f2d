import Crypto
import Foundation
@_spi(FixedExpiryValidationTime) import X509
import _CryptoExtras

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

public enum EmulatorPKIError: Error, Sendable, CustomStringConvertible {
    case noHosts
    case invalidHost(String)
    case keyDoesNotMatchCertificate
    case notACertificateAuthority
    case unsupportedKey(String)

    public var description: String {
        switch self {
        case .noHosts: return "a server certificate needs at least one host name or IP address"
        case .invalidHost(let host): return "'\(host)' is neither a DNS name nor an IP address"
        case .keyDoesNotMatchCertificate: return "the CA key does not belong to the CA certificate"
        case .notACertificateAuthority: return "the CA certificate has no basicConstraints CA:TRUE"
        case .unsupportedKey(let reason): return "unsupported CA key: \(reason)"
        }
    }
}

/// A throwaway certificate authority for the emulated deployment's TLS endpoints.
///
/// RSA 2048 keys and SHA-256 signatures everywhere, so that older TLS stacks (FreeTDS with
/// GnuTLS or OpenSSL, ODBC Driver 17/18, JDBC) accept them. The CA has
/// `basicConstraints CA:TRUE` (critical) and `keyUsage keyCertSign, cRLSign` (critical); leaf
/// certificates have SANs for every host (DNS names and IP literals), `extendedKeyUsage
/// serverAuth`, `keyUsage digitalSignature, keyEncipherment` (critical), subject and authority
/// key identifiers, and a `notBefore` one hour in the past to absorb clock skew.
/// Private keys are PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
public struct EmulatorPKI: Sendable {
    public let caCertificatePEM: String
    public let caKeyPEM: String
    let caCertificate: Certificate
    private let caKey: _RSA.Signing.PrivateKey

    /// How far `notBefore` is back-dated on new certificates.
    public static let backdating: TimeInterval = 3600

    private init(certificate: Certificate, key: _RSA.Signing.PrivateKey) throws {
        self.caCertificate = certificate
        self.caKey = key
        self.caCertificatePEM = try certificate.serializeAsPEM().pemString
        self.caKeyPEM = key.pkcs8PEMRepresentation
    }

    /// Creates a new self-signed CA.
    public static func generate(
        commonName: String = "tdsgate test CA",
        validityDays: Int = 3650,
        now: Date = Date()
    ) throws -> EmulatorPKI {
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let certificateKey = Certificate.PrivateKey(key)
        let name = try DistinguishedName {
            OrganizationName("tdsgate emulator")
            CommonName(commonName)
        }
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.isCertificateAuthority(maxPathLength: 0))
            Critical(KeyUsage(keyCertSign: true, cRLSign: true))
            SubjectKeyIdentifier(hash: certificateKey.publicKey)
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: certificateKey.publicKey,
            notValidBefore: now.addingTimeInterval(-backdating),
            notValidAfter: now.addingTimeInterval(TimeInterval(validityDays) * 86_400),
            issuer: name,
            subject: name,
            signatureAlgorithm: .sha256WithRSAEncryption,
            extensions: extensions,
            issuerPrivateKey: certificateKey
        )
        return try EmulatorPKI(certificate: certificate, key: key)
    }

    /// Loads a CA saved from ``caCertificatePEM`` and ``caKeyPEM`` (PKCS#8 or PKCS#1 RSA key).
    public static func load(caCertificatePEM: String, caKeyPEM: String) throws -> EmulatorPKI {
        let certificate = try Certificate(pemEncoded: caCertificatePEM)
        let key: _RSA.Signing.PrivateKey
        do {
            key = try _RSA.Signing.PrivateKey(pemRepresentation: caKeyPEM)
        } catch {
            throw EmulatorPKIError.unsupportedKey("not an RSA private key PEM (\(error))")
        }
        guard Certificate.PrivateKey(key).publicKey == certificate.publicKey else {
            throw EmulatorPKIError.keyDoesNotMatchCertificate
        }
        guard case .some(.isCertificateAuthority) = try certificate.extensions.basicConstraints else {
            throw EmulatorPKIError.notACertificateAuthority
        }
        return try EmulatorPKI(certificate: certificate, key: key)
    }

    /// Issues a server certificate for `hosts` (DNS names, wildcards like `*.database.windows.net`,
    /// IPv4 or IPv6 literals). The subject CN is the first host.
    public func issueServerCertificate(
        hosts: [String],
        validityDays: Int = 365,
        now: Date = Date()
    ) throws -> (certificatePEM: String, privateKeyPEM: String) {
        guard let first = hosts.first else { throw EmulatorPKIError.noHosts }
        var names: [GeneralName] = []
        for host in hosts {
            let trimmed = host.trimmingCharacters(in: CharacterSet(charactersIn: "[] "))
            if let address = EmulatorPKI.ipAddressBytes(trimmed) {
                names.append(.ipAddress(.init(contentBytes: ArraySlice(address))))
            } else if EmulatorPKI.isDNSName(trimmed) {
                names.append(.dnsName(trimmed.lowercased()))
            } else {
                throw EmulatorPKIError.invalidHost(host)
            }
        }
        let key = try _RSA.Signing.PrivateKey(keySize: .bits2048)
        let certificateKey = Certificate.PrivateKey(key)
        let subject = try DistinguishedName {
            OrganizationName("tdsgate emulator")
            CommonName(first.trimmingCharacters(in: CharacterSet(charactersIn: "[] ")))
        }
        let caSKI = try self.caCertificate.extensions.subjectKeyIdentifier
        let extensions = try Certificate.Extensions {
            Critical(BasicConstraints.notCertificateAuthority)
            Critical(KeyUsage(digitalSignature: true, keyEncipherment: true))
            try ExtendedKeyUsage([.serverAuth])
            SubjectAlternativeNames(names)
            SubjectKeyIdentifier(hash: certificateKey.publicKey)
            if let caSKI {
                AuthorityKeyIdentifier(keyIdentifier: caSKI.keyIdentifier)
            }
        }
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: certificateKey.publicKey,
            notValidBefore: now.addingTimeInterval(-EmulatorPKI.backdating),
            notValidAfter: now.addingTimeInterval(TimeInterval(validityDays) * 86_400),
            issuer: self.caCertificate.subject,
            subject: subject,
            signatureAlgorithm: .sha256WithRSAEncryption,
            extensions: extensions,
            issuerPrivateKey: Certificate.PrivateKey(self.caKey)
        )
        return (try certificate.serializeAsPEM().pemString, key.pkcs8PEMRepresentation)
    }

    /// Validates a certificate issued by this CA with swift-certificates' `Verifier`
    /// (RFC 5280 chain rules, at `time` or now, and the server identity when `hostname` or
    /// `ipAddress` is given). Returns nil when valid, else a description of the failure.
    public func validationFailure(
        certificatePEM: String,
        hostname: String? = nil,
        ipAddress: String? = nil,
        at time: Date? = nil
    ) async throws -> String? {
        let leaf = try Certificate(pemEncoded: certificatePEM)
        let roots = CertificateStore([self.caCertificate])
        let rfc5280 = time.map { RFC5280Policy(fixedExpiryValidationTime: $0) } ?? RFC5280Policy()
        let result: CertificateValidationResult
        if hostname != nil || ipAddress != nil {
            var verifier = Verifier(rootCertificates: roots) {
                rfc5280
                ServerIdentityPolicy(serverHostname: hostname, serverIP: ipAddress)
            }
            result = await verifier.validate(leaf: leaf, intermediates: CertificateStore())
        } else {
            var verifier = Verifier(rootCertificates: roots) { rfc5280 }
            result = await verifier.validate(leaf: leaf, intermediates: CertificateStore())
        }
        switch result {
        case .validCertificate:
            return nil
        case .couldNotValidate(let failures):
            if failures.isEmpty { return "no chain to the CA was found" }
            return failures.map { String(describing: $0.policyFailureReason) }.joined(separator: "; ")
        }
    }

    /// The 4 or 16 address bytes of an IPv4/IPv6 literal, nil for anything else.
    static func ipAddressBytes(_ text: String) -> [UInt8]? {
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            return withUnsafeBytes(of: &v4) { Array($0) }
        }
        var v6 = in6_addr()
        if inet_pton(AF_INET6, text, &v6) == 1 {
            return withUnsafeBytes(of: &v6) { Array($0) }
        }
        return nil
    }

    static func isDNSName(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 253 else { return false }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        for (index, label) in labels.enumerated() {
            if label == "*" && index == 0 && labels.count > 1 { continue }
            guard !label.isEmpty, label.utf8.count <= 63 else { return false }
            for scalar in label.unicodeScalars {
                switch scalar {
                case "a"..."z", "A"..."Z", "0"..."9", "-", "_": continue
                default: return false
                }
            }
        }
        return true
    }
}
