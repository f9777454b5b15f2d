import Foundation
import Yams

// The configuration is read by a hand-written walker over Yams' node tree rather than by
// `Decodable`: it reports every problem of a file at once (not the first), rejects unknown
// keys with a suggestion for near misses, knows the line and column of every value, and
// never echoes a value that may be a secret (Decodable's errors quote values and stop at
// the first). Two passes: the structural one here and in GatewayConfig+Parse.swift turns
// each section into typed values; the validation pass (ConfigValidation.swift) then checks
// the rules that span fields and sections.

/// Builds paths like `clusters.orders.endpoints[1].host`.
enum ConfigPath {
    static func key(_ base: String, _ key: String) -> String {
        base.isEmpty ? key : "\(base).\(key)"
    }

    static func index(_ base: String, _ index: Int) -> String {
        "\(base)[\(index)]"
    }
}

/// A YAML mapping whose keys have been checked against the keys allowed at its place.
struct ConfigMap {
    let path: String
    /// The mapping's own mark (where a missing key is reported).
    var mark: Mark?
    /// Keys in file order, each with its value (explicit nulls kept out).
    private(set) var entries: [(key: String, value: Node)] = []

    init(path: String, mark: Mark? = nil) {
        self.path = path
        self.mark = mark
    }

    mutating func add(_ key: String, _ value: Node) {
        guard !entries.contains(where: { $0.key == key }) else { return }
        entries.append((key, value))
    }

    /// The value of `key`, or `nil` when the key is absent or null.
    subscript(key: String) -> Node? {
        entries.first { $0.key == key }?.value
    }

    func has(_ key: String) -> Bool { self[key] != nil }

    func path(_ key: String) -> String { ConfigPath.key(path, key) }

    /// What the validation pass needs to know about this mapping.
    var place: ConfigItemPlace {
        ConfigItemPlace(path: path, keys: Set(entries.map(\.key)))
    }
}

/// Where the structural pass found an item, and which keys it had, for the validation pass.
struct ConfigItemPlace {
    let path: String
    let keys: Set<String>
    /// The entries of list-valued keys the validation pass checks, each with its path
    /// (`policy.x.databases[1]`, or the key's own path for a single value without brackets).
    var lists: [String: [(value: String, path: String)]] = [:]

    func has(_ key: String) -> Bool { keys.contains(key) }
    func key(_ key: String) -> String { ConfigPath.key(path, key) }
}

/// An item of a list whose items have names (listeners, clusters, ...).
struct NamedConfigItem {
    let index: Int
    /// `base.name` when the item has a valid name seen for the first time, `base[index]` otherwise.
    let path: String
    let map: ConfigMap
    /// The valid, first-seen name (`nil` when missing, invalid or a repeat).
    let name: String?
}

/// What a file named in the configuration must contain.
enum ConfigFileExpectation {
    case anything
    /// A secret or token: must not be empty.
    case nonEmpty
    case certificatePEM
    case privateKeyPEM
}

/// How names of a kind of item are checked and compared.
enum ConfigNameRule {
    /// Letters, digits, `-`, `_` and `.`; compared exactly.
    case identifier
    /// A SQL login name: any printable text up to 128 characters; compared without case.
    case sqlLogin

    func key(_ name: String) -> String {
        switch self {
        case .identifier: name
        case .sqlLogin: name.lowercased()
        }
    }
}

/// A name one part of the file gives to an item defined in another, checked by the
/// validation pass once every section is read.
struct ConfigReference {
    enum Kind: String {
        case cluster, backendIdentity = "backend identity", login
    }

    let kind: Kind
    let name: String
    let path: String
}

