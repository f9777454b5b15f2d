import Foundation
import Gateway
import Testing

/// Helpers for the configuration tests.
enum ConfigTestSupport {
    static let hash = "pbkdf2-sha256$600000$dGRzZ2F0ZS1leGFtcGxlIQ==$Lcwh+mRHzsBknBBr89/thTX+Gkgn+E0s4wpm1u+VSfQ="
    static let certificatePEM = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    static let keyPEM = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"

    /// Configs/tdsgate.yaml of this repository.
    static var exampleURL: URL {
        URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Configs/tdsgate.yaml")
    }

    static func exampleText() throws -> String {
        try String(contentsOf: exampleURL, encoding: .utf8)
    }

    static func temporaryDirectory() throws -> String {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tdsgate-config-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url.path
    }

    static func write(_ text: String, to path: String) throws {
        let url = URL(fileURLWithPath: path)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try text.write(to: url, atomically: true, encoding: .utf8)
    }

    /// The problems of parsing `yaml`, or an empty list when it parses.
    static func problems(_ yaml: String, baseDirectory: String = "/nonexistent", checkFiles: Bool = true) -> [ConfigProblem] {
        do {
            _ = try GatewayConfig.parse(yaml: yaml, baseDirectory: baseDirectory, checkFiles: checkFiles)
            return []
        } catch {
            return error.problems
        }
    }

    /// Parses `yaml`, recording its problems as a test failure when it does not parse.
    static func parse(_ yaml: String, baseDirectory: String = "/nonexistent", checkFiles: Bool = false, sourceLocation: SourceLocation = #_sourceLocation) -> GatewayConfig? {
        do {
            return try GatewayConfig.parse(yaml: yaml, baseDirectory: baseDirectory, checkFiles: checkFiles)
        } catch {
            Issue.record("unexpected problems:\n\(error)", sourceLocation: sourceLocation)
            return nil
        }
    }
}

extension Array where Element == ConfigProblem {
    /// The message reported at `path`, if any.
    func message(at path: String) -> String? {
        first { $0.path == path }?.message
    }

    /// The problem reported at `path`, if any.
    func problem(at path: String) -> ConfigProblem? {
        first { $0.path == path }
    }

    /// The problems without their locations, to compare with paths and messages alone.
    var unlocated: [ConfigProblem] {
        map { ConfigProblem(path: $0.path, message: $0.message) }
    }

    /// Whether `message` was reported at `path`.
    func has(_ path: String, _ message: String) -> Bool {
        contains { $0.path == path && $0.message == message }
    }

    var listing: String { map(\.description).joined(separator: "\n") }
}
