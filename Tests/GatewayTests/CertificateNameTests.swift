import AzureEmulator
import NIOSSL
import Testing
@testable import Gateway

@Suite struct CertificateNameTests {
    @Test func wildcardsMatchOneLabelOnly() {
        #expect(CertificateName.dnsMatches(pattern: "*.tr1.westus1-a.worker.database.windows.net", host: "abc.tr1.westus1-a.worker.database.windows.net"))
        #expect(!CertificateName.dnsMatches(pattern: "*.database.windows.net", host: "a.b.database.windows.net"))
        #expect(!CertificateName.dnsMatches(pattern: "*.database.windows.net", host: "database.windows.net"))
        #expect(CertificateName.dnsMatches(pattern: "myserver.database.windows.net", host: "myserver.database.windows.net"))
    }

    @Test func namesComeFromTheCertificateNotTheSocket() throws {
        let pki = try EmulatorPKI.generate()
        let leaf = try pki.issueServerCertificate(hosts: ["localhost", "127.0.0.1", "::1"])
        let der = try NIOSSLCertificate.fromPEMBytes(Array(leaf.certificatePEM.utf8))[0].toDERBytes()
        #expect(CertificateName.matches("localhost", certificateDER: der))
        #expect(CertificateName.matches("LOCALHOST.", certificateDER: der))
        #expect(CertificateName.matches("127.0.0.1", certificateDER: der))
        #expect(CertificateName.matches("::1", certificateDER: der))
        #expect(!CertificateName.matches("wrong-name.example", certificateDER: der))
        #expect(!CertificateName.matches("127.0.0.2", certificateDER: der))
        #expect(!CertificateName.matches("localhost", certificateDER: [0x30, 0x03, 0x02, 0x01, 0x00]))
    }
}