/// Walks a YAML node tree, turning values into Swift ones and collecting every problem.
final class ConfigReader {
    private(set) var problems: [ConfigProblem] = []
    /// References to check in the validation pass.
    var references: [ConfigReference] = []
    /// Login names given in the file (key: lowercased), also those whose entry was refused, so
    /// that a policy naming one is not told the login does not exist.
    var loginNames: [String: String] = [:]
    private var reported: Set<String> = []
    /// The location of each path the walker has seen (values, keys, list items).
    private var locations: [String: ConfigLocation] = [:]
    /// The file being read, for locations (`nil` for text given as a string).
    var currentFile: String?
    let baseDirectory: String
    let checkFiles: Bool

    /// YAML nodes a document may expand to (aliases counted each time they are used):
    /// far beyond any real configuration, and a bound on the work an alias bomb can cause.
    static let maximumNodes = 1_000_000
    /// Configuration and logins files larger than this are refused unread.
    static let maximumFileBytes = 16 << 20

    init(baseDirectory: String, checkFiles: Bool, file: String? = nil) {
        self.baseDirectory = ConfigFiles.absolute(baseDirectory, relativeTo: FileManager.default.currentDirectoryPath)
        self.checkFiles = checkFiles
        self.currentFile = file
    }

    /// Records a problem at `path`, located at the path's value (or the nearest enclosing
    /// value the walker has seen). The same path and message are reported once.
    func report(_ path: String, _ message: String, at mark: Mark? = nil) {
        guard reported.insert("\(path)\u{0}\(message)").inserted else { return }
        let location = mark.map { ConfigLocation(file: currentFile, line: $0.line, column: $0.column) } ?? location(of: path)
        problems.append(ConfigProblem(path: path, message: message, location: location))
    }

    /// Remembers where `path` is written (the first time it is seen).
    func note(_ path: String, _ mark: Mark?) {
        guard let mark, locations[path] == nil else { return }
        locations[path] = ConfigLocation(file: currentFile, line: mark.line, column: mark.column)
    }

    /// The location of `path`, or of its nearest ancestor with one.
    func location(of path: String) -> ConfigLocation? {
        var current = Substring(path)
        while true {
            if let location = locations[String(current)] { return location }
            guard let cut = current.lastIndex(where: { $0 == "." || $0 == "[" }) else {
                return locations[""]
            }
            current = current[..<cut]
        }
    }

    /// Puts problems in the order their top-level sections appear in the file, and within a
    /// section in the order of their lines (problems without a line keep the order found);
    /// problems outside any section come first.
    func orderProblems(byTopLevelKeys keys: [String]) {
        func rank(_ problem: ConfigProblem) -> Int {
            let head = problem.path.prefix { $0 != "." && $0 != "[" }
            return keys.firstIndex(of: String(head)) ?? -1
        }
        func key(_ entry: (offset: Int, element: ConfigProblem)) -> (Int, Int, Int, Int) {
            let location = entry.element.location
            return (rank(entry.element), location?.line ?? Int.max, location?.column ?? Int.max, entry.offset)
        }
        problems = problems.enumerated().sorted { key($0) < key($1) }.map(\.element)
    }

    // MARK: YAML

    /// Parses one YAML document of `currentFile`; syntax errors are reported with line and
    /// column (at `path`: empty for the main file, `logins_file` for that one).
    func compose(_ yaml: String, path: String = "") -> Node? {
        let root: Node
        do {
            // An empty document comes back as a null node, for the caller to judge.
            root = try Yams.compose(yaml: yaml) ?? .scalar(.init("", .implicit, .plain))
        } catch {
            let (position, text) = Self.describeYAMLError(error, yaml: yaml)
            let location = position.map { ConfigLocation(file: currentFile, line: $0.line, column: $0.column) }
            problems.append(ConfigProblem(path: path, message: "YAML syntax error: \(text)", location: location))
            return nil
        }
        guard Self.countNodes(root, limit: Self.maximumNodes) <= Self.maximumNodes else {
            report(path, "the document expands to more than \(Self.maximumNodes) values (aliases of aliases?)", at: root.mark)
            return nil
        }
        note(path, root.mark)
        return root
    }

