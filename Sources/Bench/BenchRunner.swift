import Foundation
import Histogram
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

public enum BenchTargetKind: String, CaseIterable, Sendable, Codable {
    case direct, haproxy, tdsgate
    /// tdsgate with the packet dump on for every session (text and pcapng files): the dump's
    /// cost next to `tdsgate`. Not measured unless named in `--targets`.
    case tdsgateDump = "tdsgate-dump"
}

public enum BenchPhase: String, CaseIterable, Sendable, Codable {
    case latency, throughput, logins, memory
}

/// `tdsgate bench` options.
public struct BenchOptions: Sendable {
    public var quick = false
    /// Idle sessions for the memory test (capped by what RLIMIT_NOFILE allows).
    public var sessions = 10_000
    public var jsonPath: String?
    public var packetSize = 8000
    /// PBKDF2 iterations of the proxy logins' password hashes (the demo uses 100,000).
    public var hashIterations = 100_000
    /// tdsgate's `login_cache_seconds` (the default config's 300; 0 = PBKDF2 on every login).
    public var loginCacheSeconds = 300
    /// Whether tdsgate's audit trail records statements (the demo config does).
    public var auditStatements = true
    public var stateDir: String?
    public var targets = Set(BenchTargetKind.allCases).subtracting([.tdsgateDump])
    public var phases = Set(BenchPhase.allCases)
    /// Rows of `tdsgate.rows(N)`; nil picks ~100 MB (or ~10 MB with --quick).
    public var streamRows: Int?
    /// Event-loop threads of tdsgate (System.coreCount in `tdsgate run`) and HAProxy's nbthread.
    public var proxyThreads = System.coreCount
    /// Makes a `pbkdf2-sha256$...` hash (Identity's PasswordHash; passed in by the command).
    public var hashPassword: @Sendable (String, Int) -> String

    public init(hashPassword: @escaping @Sendable (String, Int) -> String) {
        self.hashPassword = hashPassword
    }
}

/// Counts and time bounds of one run: every loop is bounded in both.
struct BenchPlan: Sendable {
    var latency1Queries: Int
    var latency1Seconds: Int64
    var latencyManySessions = 64
    var latencyManyQueries: Int
    var latencyManySeconds: Int64
    var streamRows: Int
    var streamRuns: Int
    /// Sessions streaming at once in the second streaming figure.
    var streamParallel = 2
    var streamSeconds: Int64
    var loginLoops = 8
    var logins: Int
    var loginSeconds: Int64
    var memorySessions: Int
    var memorySeconds: Int64
    var settleMillis: Int64
    /// Login rounds (targets take turns).
    var rounds: Int
    /// Latency rounds (targets take turns).
    var latencyRounds: Int

    static func make(quick: Bool, sessions: Int, streamRows: Int?) -> BenchPlan {
        // A row of tdsgate.rows(N) is 76 bytes of TDS payload.
        if quick {
            return BenchPlan(latency1Queries: 1_000, latency1Seconds: 2, latencyManyQueries: 50, latencyManySeconds: 3,
                             streamRows: streamRows ?? 400_000, streamRuns: 1, streamSeconds: 20,
                             logins: 100, loginSeconds: 5, memorySessions: sessions, memorySeconds: 20, settleMillis: 500, rounds: 1, latencyRounds: 1)
        }
        // Counts per round; five latency rounds, three login rounds.
        return BenchPlan(latency1Queries: 3_000, latency1Seconds: 10, latencyManyQueries: 300, latencyManySeconds: 20,
                         streamRows: streamRows ?? 2_600_000, streamRuns: 5, streamSeconds: 120,
                         logins: 2_400, loginSeconds: 40, memorySessions: sessions, memorySeconds: 900, settleMillis: 2_000, rounds: 3, latencyRounds: 5)
    }
}

func secondsSince(_ start: ContinuousClock.Instant) -> Double {
    let d = ContinuousClock.now - start
    return Double(d.components.seconds) + Double(d.components.attoseconds) / 1e18
}

/// Prints a progress line to stderr.
@Sendable func benchProgress(_ line: String) {
    FileHandle.standardError.write(Data("bench: \(line)\n".utf8))
}

