import Foundation

/// The stored form of a SQL login's password: `pbkdf2-sha256$<iterations>$<salt>$<hash>`,
/// salt and hash in base64 (standard alphabet, padding optional). Only the form is checked
/// here; verifying passwords is the Identity module's work.
enum PasswordHashFormat {
    static let scheme = "pbkdf2-sha256"
    static let minimumIterations = 100_000
    /// More would make every login attempt a denial of service.
    static let maximumIterations = 50_000_000
    static let minimumSaltBytes = 8
    static let minimumHashBytes = 16

    /// Why `text` is not a usable hash, or `nil`. The message never contains any of `text`.
    static func problem(with text: String) -> String? {
        let form = "must have the form \(scheme)$<iterations>$<salt base64>$<hash base64> (make one with `tdsgate hash-password`)"
        let fields = text.split(separator: "$", omittingEmptySubsequences: false)
        guard fields.count == 4, fields[0] == scheme[...] else { return form }
        guard let iterations = Int(fields[1]), iterations > 0 else { return form }
        guard let salt = decodeBase64(fields[2]), let hash = decodeBase64(fields[3]) else {
            return "salt and hash must be base64; " + form
        }
        if iterations < minimumIterations { return "the iteration count must be at least \(minimumIterations)" }
        if iterations > maximumIterations { return "the iteration count must be at most \(maximumIterations)" }
        if salt.count < minimumSaltBytes { return "the salt must be at least \(minimumSaltBytes) bytes" }
        if hash.count < minimumHashBytes { return "the hash must be at least \(minimumHashBytes) bytes" }
        return nil
    }

    static func decodeBase64(_ text: Substring) -> [UInt8]? {
        guard !text.isEmpty else { return nil }
        var padded = String(text)
        while padded.count % 4 != 0 { padded += "=" }
        return Data(base64Encoded: padded).map { [UInt8]($0) }
    }
}
