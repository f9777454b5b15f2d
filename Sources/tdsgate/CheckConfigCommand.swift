import ArgumentParser
import Foundation
import Gateway

/// `tdsgate check-config FILE`: validates a configuration and lists every problem.
struct CheckConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check-config",
        abstract: "Validate a tdsgate configuration file and list every problem in it.",
        discussion: """
            Prints each problem as `FILE:line:column: path: message`, one a line (for example \
            `tdsgate.yaml:14:7: clusters.orders.probe.interval_ms: must be between 100 and 600000, found 5`), \
            and exits with status 1 when there is any. Prints a short summary when the file is valid.
            """
    )

    @Argument(help: "The configuration file (YAML).")
    var file: String

    @Flag(help: "Skip the checks that files named in the configuration exist and hold what they should (for a file meant for another machine).")
    var skipFileChecks = false

    func run() throws {
        let config: GatewayConfig
        do {
            config = try GatewayConfig.load(path: file, checkFiles: !skipFileChecks)
        } catch {
            for problem in error.problems {
                print(problem.description)
            }
            let count = error.problems.count
            FileHandle.standardError.write(Data("\(count) problem\(count == 1 ? "" : "s") in \(file)\n".utf8))
            throw ExitCode.failure
        }
        print(Self.summary(of: config))
    }

    static func summary(of config: GatewayConfig) -> String {
        func plural(_ count: Int, _ word: String) -> String { "\(count) \(word)\(count == 1 ? "" : "s")" }
        var lines = ["\(config.sourcePath ?? "configuration"): OK"]
        let listeners = config.listeners.map { listener in
            let modes = ClientEncryption.allCases.filter { listener.clientEncryption.contains($0) }.map(\.rawValue)
            var notes = [modes.joined(separator: "+")]
            if listener.entra != nil { notes.append("entra") }
            if let cluster = listener.cluster { notes.append("→ \(cluster)") }
            return "\(listener.name) \(listener.address):\(listener.port) (\(notes.joined(separator: ", ")))"
        }
        lines.append("  listeners: \(listeners.joined(separator: "; "))")
        let clusters = config.clusters.map { cluster in
            let databases = cluster.databases.isEmpty ? "any database" : cluster.databases.joined(separator: ", ")
            return "\(cluster.name) (\(plural(cluster.endpoints.count, "endpoint")), \(databases)\(cluster.strict ? ", strict" : ""))"
        }
        lines.append("  clusters: \(clusters.joined(separator: "; "))")
        if !config.backendIdentities.isEmpty {
            lines.append("  backend identities: " + config.backendIdentities.map { "\($0.name) (\($0.spec.kind.rawValue))" }.joined(separator: "; "))
        }
        lines.append("  \(plural(config.logins.count, "login")), \(plural(config.policy.count, "policy rule"))")
        if let admin = config.admin {
            lines.append("  admin: \(admin.address):\(admin.port)\(admin.bearerTokenFile == nil ? "" : " (bearer token)")")
        }
        return lines.joined(separator: "\n")
    }
}