public enum BenchMain {
    /// Starts the deployment, measures, stops every child, prints the table (stdout) and
    /// writes the JSON file when asked. Returns the figures.
    @discardableResult
    public static func run(_ options: BenchOptions) async throws -> BenchResults {
        BenchChildren.shared.installSignalHandlers()
        let limit = FileLimit.raise(wanted: 1 << 20)
        var notes: [String] = []
        let capacity = BenchMath.sessionCapacity(fileLimit: limit.soft)
        var requested = options.sessions
        if options.quick && options.sessions == 10_000 { requested = 200 }
        let sessions = min(requested, capacity)
        if sessions < requested && options.phases.contains(.memory) {
            notes.append(
                "Memory test: \(requested) sessions asked, \(sessions) measured. RLIMIT_NOFILE here is \(limit.soft) (hard limit \(limit.hard)); "
                    + "raising the hard limit needs CAP_SYS_RESOURCE, which this container does not grant even to root. A proxy holds two "
                    + "descriptors per session (client and backend socket), so \(sessions) sessions is the most it can hold after reserving "
                    + "256 descriptors for its own files.")
        }
        let plan = BenchPlan.make(quick: options.quick, sessions: sessions, streamRows: options.streamRows)
        let stateDir = URL(fileURLWithPath: options.stateDir ?? NSTemporaryDirectory() + "tdsgate-bench-\(getpid())")
        benchProgress("state, configs and child logs in \(stateDir.path); RLIMIT_NOFILE \(limit.soft)")
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 2)
        let results: BenchResults
        do {
            let deployment = try await BenchSetup.start(stateDir: stateDir, options: options, sessionCapacity: sessions, group: group,
                                                        progress: benchProgress)
            notes += deployment.notes
            let runner = BenchRunner(plan: plan, group: group,
                                     settings: BenchClientSettings(packetSize: options.packetSize), deployment: deployment)
            let ours: @Sendable () -> Double = {
                ([getpid(), deployment.emulator.pid] + [deployment.haproxy, deployment.tdsgate, deployment.tdsgateDump].compactMap { $0?.pid })
                    .reduce(0) { $0 + (ProcStats.cpuSeconds(pid: $1) ?? 0) }
            }
            let machine0 = ProcStats.machineBusySeconds()
            let ours0 = ours()
            let wall0 = ContinuousClock.now
            var targets = await runner.runAll(phases: options.phases)
            if let machine0, let machine1 = ProcStats.machineBusySeconds() {
                let wall = secondsSince(wall0)
                let foreign = max(0, (machine1 - machine0) - (ours() - ours0))
                let share = foreign / (wall * Double(System.coreCount)) * 100
                notes.append("Other processes on this machine used \(BenchFormat.number(foreign, digits: 0)) CPU-seconds during the \(BenchFormat.number(wall, digits: 0)) s "
                             + "of measurement (\(BenchFormat.number(share, digits: 0))% of the \(System.coreCount) CPUs)"
                             + (share > 10 ? ": the figures are noisier than on an idle machine." : "."))
            }
            for i in targets.indices where deployment.targets[i].kind == .direct {
                targets[i].summary += "; its memory row is the emulator process (a NIO + NIOSSL server too), for reference"
            }
            notes.append("tdsgate has two TLS legs (client<->tdsgate, tdsgate<->emulator) and logs in to the backend with a managed-identity "
                         + "token from the emulated IMDS; HAProxy forwards the client's TLS end to end. Both proxies run \(options.proxyThreads) threads.")
            let derivation = deployment.passwordHashMillis.map { " (one derivation took \(BenchFormat.number($0, digits: 1)) ms of CPU here)" } ?? ""
            notes.append("tdsgate verifies the client's SQL login against a PBKDF2-SHA256 hash (\(options.hashIterations) iterations; the proxy config accepts no fewer than 100,000)\(derivation); "
                         + (options.loginCacheSeconds > 0
                            ? "with login_cache_seconds: \(options.loginCacheSeconds) (the default) a verified password is remembered, so the login loops pay PBKDF2 once per user "
                              + "(--login-cache-seconds 0 measures PBKDF2 on every login). "
                            : "with --login-cache-seconds 0 every login pays it. ")
                         + "The emulator (direct, HAProxy) compares a stored password.")
            notes.append(options.auditStatements
                ? "tdsgate runs the demo's config: the audit trail is on, statements included (decoded, masked and written on the audit thread, not the event loop; --no-audit-statements leaves them out)."
                : "tdsgate runs the demo's config with the audit trail on but statements left out (--no-audit-statements).")
            notes.append("Latency: SELECT 1 round trips, each session a loop of back-to-back queries (1 session: \(plan.latency1Queries) queries or "
                         + "\(plan.latency1Seconds) s; \(plan.latencyManySessions) sessions: \(plan.latencyManyQueries) each or \(plan.latencyManySeconds) s), "
                         + "\(plan.latencyRounds) round(s) with the targets taking turns; figures are medians of the rounds. "
                         + "Streaming: SELECT * FROM tdsgate.rows(\(plan.streamRows)) (\(plan.streamRows * 76 / 1_000_000) MB), \(plan.streamRuns) round(s), "
                         + "median MB/s (MB = 10^6 bytes of TDS payload); then \(plan.streamParallel) sessions at once (sum of their MB/s), which loads both CPUs. Logins: \(plan.logins) per target in \(plan.rounds) round(s) of \(plan.loginLoops) loops.")
            if let direct = targets.first(where: { $0.name == "direct" })?.throughput {
                notes.append(Self.emulatorNote(direct: direct, proxies: targets.filter { $0.name != "direct" }))
            }
            var uts = utsname()
            uname(&uts)
            let kernel = withUnsafeBytes(of: &uts.release) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            let started = ISO8601DateFormatter().string(from: Date())
            results = BenchResults(startedAt: started, quick: options.quick, cpus: System.coreCount, kernel: kernel,
                                   packetSize: options.packetSize, hashIterations: options.hashIterations, proxyThreads: options.proxyThreads,
                                   haproxyVersion: deployment.haproxyVersion, fileLimit: limit.soft, targets: targets, notes: notes)
        } catch {
            benchProgress("failed: \(error); stopping child processes (their logs stay in \(stateDir.path))")
            await BenchChildren.shared.stopAll()
            try? await group.shutdownGracefully()
            throw error
        }
        if BenchChildren.interrupted.load(ordering: .sequentiallyConsistent) {
            // The signal handler stops the children and exits.
            try await Task.sleep(for: .seconds(10))
        }
        benchProgress("stopping child processes")
        await BenchChildren.shared.stopAll()
        try? await group.shutdownGracefully()
        if options.stateDir == nil && results.targets.allSatisfy({ $0.errors.isEmpty }) {
            try? FileManager.default.removeItem(at: stateDir)
        } else {
            benchProgress("configs and child logs kept in \(stateDir.path)")
        }
        print(BenchReport.render(results))
        if let path = options.jsonPath {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try encoder.encode(results).write(to: URL(fileURLWithPath: path))
            benchProgress("figures written to \(path)")
        }
        return results
    }
}

