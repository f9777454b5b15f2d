import ArgumentParser
import Bench
import Identity

/// `tdsgate bench`: direct vs HAProxy (TCP mode) vs tdsgate, against the emulated deployment,
/// each in its own process. Prints one comparison table.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmark tdsgate against a direct connection and HAProxy in TCP mode (latency, streaming, logins, memory).",
        discussion: """
            Starts `tdsgate emulate`, HAProxy (TCP mode) and `tdsgate run` as child processes, all in front of the \
            emulated east-primary node, and drives them from this process with full TLS (TDS 7.4, TLS 1.2 inside \
            PRELOGIN). Progress goes to stderr, the table to stdout. Child processes are stopped at the end, on \
            error and on Ctrl-C.
            """
    )

    @Flag(help: "Small counts (finishes in under a minute): a smoke check, not figures to quote.")
    var quick = false

    @Option(help: "Idle sessions for the memory test (default 10000, or 200 with --quick); capped by RLIMIT_NOFILE.")
    var sessions: Int?

    @Option(help: "Also write the figures as JSON to this file.")
    var json: String?

    @Option(help: "TDS packet size the client asks for in LOGIN7.")
    var packetSize = 8000

    /// The proxy config refuses hashes below 100,000 iterations (Gateway's PasswordHashFormat).
    static let minimumConfigIterations = 100_000

    @Option(help: "PBKDF2 iterations of the proxy logins' password hashes (the demo uses 100000, the least the proxy config accepts).")
    var hashIterations = 100_000

    @Flag(inversion: .prefixedNo, help: "Whether tdsgate's audit trail records every statement, as the demo config does.")
    var auditStatements = true

    @Option(help: "tdsgate's login_cache_seconds: how long a verified password spares PBKDF2 (0 = every login pays it).")
    var loginCacheSeconds = 300

    @Option(help: "Rows of SELECT * FROM tdsgate.rows(N) in the streaming test (default 2600000 = ~200 MB, 400000 = ~30 MB with --quick).")
    var streamRows: Int?

    @Option(help: "Targets to measure, comma-separated: direct,haproxy,tdsgate.")
    var targets = "direct,haproxy,tdsgate"

    @Option(help: "Phases to run, comma-separated: latency,throughput,logins,memory.")
    var phases = "latency,throughput,logins,memory"

    @Option(help: "Folder for configs, certificates and the child processes' logs (default: a temporary folder).")
    var stateDir: String?

    func validate() throws {
        if let sessions, sessions < 1 { throw ValidationError("--sessions must be at least 1") }
        guard (512...32_767).contains(packetSize) else { throw ValidationError("--packet-size must be between 512 and 32767") }
        let least = max(PasswordHash.minimumIterations, Self.minimumConfigIterations)
        guard hashIterations >= least, hashIterations <= PasswordHash.maximumIterations else {
            throw ValidationError("--hash-iterations must be between \(least) and \(PasswordHash.maximumIterations)")
        }
        if let streamRows, streamRows < 1 { throw ValidationError("--stream-rows must be at least 1") }
        guard (0...86_400).contains(loginCacheSeconds) else { throw ValidationError("--login-cache-seconds must be between 0 and 86400") }
        _ = try parsedTargets()
        _ = try parsedPhases()
    }

    private func parsedTargets() throws -> Set<BenchTargetKind> {
        try Set(targets.split(separator: ",").map { name in
            guard let k = BenchTargetKind(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("unknown target '\(name)' (direct, haproxy, tdsgate, tdsgate-dump)")
            }
            return k
        })
    }

    private func parsedPhases() throws -> Set<BenchPhase> {
        try Set(phases.split(separator: ",").map { name in
            guard let p = BenchPhase(rawValue: name.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("unknown phase '\(name)' (latency, throughput, logins, memory)")
            }
            return p
        })
    }

    func run() async throws {
        var options = BenchOptions(hashPassword: { password, iterations in
            PasswordHash.make(password: password, iterations: iterations)
        })
        options.quick = quick
        options.sessions = sessions ?? (quick ? 200 : 10_000)
        options.jsonPath = json
        options.packetSize = packetSize
        options.hashIterations = hashIterations
        options.loginCacheSeconds = loginCacheSeconds
        options.auditStatements = auditStatements
        options.streamRows = streamRows
        options.stateDir = stateDir
        options.targets = try parsedTargets()
        // Direct is the baseline of every ratio and of the emulator check.
        options.targets.insert(.direct)
        options.phases = try parsedPhases()
        try await BenchMain.run(options)
    }
}
