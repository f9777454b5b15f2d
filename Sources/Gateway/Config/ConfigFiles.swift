import Foundation

/// Paths and files named in the configuration.
enum ConfigFiles {
    /// `path` made absolute against `base` (`~/` is the home folder), `.` and `..` removed.
    static func absolute(_ path: String, relativeTo base: String) -> String {
        var path = path
        if path == "~" || path.hasPrefix("~/") {
            path = FileManager.default.homeDirectoryForCurrentUser.path + String(path.dropFirst())
        }
        let joined = path.hasPrefix("/") ? path : base + "/" + path
        var parts: [Substring] = []
        for part in joined.split(separator: "/", omittingEmptySubsequences: true) {
            switch part {
            case ".": continue
            case "..": if !parts.isEmpty { parts.removeLast() }
            default: parts.append(part)
            }
        }
        return "/" + parts.joined(separator: "/")
    }

    /// Folder of an absolute file path.
    static func directory(of path: String) -> String {
        guard let slash = path.lastIndex(of: "/"), slash != path.startIndex else { return "/" }
        return String(path[..<slash])
    }

    /// Why the file at the absolute `path` cannot serve, or `nil` when it can.
    static func problem(with path: String, expect: ConfigFileExpectation) -> String? {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            return "file does not exist: \(path)"
        }
        if isDirectory.boolValue { return "is a folder, not a file: \(path)" }
        guard FileManager.default.isReadableFile(atPath: path), let data = FileManager.default.contents(atPath: path) else {
            return "file is not readable: \(path)"
        }
        switch expect {
        case .anything:
            return nil
        case .nonEmpty:
            let text = String(decoding: data, as: UTF8.self)
            return text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty ? "file is empty: \(path)" : nil
        case .certificatePEM:
            let text = String(decoding: data, as: UTF8.self)
            return text.contains("-----BEGIN CERTIFICATE-----") ? nil : "no PEM certificate (-----BEGIN CERTIFICATE-----) in \(path)"
        case .privateKeyPEM:
            let text = String(decoding: data, as: UTF8.self)
            let hasKey = text.contains("-----BEGIN") && text.contains("PRIVATE KEY-----")
            return hasKey ? nil : "no PEM private key (-----BEGIN ... PRIVATE KEY-----) in \(path)"
        }
    }
}

/// Checks of single values: addresses, host names, URLs, GUIDs.
enum ConfigValues {
    static func isIPv4(_ text: String) -> Bool {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        return parts.count == 4 && parts.allSatisfy { part in
            !part.isEmpty && part.count <= 3 && part.allSatisfy(\.isASCII) && part.allSatisfy(\.isNumber) && Int(part)! <= 255
        }
    }

    static func isIPv6(_ text: String) -> Bool {
        guard text.contains(":"), text.count <= 45 else { return false }
        let allowed = text.unicodeScalars.allSatisfy { $0.properties.isASCIIHexDigit || $0 == ":" || $0 == "." }
        guard allowed else { return false }
        let doubleColons = text.components(separatedBy: "::").count - 1
        guard doubleColons <= 1 else { return false }
        let groups = text.split(separator: ":", omittingEmptySubsequences: true)
        return groups.count <= 8 && groups.allSatisfy { $0.count <= 4 || isIPv4(String($0)) }
    }

    static func isHostName(_ text: String) -> Bool {
        guard !text.isEmpty, text.utf8.count <= 253 else { return false }
        let labels = text.split(separator: ".", omittingEmptySubsequences: false)
        let isName = labels.allSatisfy { label in
            !label.isEmpty && label.count <= 63 && !label.hasPrefix("-") && !label.hasSuffix("-")
                && label.unicodeScalars.allSatisfy { $0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0) || $0 == "-" || $0 == "_") }
        }
        // All-digit dotted names are meant as IPv4 addresses.
        let looksNumeric = labels.allSatisfy { $0.allSatisfy(\.isNumber) }
        return isName && !looksNumeric
    }

    /// Why `text` cannot be a host to connect to or bind on, or `nil`.
    static func hostProblem(_ text: String) -> String? {
        if isIPv4(text) || isIPv6(text) || isHostName(text) { return nil }
        if text.hasPrefix("["), text.hasSuffix("]") { return "write IPv6 addresses without brackets" }
        if text.contains("://") { return "expected a host name or IP address, not a URL" }
        if text.contains(",") || (text.contains(":") && !text.contains("::") && text.split(separator: ":").count == 2) {
            return "expected a host name or IP address without a port (use the port key)"
        }
        return "is not a valid host name or IP address"
    }

    static func isLoopback(_ host: String) -> Bool {
        let host = host.lowercased()
        if host == "localhost" || host.hasSuffix(".localhost") || host == "::1" || host == "0:0:0:0:0:0:0:1" { return true }
        return isIPv4(host) && host.hasPrefix("127.")
    }

    static func isWildcard(_ host: String) -> Bool {
        host == "0.0.0.0" || host == "::" || host == "0:0:0:0:0:0:0:0"
    }

    static func isGUID(_ text: String) -> Bool {
        let groups = text.split(separator: "-", omittingEmptySubsequences: false)
        return groups.map(\.count) == [8, 4, 4, 4, 12]
            && groups.allSatisfy { $0.unicodeScalars.allSatisfy(\.properties.isASCIIHexDigit) }
    }

    /// Why `text` is not an http(s) URL (https unless `httpAllowed` or the host is loopback), or `nil`.
    static func urlProblem(_ text: String, httpAllowed: Bool = false) -> String? {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(), let host = url.host, !host.isEmpty else {
            return "expected an http(s) URL"
        }
        switch scheme {
        case "https": return nil
        case "http": return httpAllowed || isLoopback(host) ? nil : "must be an https URL (http only for loopback addresses)"
        default: return "expected an http(s) URL"
        }
    }
}