extension BenchMain {
    /// Whether the emulator limited the streaming figures, in words.
    static func emulatorNote(direct: ThroughputFigures, proxies: [TargetFigures]) -> String {
        func list(_ f: (ThroughputFigures) -> Double?) -> String {
            proxies.compactMap { t in t.throughput.flatMap(f).map { "\(t.name) \(BenchFormat.number($0, digits: 0))" } }.joined(separator: ", ")
        }
        let busy = direct.cpuBusy["emulator"] ?? 0
        let single = proxies.compactMap { $0.throughput?.medianMBps }
        let parallel = proxies.compactMap { $0.throughput?.parallelMedianMBps }
        if busy < BenchGoals.emulatorSaturated {
            if single.allSatisfy({ direct.medianMBps > $0 }) {
                return "The emulator is not the bottleneck: direct streaming (\(BenchFormat.number(direct.medianMBps, digits: 0)) MB/s) is faster than "
                    + list { $0.medianMBps } + " MB/s, and the emulator used \(BenchFormat.number(busy * 100, digits: 0))% of a core."
            }
            return "WARNING: direct streaming (\(BenchFormat.number(direct.medianMBps, digits: 0)) MB/s) is not faster than every proxy ("
                + list { $0.medianMBps } + " MB/s): the client may be the bottleneck."
        }
        // A busy emulator limits the proxies only when they come close to its direct rate.
        let nearDirect = single.contains { $0 > direct.medianMBps * 0.85 }
        var text = nearDirect
            ? "One streaming session saturates the emulator (it used \(BenchFormat.number(busy * 100, digits: 0))% of a core streaming direct, one thread per session), "
                + "so the 1-session MB/s of every target sit near the emulator's rate (direct \(BenchFormat.number(direct.medianMBps, digits: 0)), " + list { $0.medianMBps } + ")."
            : "Streaming direct, one session kept the emulator \(BenchFormat.number(busy * 100, digits: 0))% busy at \(BenchFormat.number(direct.medianMBps, digits: 0)) MB/s, "
                + "well above every proxy (" + list { $0.medianMBps } + " MB/s): through a proxy the limit is the proxy and the CPUs it shares, not the emulator."
        if let dp = direct.parallelMedianMBps {
            text += " With \(direct.parallelSessions) sessions at once the emulator streams on \(direct.parallelSessions) threads: direct \(BenchFormat.number(dp, digits: 0)) MB/s vs "
                + list { $0.parallelMedianMBps } + " MB/s"
            text += parallel.allSatisfy({ dp > $0 })
                ? ", so there the emulator is not the bottleneck; the machine's \(System.coreCount) CPUs are (shared by client, proxy and emulator), which makes proxy CPU per byte decide."
                : ". WARNING: direct is not faster even then: the figures do not separate the proxies."
        }
        return text
    }
}