    /// Nodes in the tree with aliases expanded, counting no further than just past `limit`.
    static func countNodes(_ root: Node, limit: Int) -> Int {
        var count = 0
        var stack = [root]
        while let node = stack.popLast() {
            count += 1
            if count > limit { return count }
            switch node {
            case .scalar, .alias: break
            case let .sequence(sequence): stack.append(contentsOf: sequence)
            case let .mapping(mapping):
                for (key, value) in mapping {
                    stack.append(key)
                    stack.append(value)
                }
            }
        }
        return count
    }

    /// Position and text of a Yams error, leaving out the source snippet (it may hold secrets).
    static func describeYAMLError(_ error: any Error, yaml: String) -> (YAMLPosition?, String) {
        guard let error = error as? YamlError else {
            return (nil, "\(error)")
        }
        func withContext(_ context: YamlError.Context?, _ problem: String) -> String {
            guard let context else { return problem }
            return "\(problem) (\(context.text) at line \(context.mark.line), column \(context.mark.column))"
        }
        switch error {
        case let .scanner(context, problem, mark, _),
             let .parser(context, problem, mark, _),
             let .composer(context, problem, mark, _):
            return (YAMLPosition(line: mark.line, column: mark.column), withContext(context, problem))
        case let .reader(problem, offset, _, yaml):
            guard let offset else { return (nil, problem) }
            let prefix = yaml.utf8.prefix(offset)
            let line = prefix.reduce(1) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 }
            let column = prefix.count - (prefix.lastIndex(of: UInt8(ascii: "\n")).map { prefix.distance(from: prefix.startIndex, to: $0) + 1 } ?? 0) + 1
            return (YAMLPosition(line: line, column: column), problem)
        case let .duplicatedKeysInMapping(duplicates, context):
            let keys = duplicates.map { "'\($0)'" }.joined(separator: ", ")
            return (YAMLPosition(line: context.mark.line, column: context.mark.column), "duplicate key \(keys) in one mapping")
        default:
            return (nil, "\(error)")
        }
    }

    // MARK: Shapes

    static func isNull(_ node: Node) -> Bool {
        guard case let .scalar(scalar) = node else { return false }
        return scalar.style == .plain && node.null != nil
    }

    /// Describes a node's shape without echoing its value (it may be a secret).
    static func shape(_ node: Node) -> String {
        switch node {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .scalar: isNull(node) ? "nothing" : "a single value"
        case .alias: "an alias"
        }
    }

    /// Reads a mapping, reporting unknown keys (with a suggestion for near misses).
    /// `hints` gives a special message for some keys that are not allowed.
    func map(_ node: Node, at path: String, keys allowed: [String], hints: [String: String] = [:]) -> ConfigMap? {
        guard case let .mapping(mapping) = node else {
            report(path, "expected a mapping, found \(Self.shape(node))", at: node.mark)
            return nil
        }
        note(path, node.mark)
        var result = ConfigMap(path: path, mark: node.mark)
        var merged: [(String, Node)] = []
        for (keyNode, value) in mapping {
            guard case let .scalar(keyScalar) = keyNode else {
                report(path, "keys must be plain names, found \(Self.shape(keyNode)) as a key", at: keyNode.mark)
                continue
            }
            let key = keyScalar.string
            if key == "<<" {
                // YAML merge key: `<<: *defaults` fills keys the mapping does not set itself.
                let sources: [Node] = if case let .sequence(seq) = value { Array(seq) } else { [value] }
                for source in sources {
                    guard case let .mapping(sourceMap) = source else {
                        report(ConfigPath.key(path, "<<"), "expected a mapping (or a list of mappings) to merge", at: source.mark)
                        continue
                    }
                    for (k, v) in sourceMap {
                        if case let .scalar(s) = k { merged.append((s.string, v)) }
                    }
                }
                continue
            }
            guard allowed.contains(key) else {
                reportUnknownKey(key, at: path, allowed: allowed, hints: hints, mark: keyNode.mark)
                continue
            }
            if !Self.isNull(value) {
                note(ConfigPath.key(path, key), value.mark)
                result.add(key, value)
            }
        }
        for (key, value) in merged {
            if allowed.contains(key) {
                if !Self.isNull(value) {
                    note(ConfigPath.key(path, key), value.mark)
                    result.add(key, value)
                }
            } else {
                reportUnknownKey(key, at: path, allowed: allowed, hints: hints, mark: value.mark)
            }
        }
        return result
    }

    private func reportUnknownKey(_ key: String, at path: String, allowed: [String], hints: [String: String], mark: Mark?) {
        // `client_secret:abc` (no space after the colon) is one key holding a value: never echo it.
        if key.contains(":") || key.count > 64 || key.contains(where: \.isWhitespace) {
            report(path, "a key is not a plain name (missing space after ':'? write `key: value`)", at: mark)
            return
        }
        let keyPath = ConfigPath.key(path, key)
        if let hint = hints[key] {
            report(keyPath, hint, at: mark)
        } else if let near = Self.suggestion(for: key, among: allowed) {
            report(keyPath, "unknown key (did you mean '\(near)'?)", at: mark)
        } else {
            report(keyPath, "unknown key (expected one of: \(allowed.joined(separator: ", ")))", at: mark)
        }
    }

    /// Items of a list whose items carry a `name`. Items with a valid first-seen name get
    /// the path `base.name`; the others `base[index]`. `names` maps each name key (see
    /// `ConfigNameRule.key`) to the path of the item that has it, across calls.
    func namedItems(
        _ node: Node, at base: String, keys: [String], rule: ConfigNameRule = .identifier,
        what: String, names: inout [String: String], hints: [String: String] = [:]
    ) -> [NamedConfigItem] {
        guard case let .sequence(sequence) = node else {
            report(base, "expected a list of \(what)s, found \(Self.shape(node))")
            return []
        }
        var items: [NamedConfigItem] = []
        for (index, element) in sequence.enumerated() {
            let indexPath = ConfigPath.index(base, index)
            note(indexPath, element.mark)
            guard case .mapping = element else {
                report(indexPath, "expected a mapping (a \(what)), found \(Self.shape(element))")
                continue
            }
            var name: String?
            var path = indexPath
            let nameNode = element["name"].flatMap { Self.isNull($0) ? nil : $0 }
            note(ConfigPath.key(indexPath, "name"), nameNode?.mark)
            if let nameNode {
                if let candidate = nameNode.scalar?.string, let problem = Self.nameProblem(candidate, rule: rule) {
                    report(ConfigPath.key(indexPath, "name"), problem)
                } else if let candidate = nameNode.scalar?.string {
                    if let first = names[rule.key(candidate)] {
                        report(ConfigPath.key(indexPath, "name"), "duplicate \(what) name '\(candidate)' (also \(first))")
                    } else {
                        names[rule.key(candidate)] = ConfigPath.key(base, candidate)
                        name = candidate
                        path = ConfigPath.key(base, candidate)
                        note(path, element.mark)
                    }
                } else {
                    report(ConfigPath.key(indexPath, "name"), "expected a name, found \(Self.shape(nameNode))")
                }
            } else {
                report(ConfigPath.key(indexPath, "name"), "is required")
            }
            guard let map = map(element, at: path, keys: keys, hints: hints) else { continue }
            items.append(NamedConfigItem(index: index, path: path, map: map, name: name))
        }
        return items
    }

    static func nameProblem(_ name: String, rule: ConfigNameRule) -> String? {
        if name.trimmingCharacters(in: .whitespaces).isEmpty { return "must not be empty" }
        switch rule {
        case .identifier:
            let allowed = name.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_" || $0 == "."
            }
            return allowed ? nil : "names may only hold letters, digits, '-', '_' and '.'"
        case .sqlLogin:
            if name.count > 128 { return "a login name has at most 128 characters" }
            if name.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) {
                return "a login name must not contain control characters"
            }
            return nil
        }
    }

    // MARK: Values

    /// A text value; empty text is a problem. No message here echoes the text, so secrets
    /// (client_secret, password_hash) are safe to read with it.
    func string(_ map: ConfigMap, _ key: String, required: Bool = false) -> String? {
        guard let node = map[key] else {
            if required { report(map.path(key), "is required") }
            return nil
        }
        return string(node, at: map.path(key))
    }

    func string(_ node: Node, at path: String) -> String? {
        guard case let .scalar(scalar) = node else {
            report(path, "expected a single value, found \(Self.shape(node))")
            return nil
        }
        if scalar.string.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            report(path, "must not be empty")
            return nil
        }
        return scalar.string
    }

    /// A whole number in `range` (`default` when absent or wrong).
    func int(_ map: ConfigMap, _ key: String, default value: Int, range: ClosedRange<Int>) -> Int {
        optionalInt(map, key, range: range) ?? value
    }

    /// A whole number in `range`, or `nil` when absent or wrong (wrong is reported). Numbers
    /// are decimal, with optional `_` separators; anything else (a fraction, `.nan`, a value
    /// past the range, one too large for any integer) is refused with the range in the message.
    func optionalInt(_ map: ConfigMap, _ key: String, range: ClosedRange<Int>) -> Int? {
        guard let node = map[key] else { return nil }
        let path = map.path(key)
        let expected = range.upperBound == Int.max ? "at least \(range.lowerBound)" : "between \(range.lowerBound) and \(range.upperBound)"
        guard case let .scalar(scalar) = node else {
            report(path, "expected a whole number \(expected), found \(Self.shape(node))")
            return nil
        }
        var text = Substring(scalar.string.replacingOccurrences(of: "_", with: ""))
        var negative = false
        if let sign = text.first, sign == "+" || sign == "-" {
            negative = sign == "-"
            text = text.dropFirst()
        }
        guard scalar.style == .plain, !text.isEmpty, text.allSatisfy({ $0.isASCII && $0.isNumber }) else {
            report(path, "expected a whole number \(expected), found '\(Self.clip(scalar.string))'")
            return nil
        }
        guard let magnitude = Int(text) else {
            report(path, "must be \(expected), found a number of \(text.count) digits")
            return nil
        }
        let number = negative ? -magnitude : magnitude
        guard range.contains(number) else {
            report(path, "must be \(expected), found \(number)")
            return nil
        }
        return number
    }

    func bool(_ map: ConfigMap, _ key: String) -> Bool? {
        guard let node = map[key] else { return nil }
        guard case let .scalar(scalar) = node else {
            report(map.path(key), "expected true or false, found \(Self.shape(node))")
            return nil
        }
        switch scalar.string.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            report(map.path(key), "expected true or false, found '\(Self.clip(scalar.string))'")
            return nil
        }
    }

    /// A list of text values, each with its path. A single value counts as a list of one.
    func stringList(_ map: ConfigMap, _ key: String) -> [(value: String, path: String)]? {
        guard let node = map[key] else { return nil }
        let path = map.path(key)
        switch node {
        case .scalar:
            return string(node, at: path).map { [($0, path)] } ?? []
        case let .sequence(sequence):
            var values: [(String, String)] = []
            for (index, element) in sequence.enumerated() {
                let elementPath = ConfigPath.index(path, index)
                note(elementPath, element.mark)
                if let value = string(element, at: elementPath) { values.append((value, elementPath)) }
            }
            return values
        default:
            report(path, "expected a list, found \(Self.shape(node))")
            return []
        }
    }

    /// One of an enum's raw values, with a suggestion for near misses.
    func choice<E: RawRepresentable & CaseIterable>(_ node: Node, at path: String, as type: E.Type) -> E? where E.RawValue == String {
        guard let text = string(node, at: path) else { return nil }
        return choice(text, at: path, as: type)
    }

    func choice<E: RawRepresentable & CaseIterable>(_ text: String, at path: String, as type: E.Type, what: String = "value") -> E? where E.RawValue == String {
        choice(text, at: path, among: E.allCases.map { ($0.rawValue, $0) }, what: what)
    }

    /// The value `text` names in `table` (compared without case), with a suggestion for near misses.
    func choice<T>(_ text: String, at path: String, among table: [(name: String, value: T)], what: String = "value") -> T? {
        if let hit = table.first(where: { $0.name == text }) ?? table.first(where: { $0.name == text.lowercased() }) {
            return hit.value
        }
        report(path, Self.unknownValue(text, among: table.map(\.name), what: what))
        return nil
    }

    /// `choice` for the value at `key`, when the key is given.
    func choice<T>(_ map: ConfigMap, _ key: String, among table: [(name: String, value: T)], what: String = "value") -> T? {
        guard let node = map[key], let text = string(node, at: map.path(key)) else { return nil }
        return choice(text, at: map.path(key), among: table, what: what)
    }

    func choice<E: RawRepresentable & CaseIterable>(_ map: ConfigMap, _ key: String, as type: E.Type, what: String = "value") -> E? where E.RawValue == String {
        choice(map, key, among: E.allCases.map { ($0.rawValue, $0) }, what: what)
    }

    static func unknownValue(_ text: String, among names: [String], what: String = "value") -> String {
        if let near = suggestion(for: text, among: names) {
            return "unknown \(what) '\(clip(text))' (did you mean '\(near)'?)"
        }
        return "unknown \(what) '\(clip(text))' (expected one of: \(names.joined(separator: ", ")))"
    }

    /// A file path: resolved against the base directory, and checked unless file checks are off.
    func file(_ map: ConfigMap, _ key: String, required: Bool = false, expect: ConfigFileExpectation = .anything) -> String? {
        guard let text = string(map, key, required: required) else { return nil }
        let resolved = ConfigFiles.absolute(text, relativeTo: baseDirectory)
        if checkFiles, let problem = ConfigFiles.problem(with: resolved, expect: expect) {
            report(map.path(key), problem)
        }
        return resolved
    }

    // MARK: Helpers

    static func clip(_ text: String) -> String {
        text.count > 60 ? String(text.prefix(57)) + "..." : text
    }

    /// The candidate closest to `word` when it is close enough to be a likely typo.
    static func suggestion(for word: String, among candidates: [String]) -> String? {
        // The distance table is |word| × |candidate|: a huge value is no typo of a short name.
        guard word.count <= 64 else { return nil }
        let lowered = word.lowercased()
        var best: (String, Int)?
        for candidate in candidates {
            let distance = editDistance(lowered, candidate.lowercased())
            if best == nil || distance < best!.1 { best = (candidate, distance) }
        }
        guard let (candidate, distance) = best else { return nil }
        let limit = max(1, min(3, max(lowered.count, candidate.count) / 3))
        if distance <= limit { return candidate }
        // `cert` for `certificate`, `timeout` for `connect_timeout_ms`, ...
        if lowered.count >= 4, let hit = candidates.first(where: { $0.lowercased().contains(lowered) }) { return hit }
        return nil
    }

    /// Edit distance counting insertions, deletions, substitutions and swaps of neighbours.
    static func editDistance(_ a: String, _ b: String) -> Int {
        let a = Array(a), b = Array(b)
        if a.isEmpty { return b.count }
        if b.isEmpty { return a.count }
        var table = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
        for i in 0...a.count { table[i][0] = i }
        for j in 0...b.count { table[0][j] = j }
        for i in 1...a.count {
            for j in 1...b.count {
                let cost = a[i - 1] == b[j - 1] ? 0 : 1
                var value = min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
                if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] {
                    value = min(value, table[i - 2][j - 2] + 1)
                }
                table[i][j] = value
            }
        }
        return table[a.count][b.count]
    }
}

/// A place in the YAML text (Yams' own Mark has no public initializer).
struct YAMLPosition {
    var line: Int
    var column: Int
}
