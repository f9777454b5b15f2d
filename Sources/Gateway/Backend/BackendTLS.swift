import NIOSSL
import Synchronization

/// TLS client contexts per (CA file, strict), built once: loading trust roots per
/// connection would cost more than the connection.
final class BackendTLSContexts: Sendable {
    private let cache = Mutex<[String: NIOSSLContext]>([:])

    func context(caFile: String?, strict: Bool) throws -> NIOSSLContext {
        let key = "\(caFile ?? "<system>")|\(strict)"
        if let c = cache.withLock({ $0[key] }) { return c }
        var config = TLSConfiguration.makeClientConfiguration()
        config.certificateVerification = .fullVerification
        if let caFile { config.trustRoots = .file(caFile) }
        if strict {
            config.minimumTLSVersion = .tlsv12
            config.maximumTLSVersion = .tlsv13
            config.applicationProtocols = ["tds/8.0"]
        } else {
            // TLS inside PRELOGIN: SQL Server's TDS 7.x stacks expect at most TLS 1.2.
            config.maximumTLSVersion = .tlsv12
        }
        let c = try NIOSSLContext(configuration: config)
        cache.withLock { $0[key] = c }
        return c
    }
}