/// Runs the measurements against every target, phase by phase (so that each phase sees the
/// targets under the same conditions).
struct BenchRunner: Sendable {
    let plan: BenchPlan
    let group: any EventLoopGroup
    let settings: BenchClientSettings
    let deployment: BenchDeployment

    var targets: [BenchTarget] { deployment.targets }

    /// Phase by phase; inside a phase the targets take turns round by round, so that a burst
    /// of load from elsewhere on the machine does not land on one target only. Figures are
    /// medians over rounds.
    func runAll(phases: Set<BenchPhase>) async -> [TargetFigures] {
        var figures = targets.map { TargetFigures(name: $0.kind.rawValue, summary: $0.summary) }

        /// Runs `body` for every target in every round; failures are recorded, not fatal.
        func rounds<T>(_ phase: BenchPhase, _ count: Int, _ body: (BenchTarget, Int) async throws -> T) async -> [[T]] {
            var out = [[T]](repeating: [], count: targets.count)
            var failed = Set<Int>()
            for round in 0..<count {
                for (i, t) in targets.enumerated() where !failed.contains(i) {
                    guard t.process.isRunning else {
                        figures[i].errors.append("\(phase.rawValue): \(t.process.name) is not running; its log ends with:\n\(t.process.logTail(lines: 5))")
                        failed.insert(i)
                        continue
                    }
                    do {
                        out[i].append(try await body(t, round))
                    } catch {
                        benchProgress("\(t.kind.rawValue) \(phase.rawValue) failed: \(error)")
                        figures[i].errors.append("\(phase.rawValue): \(error)")
                        failed.insert(i)
                    }
                }
            }
            return out
        }

        if phases.contains(.latency) {
            let one = await rounds(.latency, plan.latencyRounds) { t, r in
                try await latency(t, sessions: 1, queries: plan.latency1Queries, seconds: plan.latency1Seconds, round: r)
            }
            let many = await rounds(.latency, plan.latencyRounds) { t, r in
                try await latency(t, sessions: plan.latencyManySessions, queries: plan.latencyManyQueries, seconds: plan.latencyManySeconds, round: r)
            }
            for i in targets.indices {
                figures[i].latency1 = LatencyFigures(medianOf: one[i])
                figures[i].latency64 = LatencyFigures(medianOf: many[i])
            }
        }
        if phases.contains(.throughput) {
            let t = await throughput(&figures)
            for i in targets.indices { figures[i].throughput = t[i] }
        }
        if phases.contains(.logins) {
            let per = plan.logins / plan.rounds
            let r = await rounds(.logins, plan.rounds) { t, round in try await logins(t, count: per, round: round) }
            for i in targets.indices { figures[i].logins = LoginFigures(rounds: r[i], loops: plan.loginLoops) }
        }
        if phases.contains(.memory) {
            let m = await rounds(.memory, 1) { t, _ in try await memory(t) }
            for i in targets.indices {
                figures[i].memory = m[i].first
                if let p = m[i].first?.problem { figures[i].errors.append("memory: \(p)") }
            }
        }
        return figures
    }

