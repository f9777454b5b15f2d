import Foundation
import Gateway
import Testing

/// SplitMix64: a fixed seed gives the same documents on every run.
private struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// The reader must turn any text into a configuration or a list of problems: never trap,
/// never hang, never echo a secret. (A trap would end the test process, failing the run.)
@Suite("Config: odd and malformed documents")
struct ConfigOddDocumentTests {
    static let secret = "Zq8-SECRET-do-not-echo"

    /// Parses `yaml`; when it is refused, every problem must have a message and leave out the secret.
    static func check(_ yaml: String, sourceLocation: SourceLocation = #_sourceLocation) -> [ConfigProblem] {
        let problems = ConfigTestSupport.problems(yaml, checkFiles: false)
        for problem in problems {
            #expect(!problem.message.isEmpty, "\(problem)", sourceLocation: sourceLocation)
            #expect(!problem.message.contains(secret), "\(problem)", sourceLocation: sourceLocation)
        }
        return problems
    }

    static let valid = """
        listeners: [{name: main, client_encryption: [plaintext], port: 1433}]
        clusters: [{name: c, endpoints: [{host: h.example, port: 1433}], probe: {identity: sp, interval_ms: 2000}}]
        backend_identities:
          - {name: sp, kind: service_principal, tenant_id: t.example, client_id: 6d0c4a4e-1b8a-4c43-9b9e-3f1f6f1c0a03, client_secret: \(secret)}
        policy: [{name: p, match: any, clusters: ["*"], backend_identity: sp}]
        """

    @Test("numbers that no range holds are refused, never converted with a trap", arguments: [
        "99999999999999999999999999999999", "9223372036854775807", "9223372036854775808", "-9223372036854775808",
        "-9223372036854775809", "1e400", "1.5", "1433.0", ".nan", ".NaN", ".inf", "-.inf", "0x599", "0o2631", "+-1", "--1",
        "1_4_3_3_", "_", "\"\"", "''", "~", "[]", "{}", "!!int 1433", "!!float 1433", "0b101", "１４３３", "1 433",
    ])
    func oddNumbers(value: String) {
        let problems = Self.check(Self.valid.replacingOccurrences(of: "port: 1433}]\nclusters", with: "port: \(value)}]\nclusters")
            .replacingOccurrences(of: "interval_ms: 2000", with: "interval_ms: \(value)"))
        // Either refused at the keys, or (for a value that is a plain number in range) accepted.
        for problem in problems {
            #expect(["listeners.main.port", "clusters.c.probe.interval_ms"].contains(problem.path), "\(problems.listing)")
            #expect(problem.location != nil, "\(problem)")
        }
    }

    @Test("alias bombs are refused after bounded work")
    func aliasBomb() {
        var yaml = "a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
        for level in 1...9 {
            yaml += "a\(level): &a\(level) [" + Array(repeating: "*a\(level - 1)", count: 10).joined(separator: ", ") + "]\n"
        }
        let problems = Self.check(yaml + "listeners: *a9\n")
        #expect(problems.count == 1 && problems.first?.message.hasPrefix("the document expands to more than 1000000 values") == true, "\(problems.listing)")
        // A merge key pointing at an alias bomb: refused the same way.
        #expect(Self.check(yaml + "listeners: [{<<: {x: *a9}}]\n").first?.message.hasPrefix("the document expands") == true)
    }

    @Test("deep nesting is refused by the YAML parser's depth limit")
    func deepNesting() {
        for (open, close) in [("[", "]"), ("{a: ", "}"), ("- ", "")] {
            let depth = 5_000
            let yaml = "listeners: " + (open == "- " ? "\n" + (0..<depth).map { String(repeating: " ", count: $0) + "- " }.joined(separator: "\n") + "x"
                : String(repeating: open, count: depth) + "x" + String(repeating: close, count: depth))
            let problems = Self.check(yaml)
            #expect(!problems.isEmpty, "\(open)")
        }
        // Nesting inside a known key, within the limit, is just the wrong shape.
        let nested = Self.check(Self.valid.replacingOccurrences(of: "port: 1433}]\nclusters", with: "port: [[[[[[[[1]]]]]]]]}]\nclusters"))
        #expect(nested.map(\.path) == ["listeners.main.port"], "\(nested.listing)")
    }

    @Test("shapes that are not configurations", arguments: [
        "", "~", "# only a comment\n", "---\n...\n", "42", "\"text\"", "[1, 2]", "---\na: 1\n---\nb: 2\n", "? [a, b]\n: c\n", "? {a: 1}\n: 2\n",
        "listeners: *undefined\n", "&a [*a]\n", "listeners: !!binary aGVsbG8=\n", "listeners:\n\t- name: tab\n", "\u{FEFF}listeners: []\n",
        "listeners: [\u{0}]\n", "<<: 5\n", "<<: [1, 2]\n", "listeners: [{<<: [*x]}]\n", "\"\(secret)\": 1\n", "\(secret):x\n",
        "listeners: [{name: \"\(String(repeating: "n", count: 100_000))\"}]\n",
        "backend_identities: [{name: a, kind: \"\(String(repeating: "k", count: 200_000))\"}]\n",
        String(repeating: "listeners: []\n", count: 3),
    ])
    func notConfigurations(yaml: String) {
        #expect(!Self.check(yaml).isEmpty)
    }

    @Test("random damage to a valid document gives problems or a configuration, never a trap")
    func mutations() throws {
        let example = try ConfigTestSupport.exampleText()
        var generator = SeededGenerator(state: 0x7D5_6A7E)
        let tokens = ["99999999999999999999999", "-1", ".nan", "1.5", "~", "[", "]", "{", "}", ":", "- ", "&a ", "*a", "<<: *a",
                      "!!binary ", "\"", "'", "\n", "\n  ", "#", ",", "?", "|", ">", "\t", "0x10", "true", "[]", "{}", "\u{0}", "é"]
        let original = Array(example.unicodeScalars)
        var refused = 0
        for _ in 0..<250 {
            var scalars = original
            for _ in 0..<Int.random(in: 1...4, using: &generator) {
                let at = Int.random(in: 0..<scalars.count, using: &generator)
                switch Int.random(in: 0..<3, using: &generator) {
                case 0: scalars.remove(at: at)
                case 1: scalars.insert(contentsOf: tokens.randomElement(using: &generator)!.unicodeScalars, at: at)
                default:
                    let end = min(scalars.count, at + Int.random(in: 1...40, using: &generator))
                    scalars.replaceSubrange(at..<end, with: tokens.randomElement(using: &generator)!.unicodeScalars)
                }
            }
            var text = String.UnicodeScalarView()
            text.append(contentsOf: scalars)
            if !Self.check(String(text)).isEmpty { refused += 1 }
        }
        // Most damaged documents are refused; damage inside the example's many comments is harmless.
        #expect(refused > 100, "only \(refused) of 250 refused")
    }
}
