import Foundation

/// One principal-name mapping rule: "if the client principal looks like this, its tdsgate
/// name is that". Rules are tried in order by `KerberosAcceptorConfig.mapName`.
public struct KerberosNameRule: Sendable {
    public enum Output: Sendable, Hashable {
        /// The part before the realm: `alice@CORP.EXAMPLE` -> `alice`.
        case user
        /// The full principal, unchanged.
        case principal
        /// A template: `{user}`, `{realm}`, `{principal}`, and `$1`... for the pattern's
        /// capture groups (only when a pattern is set). E.g. `"CORP\\{user}"`.
        case template(String)
    }

    /// Matches only this realm when set (exact comparison).
    public let realm: String?
    /// Regular expression that must match the whole `user@REALM` when set.
    public let pattern: String?
    public let output: Output
    public let lowercase: Bool
    private let regex: NSRegularExpression?

    /// Throws when `pattern` is not a valid regular expression (a config error, caught at
    /// startup rather than at the first login).
    public init(realm: String? = nil, pattern: String? = nil, output: Output = .user, lowercase: Bool = false) throws {
        self.realm = realm
        self.pattern = pattern
        self.output = output
        self.lowercase = lowercase
        self.regex = try pattern.map { try NSRegularExpression(pattern: "^(?:\($0))$") }
    }

    func apply(user: String, realm: String, principal: String) -> String? {
        if let r = self.realm, r != realm { return nil }
        var match: NSTextCheckingResult?
        if let regex {
            let range = NSRange(principal.startIndex..., in: principal)
            guard let m = regex.firstMatch(in: principal, range: range) else { return nil }
            match = m
        }
        var name: String
        switch output {
        case .user: name = user
        case .principal: name = principal
        case .template(let template):
            name = template
            if let regex, let match {
                name = regex.replacementString(for: match, in: principal, offset: 0, template: name)
            }
            name = name.replacingOccurrences(of: "{principal}", with: principal)
                .replacingOccurrences(of: "{user}", with: user)
                .replacingOccurrences(of: "{realm}", with: realm)
        }
        if lowercase { name = name.lowercased() }
        return name.isEmpty ? nil : name
    }
}