    // MARK: sessions

    /// Opens up to `count` logged-in sessions, `width` logins in flight, until `deadline`.
    /// Stops early after repeated failures; returns what it opened and the first errors.
    func openSessions(_ t: BenchTarget, count: Int, width: Int, deadline: ContinuousClock.Instant) async -> (sessions: [BenchConnection], errors: [String]) {
        let endpoint = t.endpoint
        let settings = self.settings
        let group = self.group
        var opened: [BenchConnection] = []
        opened.reserveCapacity(count)
        var errors: [String] = []
        var failures = 0
        var started = 0
        let maxFailures = max(20, count / 100)
        await withTaskGroup(of: Result<BenchConnection, any Error>.self) { tasks in
            func add() {
                started += 1
                tasks.addTask {
                    do { return .success(try await BenchConnection.open(endpoint, on: group.next(), settings: settings)) } catch { return .failure(error) }
                }
            }
            while started < min(width, count) { add() }
            for await r in tasks {
                switch r {
                case .success(let c): opened.append(c)
                case .failure(let e):
                    failures += 1
                    if errors.count < 3 { errors.append("\(e)") }
                }
                if started < count && failures < maxFailures && ContinuousClock.now < deadline { add() }
            }
        }
        return (opened, errors)
    }

    func closeAll(_ sessions: [BenchConnection]) async {
        await withTaskGroup(of: Void.self) { tasks in
            var i = 0
            for c in sessions {
                tasks.addTask { await c.close() }
                i += 1
                if i % 256 == 0 { await tasks.waitForAll() }
            }
        }
    }

    /// Runs `body` on every connection at once; results in order.
    func forAll<T: Sendable>(_ conns: [BenchConnection], _ body: @escaping @Sendable (BenchConnection) async throws -> T) async throws -> [T] {
        try await withThrowingTaskGroup(of: (Int, T).self) { tasks in
            for (i, c) in conns.enumerated() {
                tasks.addTask { (i, try await body(c)) }
            }
            var out = [T?](repeating: nil, count: conns.count)
            for try await (i, v) in tasks { out[i] = v }
            return out.map { $0! }
        }
    }

    // MARK: CPU accounting

    /// The processes whose CPU time is reported for a target.
    func watched(_ t: BenchTarget) -> [(String, Int32)] {
        var p: [(String, Int32)] = [("bench", getpid()), ("emulator", deployment.emulator.pid)]
        if t.kind != .direct { p.append((t.kind.rawValue, t.process.pid)) }
        return p
    }

    func cpu(_ processes: [(String, Int32)]) -> [String: Double] {
        var out: [String: Double] = [:]
        for (name, pid) in processes { out[name] = ProcStats.cpuSeconds(pid: pid) ?? 0 }
        return out
    }

    static func delta(_ after: [String: Double], _ before: [String: Double]) -> [String: Double] {
        var d: [String: Double] = [:]
        for (k, v) in after { d[k] = v - (before[k] ?? 0) }
        return d
    }

    // MARK: latency

