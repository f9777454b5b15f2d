import AzureEmulator
import Foundation
import Testing

/// Where openssl lives on this machine, if anywhere.
private let opensslPath: String? = ["/usr/bin/openssl", "/usr/local/bin/openssl", "/opt/homebrew/bin/openssl"]
    .first(where: { FileManager.default.isExecutableFile(atPath: $0) })

/// Runs a program; returns exit status and combined stdout+stderr.
private func run(_ executable: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: executable)
    process.arguments = arguments
    let pipe = Pipe()
    process.standardOutput = pipe
    process.standardError = pipe
    try process.run()
    let data = pipe.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, String(decoding: data, as: UTF8.self))
}

private func temporaryDirectory() throws -> URL {
    let directory = FileManager.default.temporaryDirectory.appendingPathComponent("tdsgate-pki-test-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
    return directory
}

@Suite("PKI")
struct PKITests {
    @Test func leafVerifiesAgainstCAWithSwiftCertificates() async throws {
        let pki = try EmulatorPKI.generate()
        #expect(pki.caCertificatePEM.hasPrefix("-----BEGIN CERTIFICATE-----"))
        #expect(pki.caKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----"))
        let leaf = try pki.issueServerCertificate(
            hosts: ["localhost", "127.0.0.1", "::1", "*.database.windows.net"],
            validityDays: 30
        )
        #expect(leaf.certificatePEM.hasPrefix("-----BEGIN CERTIFICATE-----"))
        #expect(leaf.privateKeyPEM.hasPrefix("-----BEGIN PRIVATE KEY-----"))

        #expect(try await pki.validationFailure(certificatePEM: leaf.certificatePEM) == nil)
        #expect(try await pki.validationFailure(certificatePEM: leaf.certificatePEM, hostname: "localhost") == nil)
        #expect(try await pki.validationFailure(certificatePEM: leaf.certificatePEM, ipAddress: "127.0.0.1") == nil)
        #expect(try await pki.validationFailure(certificatePEM: leaf.certificatePEM, ipAddress: "::1") == nil)
        #expect(
            try await pki.validationFailure(certificatePEM: leaf.certificatePEM, hostname: "srv1.database.windows.net")
                == nil
        )
        // Names and addresses that are not in the SAN are refused.
        #expect(try await pki.validationFailure(certificatePEM: leaf.certificatePEM, hostname: "example.com") != nil)
        #expect(try await pki.validationFailure(certificatePEM: leaf.certificatePEM, ipAddress: "10.1.2.3") != nil)
        // notBefore is back-dated an hour; the certificate expires after its validity.
        #expect(
            try await pki.validationFailure(certificatePEM: leaf.certificatePEM, at: Date().addingTimeInterval(-1800))
                == nil
        )
        #expect(
            try await pki.validationFailure(certificatePEM: leaf.certificatePEM, at: Date().addingTimeInterval(31 * 86_400))
                != nil
        )
        // Another CA's leaf does not chain to this CA.
        let other = try EmulatorPKI.generate(commonName: "someone else")
        let foreign = try other.issueServerCertificate(hosts: ["localhost"])
        #expect(try await pki.validationFailure(certificatePEM: foreign.certificatePEM, hostname: "localhost") != nil)
    }

    @Test func loadRoundTripsAndChecksTheKey() async throws {
        let pki = try EmulatorPKI.generate(commonName: "reloaded CA")
        let loaded = try EmulatorPKI.load(caCertificatePEM: pki.caCertificatePEM, caKeyPEM: pki.caKeyPEM)
        #expect(loaded.caCertificatePEM == pki.caCertificatePEM)
        let leaf = try loaded.issueServerCertificate(hosts: ["localhost"])
        #expect(try await pki.validationFailure(certificatePEM: leaf.certificatePEM, hostname: "localhost") == nil)

        let other = try EmulatorPKI.generate()
        #expect(throws: EmulatorPKIError.self) {
            _ = try EmulatorPKI.load(caCertificatePEM: pki.caCertificatePEM, caKeyPEM: other.caKeyPEM)
        }
        // A leaf is not a CA.
        #expect(throws: EmulatorPKIError.self) {
            _ = try EmulatorPKI.load(caCertificatePEM: leaf.certificatePEM, caKeyPEM: leaf.privateKeyPEM)
        }
    }

    @Test func rejectsBadHosts() throws {
        let pki = try EmulatorPKI.generate()
        #expect(throws: EmulatorPKIError.self) { _ = try pki.issueServerCertificate(hosts: []) }
        #expect(throws: EmulatorPKIError.self) { _ = try pki.issueServerCertificate(hosts: ["not a host"]) }
        #expect(throws: EmulatorPKIError.self) { _ = try pki.issueServerCertificate(hosts: ["a..b"]) }
    }

    @Test(.enabled(if: opensslPath != nil, "needs the openssl command"))
    func opensslAcceptsTheChainAndShowsTheExtensions() throws {
        let openssl = try #require(opensslPath)
        let pki = try EmulatorPKI.generate()
        let leaf = try pki.issueServerCertificate(hosts: ["localhost", "127.0.0.1", "::1", "sql.emulator.test"])
        let directory = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let ca = directory.appendingPathComponent("ca.pem").path
        let caKey = directory.appendingPathComponent("ca.key").path
        let cert = directory.appendingPathComponent("leaf.pem").path
        let key = directory.appendingPathComponent("leaf.key").path
        try pki.caCertificatePEM.write(toFile: ca, atomically: true, encoding: .utf8)
        try pki.caKeyPEM.write(toFile: caKey, atomically: true, encoding: .utf8)
        try leaf.certificatePEM.write(toFile: cert, atomically: true, encoding: .utf8)
        try leaf.privateKeyPEM.write(toFile: key, atomically: true, encoding: .utf8)

        let verify = try run(openssl, ["verify", "-CAfile", ca, cert])
        #expect(verify.status == 0, "\(verify.output)")
        #expect(verify.output.contains("\(cert): OK"), "\(verify.output)")

        let purpose = try run(openssl, ["verify", "-purpose", "sslserver", "-verify_hostname", "localhost", "-CAfile", ca, cert])
        #expect(purpose.status == 0, "\(purpose.output)")
        let byIP = try run(openssl, ["verify", "-purpose", "sslserver", "-verify_ip", "127.0.0.1", "-CAfile", ca, cert])
        #expect(byIP.status == 0, "\(byIP.output)")
        let wrongName = try run(openssl, ["verify", "-verify_hostname", "example.com", "-CAfile", ca, cert])
        #expect(wrongName.status != 0, "\(wrongName.output)")

        let text = try run(openssl, ["x509", "-in", cert, "-noout", "-text"])
        #expect(text.status == 0, "\(text.output)")
        for expected in [
            "DNS:localhost", "IP Address:127.0.0.1", "IP Address:0:0:0:0:0:0:0:1", "DNS:sql.emulator.test",
            "TLS Web Server Authentication", "Digital Signature, Key Encipherment", "sha256WithRSAEncryption",
            "Public-Key: (2048 bit)", "CA:FALSE", "X509v3 Authority Key Identifier",
        ] {
            #expect(text.output.contains(expected), "missing \(expected) in:\n\(text.output)")
        }

        let caText = try run(openssl, ["x509", "-in", ca, "-noout", "-text"])
        #expect(caText.output.contains("CA:TRUE"), "\(caText.output)")
        #expect(caText.output.contains("Certificate Sign"), "\(caText.output)")
        #expect(caText.output.contains("X509v3 Basic Constraints: critical"), "\(caText.output)")
        #expect(caText.output.contains("Public-Key: (2048 bit)"), "\(caText.output)")

        let keyCheck = try run(openssl, ["rsa", "-in", key, "-check", "-noout"])
        #expect(keyCheck.output.contains("RSA key ok"), "\(keyCheck.output)")
        let certModulus = try run(openssl, ["x509", "-in", cert, "-noout", "-modulus"])
        let keyModulus = try run(openssl, ["rsa", "-in", key, "-noout", "-modulus"])
        #expect(certModulus.output == keyModulus.output)
        let caModulus = try run(openssl, ["x509", "-in", ca, "-noout", "-modulus"])
        let caKeyModulus = try run(openssl, ["rsa", "-in", caKey, "-noout", "-modulus"])
        #expect(caModulus.output == caKeyModulus.output)
    }
}