    func latency(_ t: BenchTarget, sessions n: Int, queries: Int, seconds: Int64, round: Int) async throws -> LatencyFigures {
        let (conns, errors) = await openSessions(t, count: n, width: 16, deadline: .now + .seconds(60))
        guard conns.count == n else {
            await closeAll(conns)
            throw BenchClientError("opened \(conns.count) of \(n) sessions: \(errors.joined(separator: "; "))")
        }
        do {
            // Warm-up: code paths, TLS buffers and the allocator on every process.
            _ = try await forAll(conns) { c in _ = try await c.queryLoop("SELECT 1", count: 50, deadline: .now() + .seconds(5)) }
            let processes = watched(t)
            let before = cpu(processes)
            let start = NIODeadline.now()
            let deadline = start + .seconds(seconds)
            let histograms = try await forAll(conns) { c in try await c.queryLoop("SELECT 1", count: queries, deadline: deadline) }
            let elapsed = Double((NIODeadline.now() - start).nanoseconds) / 1e9
            let used = Self.delta(cpu(processes), before)
            var merged = histograms[0]
            for h in histograms.dropFirst() { merged.add(h) }
            await closeAll(conns)
            var f = LatencyFigures(sessions: n, histogram: merged, seconds: elapsed)
            f.cpuMicrosPerQuery = used.mapValues { f.queries > 0 ? $0 * 1e6 / Double(f.queries) : 0 }
            benchProgress("\(t.kind.rawValue): latency round \(round + 1), \(n) session(s): p50 \(BenchFormat.number(f.p50Micros, digits: 0)) us, p99 \(BenchFormat.number(f.p99Micros, digits: 0)) us, \(BenchFormat.number(f.queriesPerSecond, digits: 0)) queries/s (\(f.queries) queries)")
            return f
        } catch {
            await closeAll(conns)
            throw error
        }
    }

    // MARK: throughput

    /// One session per target, kept open; the targets take turns streaming the result.
    func throughput(_ figures: inout [TargetFigures]) async -> [ThroughputFigures?] {
        let rows = plan.streamRows
        let sql = "SELECT * FROM tdsgate.rows(\(rows))"
        let width = plan.streamParallel
        benchProgress("streaming \(sql): \(plan.streamRuns) round(s), targets in turn; one session, then \(width) at once")
        // Each target's sessions stay open across rounds; the first one streams alone.
        var conns = [[BenchConnection]](repeating: [], count: targets.count)
        for (i, t) in targets.enumerated() {
            do {
                for _ in 0..<max(1, width) {
                    let c = try await BenchConnection.open(t.endpoint, on: group.next(), settings: settings)
                    conns[i].append(c)
                    _ = try await c.stream("SELECT * FROM tdsgate.rows(20000)", timeout: .seconds(plan.streamSeconds))
                }
            } catch {
                figures[i].errors.append("throughput: \(error)")
                for c in conns[i] { await c.close() }
                conns[i] = []
            }
        }
        var runs = [[Double]](repeating: [], count: targets.count)
        var parallelRuns = [[Double]](repeating: [], count: targets.count)
        var cpuTotals = [[String: Double]](repeating: [:], count: targets.count)
        var wall = [Double](repeating: 0, count: targets.count)
        var shape = [(payloadBytes: Int, packets: Int)](repeating: (0, 0), count: targets.count)
        let timeout = TimeAmount.seconds(plan.streamSeconds)
        for round in 0..<plan.streamRuns {
            for (i, t) in targets.enumerated() {
                guard let first = conns[i].first else { continue }
                let processes = watched(t)
                let before = cpu(processes)
                let start = NIODeadline.now()
                do {
                    let r = try await first.stream(sql, timeout: timeout)
                    let secs = Double((NIODeadline.now() - start).nanoseconds) / 1e9
                    guard r.rows == UInt64(rows) else {
                        throw BenchClientError("the stream ended after \(r.rows) rows, expected \(rows)")
                    }
                    for (k, v) in Self.delta(cpu(processes), before) { cpuTotals[i][k, default: 0] += v }
                    wall[i] += secs
                    shape[i] = (r.payloadBytes, r.packets)
                    runs[i].append(Double(r.payloadBytes) / 1e6 / secs)
                    var line = "\(t.kind.rawValue): stream round \(round + 1): \(BenchFormat.number(Double(r.payloadBytes) / 1e6, digits: 1)) MB in "
                        + "\(BenchFormat.number(secs, digits: 2)) s = \(BenchFormat.number(runs[i].last, digits: 0)) MB/s"
                    if conns[i].count > 1 {
                        let pStart = NIODeadline.now()
                        let results = try await forAll(conns[i]) { c in try await c.stream(sql, timeout: timeout) }
                        let pSecs = Double((NIODeadline.now() - pStart).nanoseconds) / 1e9
                        guard results.allSatisfy({ $0.rows == UInt64(rows) }) else {
                            throw BenchClientError("a parallel stream ended early")
                        }
                        let bytes = results.reduce(0) { $0 + $1.payloadBytes }
                        parallelRuns[i].append(Double(bytes) / 1e6 / pSecs)
                        line += "; \(conns[i].count) at once: \(BenchFormat.number(parallelRuns[i].last, digits: 0)) MB/s"
                    }
                    benchProgress(line)
                } catch {
                    figures[i].errors.append("throughput: \(error)")
                    for c in conns[i] { await c.close() }
                    conns[i] = []
                }
            }
        }
        for cs in conns { for c in cs { await c.close() } }
        return targets.indices.map { i in
            guard !runs[i].isEmpty else { return nil }
            let gb = Double(shape[i].payloadBytes) * Double(runs[i].count) / 1e9
            var f = ThroughputFigures(rows: rows, payloadBytes: shape[i].payloadBytes, packets: shape[i].packets, runsMBps: runs[i],
                                      cpuSecondsPerGB: cpuTotals[i].mapValues { $0 / gb },
                                      cpuBusy: cpuTotals[i].mapValues { wall[i] > 0 ? $0 / wall[i] : 0 })
            if !parallelRuns[i].isEmpty {
                f.parallelSessions = width
                f.parallelRunsMBps = parallelRuns[i]
                f.parallelMedianMBps = BenchMath.median(parallelRuns[i])
            }
            return f
        }
    }

    // MARK: logins

    /// One round: `count` logins spread over the loops.
    func logins(_ t: BenchTarget, count: Int, round: Int) async throws -> LoginRound {
        let loops = plan.loginLoops
        let endpoint = t.endpoint
        let settings = self.settings
        let group = self.group
        // Warm-up (tdsgate fetches its backend token on its first login).
        for _ in 0..<3 {
            let c = try await BenchConnection.open(endpoint, on: group.next(), settings: settings)
            await c.close()
        }
        let processes = watched(t)
        let before = cpu(processes)
        let start = ContinuousClock.now
        let deadline = start + .seconds(plan.loginSeconds)
        let counts = BenchMath.split(count, into: loops)
        let perLoop = await withTaskGroup(of: (Histogram<UInt64>, Int, String?).self) { tasks in
            for n in counts {
                tasks.addTask {
                    var h = Histogram<UInt64>(highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)
                    h.autoResize = true
                    var failures = 0
                    var firstError: String?
                    for _ in 0..<n {
                        guard ContinuousClock.now < deadline, failures < 10 else { break }
                        let t0 = NIODeadline.now()
                        do {
                            let c = try await BenchConnection.open(endpoint, on: group.next(), settings: settings)
                            await c.close()
                            _ = h.record(UInt64((NIODeadline.now() - t0).nanoseconds))
                        } catch {
                            failures += 1
                            if firstError == nil { firstError = "\(error)" }
                        }
                    }
                    return (h, failures, firstError)
                }
            }
            var all: [(Histogram<UInt64>, Int, String?)] = []
            for await r in tasks { all.append(r) }
            return all
        }
        let secs = secondsSince(start)
        let cpuDelta = Self.delta(cpu(processes), before)
        var merged = perLoop[0].0
        for (h, _, _) in perLoop.dropFirst() { merged.add(h) }
        let failures = perLoop.reduce(0) { $0 + $1.1 }
        let firstError = perLoop.compactMap { $0.2 }.first
        guard merged.totalCount > 0 else { throw BenchClientError("no login succeeded: \(firstError ?? "?")") }
        let r = LoginRound(histogram: merged, failures: failures, firstError: firstError, seconds: secs, cpu: cpuDelta)
        benchProgress("\(t.kind.rawValue): logins round \(round + 1): \(merged.totalCount) in \(BenchFormat.number(secs, digits: 1)) s = \(BenchFormat.number(Double(merged.totalCount) / secs, digits: 0))/s, p50 \(BenchFormat.number(Double(merged.valueAtPercentile(50)) / 1e6, digits: 1)) ms\(failures > 0 ? ", \(failures) failed: \(firstError ?? "")" : "")")
        return r
    }

    // MARK: memory

    func memory(_ t: BenchTarget) async throws -> MemoryFigures {
        let n = plan.memorySessions
        let pid = t.process.pid
        benchProgress("\(t.kind.rawValue): memory, \(n) idle logged-in sessions (RSS of \(t.process.name), pid \(pid))")
        // Warm-up: the first sessions grow pools and caches that later ones reuse.
        let (warm, _) = await openSessions(t, count: min(64, n), width: 16, deadline: .now + .seconds(60))
        await closeAll(warm)
        try await Task.sleep(for: .milliseconds(plan.settleMillis))
        guard let before = ProcStats.rssKiB(pid: pid) else { throw BenchClientError("cannot read /proc/\(pid)/status") }
        let start = ContinuousClock.now
        let (conns, errors) = await openSessions(t, count: n, width: 32, deadline: start + .seconds(plan.memorySeconds))
        let openSecs = secondsSince(start)
        benchProgress("\(t.kind.rawValue): \(conns.count) sessions open in \(BenchFormat.number(openSecs, digits: 1)) s; settling")
        try await Task.sleep(for: .milliseconds(plan.settleMillis))
        // The sessions are alive and logged in: a query on a spread of them.
        var problem: String? = conns.count < n ? "opened \(conns.count) of \(n): \(errors.first ?? "time bound reached")" : nil
        let stride = max(1, conns.count / 16)
        for i in Swift.stride(from: 0, to: conns.count, by: stride) {
            do { _ = try await conns[i].query("SELECT 1") } catch {
                problem = (problem.map { $0 + "; " } ?? "") + "session \(i) did not answer: \(error)"
                break
            }
        }
        let after = ProcStats.rssKiB(pid: pid) ?? before
        let fds = ProcStats.openFiles(pid: pid)
        await closeAll(conns)
        try await Task.sleep(for: .milliseconds(plan.settleMillis))
        let afterClose = ProcStats.rssKiB(pid: pid) ?? after
        let f = MemoryFigures(process: t.process.name, requestedSessions: n, sessions: conns.count, rssBeforeKiB: before, rssAfterKiB: after,
                              rssAfterCloseKiB: afterClose, openSeconds: openSecs, problem: problem)
        benchProgress("\(t.kind.rawValue): RSS \(before / 1024) -> \(after / 1024) MiB (\(fds.map { "\($0) fds" } ?? "")) = \(BenchFormat.number(f.bytesPerSession / 1024, digits: 1)) KiB per session; \(afterClose / 1024) MiB after closing")
        return f
    }
}

/// One round of the login test, before aggregation.
struct LoginRound: Sendable {
    var histogram: Histogram<UInt64>
    var failures: Int
    var firstError: String?
    var seconds: Double
    var cpu: [String: Double]
}

extension LoginFigures {
    /// Rounds summed: logins per second over the rounds' total time, percentiles of all logins.
    init?(rounds: [LoginRound], loops: Int) {
        guard var merged = rounds.first?.histogram else { return nil }
        for r in rounds.dropFirst() { merged.add(r.histogram) }
        let secs = rounds.reduce(0) { $0 + $1.seconds }
        let n = Int(merged.totalCount)
        var cpu: [String: Double] = [:]
        for r in rounds { for (k, v) in r.cpu { cpu[k, default: 0] += v } }
        self.init(loops: loops, logins: n, failures: rounds.reduce(0) { $0 + $1.failures }, seconds: secs,
                  perSecond: secs > 0 ? Double(n) / secs : 0,
                  p50Millis: Double(merged.valueAtPercentile(50)) / 1e6, p99Millis: Double(merged.valueAtPercentile(99)) / 1e6,
                  cpuMillisPerLogin: cpu.mapValues { n > 0 ? $0 * 1000 / Double(n) : 0 },
                  roundsPerSecond: rounds.map { $0.seconds > 0 ? Double($0.histogram.totalCount) / $0.seconds : 0 })
    }
}
