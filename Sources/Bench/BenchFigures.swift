import Histogram

/// Round-trip latency of one query at a given concurrency.
public struct LatencyFigures: Codable, Sendable, Equatable {
    public var sessions: Int
    public var queries: Int
    public var seconds: Double
    public var p50Micros: Double
    public var p99Micros: Double
    public var meanMicros: Double
    public var maxMicros: Double
    public var queriesPerSecond: Double
    /// Per-round p50s (the figures above are medians over rounds).
    public var roundsP50Micros: [Double] = []
    /// CPU microseconds per query spent by each process (bench, emulator, the proxy): unlike
    /// wall-clock latency, this barely depends on what else runs on the machine.
    public var cpuMicrosPerQuery: [String: Double] = [:]

    public init(sessions: Int, queries: Int, seconds: Double, p50Micros: Double, p99Micros: Double, meanMicros: Double,
                maxMicros: Double, queriesPerSecond: Double) {
        self.sessions = sessions
        self.queries = queries
        self.seconds = seconds
        self.p50Micros = p50Micros
        self.p99Micros = p99Micros
        self.meanMicros = meanMicros
        self.maxMicros = maxMicros
        self.queriesPerSecond = queriesPerSecond
    }

    /// Medians over rounds (counts and times summed); nil without rounds.
    public init?(medianOf rounds: [LatencyFigures]) {
        guard let first = rounds.first else { return nil }
        self.init(sessions: first.sessions, queries: rounds.reduce(0) { $0 + $1.queries }, seconds: rounds.reduce(0) { $0 + $1.seconds },
                  p50Micros: BenchMath.median(rounds.map(\.p50Micros)), p99Micros: BenchMath.median(rounds.map(\.p99Micros)),
                  meanMicros: BenchMath.median(rounds.map(\.meanMicros)), maxMicros: rounds.map(\.maxMicros).max() ?? 0,
                  queriesPerSecond: BenchMath.median(rounds.map(\.queriesPerSecond)))
        roundsP50Micros = rounds.map(\.p50Micros)
        var cpu: [String: Double] = [:]
        for r in rounds { for (k, v) in r.cpuMicrosPerQuery { cpu[k, default: 0] += v * Double(r.queries) } }
        let total = Double(queries)
        cpuMicrosPerQuery = cpu.mapValues { total > 0 ? $0 / total : 0 }
    }

    /// From a histogram of nanoseconds.
    init(sessions: Int, histogram h: Histogram<UInt64>, seconds: Double) {
        self.init(sessions: sessions, queries: Int(h.totalCount), seconds: seconds,
                  p50Micros: Double(h.valueAtPercentile(50)) / 1000, p99Micros: Double(h.valueAtPercentile(99)) / 1000,
                  meanMicros: h.mean / 1000, maxMicros: Double(h.max) / 1000,
                  queriesPerSecond: seconds > 0 ? Double(h.totalCount) / seconds : 0)
    }
}

/// Streaming a large result set.
public struct ThroughputFigures: Codable, Sendable, Equatable {
    public var rows: Int
    /// TDS payload bytes of one result (packet headers excluded).
    public var payloadBytes: Int
    public var packets: Int
    /// MB/s (10^6 bytes) of TDS payload, one per run.
    public var runsMBps: [Double]
    public var medianMBps: Double
    /// CPU seconds per GB (10^9 payload bytes) spent by each process during the runs.
    public var cpuSecondsPerGB: [String: Double]
    /// CPU seconds per wall second of each process during the runs (1.0 = one core busy):
    /// the emulator streams one session on one thread, so near 1.0 it is the bottleneck.
    public var cpuBusy: [String: Double]
    /// The same result streamed by several sessions at once: total MB/s per round. The
    /// emulator then streams on several threads, and the machine's CPUs become the limit.
    public var parallelSessions = 0
    public var parallelRunsMBps: [Double] = []
    public var parallelMedianMBps: Double?

    public init(rows: Int, payloadBytes: Int, packets: Int, runsMBps: [Double], cpuSecondsPerGB: [String: Double],
                cpuBusy: [String: Double]) {
        self.rows = rows
        self.payloadBytes = payloadBytes
        self.packets = packets
        self.runsMBps = runsMBps
        self.medianMBps = BenchMath.median(runsMBps)
        self.cpuSecondsPerGB = cpuSecondsPerGB
        self.cpuBusy = cpuBusy
    }
}

/// Connect + PRELOGIN + TLS + LOGIN7 + close, several loops at once.
public struct LoginFigures: Codable, Sendable, Equatable {
    public var loops: Int
    public var logins: Int
    public var failures: Int
    public var seconds: Double
    public var perSecond: Double
    public var p50Millis: Double
    public var p99Millis: Double
    /// CPU milliseconds per login spent by each process.
    public var cpuMillisPerLogin: [String: Double]
    public var roundsPerSecond: [Double]
}

/// Resident memory of a process before and after holding `sessions` idle logged-in sessions.
public struct MemoryFigures: Codable, Sendable, Equatable {
    public var process: String
    public var requestedSessions: Int
    public var sessions: Int
    public var rssBeforeKiB: Int
    public var rssAfterKiB: Int
    public var rssAfterCloseKiB: Int
    public var bytesPerSession: Double
    public var openSeconds: Double
    public var problem: String?

    public init(process: String, requestedSessions: Int, sessions: Int, rssBeforeKiB: Int, rssAfterKiB: Int,
                rssAfterCloseKiB: Int, openSeconds: Double, problem: String?) {
        self.process = process
        self.requestedSessions = requestedSessions
        self.sessions = sessions
        self.rssBeforeKiB = rssBeforeKiB
        self.rssAfterKiB = rssAfterKiB
        self.rssAfterCloseKiB = rssAfterCloseKiB
        self.bytesPerSession = sessions > 0 ? Double(rssAfterKiB - rssBeforeKiB) * 1024 / Double(sessions) : 0
        self.openSeconds = openSeconds
        self.problem = problem
    }
}

/// Everything measured for one target.
public struct TargetFigures: Codable, Sendable, Equatable {
    public var name: String
    public var summary: String
    public var latency1: LatencyFigures?
    public var latency64: LatencyFigures?
    public var throughput: ThroughputFigures?
    public var logins: LoginFigures?
    public var memory: MemoryFigures?
    public var errors: [String]

    public init(name: String, summary: String) {
        self.name = name
        self.summary = summary
        self.errors = []
    }
}

/// One bench run.
public struct BenchResults: Codable, Sendable, Equatable {
    public var startedAt: String
    public var quick: Bool
    public var cpus: Int
    public var kernel: String
    public var packetSize: Int
    public var hashIterations: Int
    public var proxyThreads: Int
    public var haproxyVersion: String?
    public var fileLimit: Int
    public var targets: [TargetFigures]
    public var notes: [String]

    public init(startedAt: String, quick: Bool, cpus: Int, kernel: String, packetSize: Int, hashIterations: Int,
                proxyThreads: Int, haproxyVersion: String?, fileLimit: Int, targets: [TargetFigures], notes: [String]) {
        self.startedAt = startedAt
        self.quick = quick
        self.cpus = cpus
        self.kernel = kernel
        self.packetSize = packetSize
        self.hashIterations = hashIterations
        self.proxyThreads = proxyThreads
        self.haproxyVersion = haproxyVersion
        self.fileLimit = fileLimit
        self.targets = targets
        self.notes = notes
    }

    public func target(_ name: String) -> TargetFigures? {
        targets.first { $0.name == name }
    }
}

/// Small arithmetic helpers (pure, unit-tested).
public enum BenchMath {
    public static func median(_ values: [Double]) -> Double {
        guard !values.isEmpty else { return 0 }
        let s = values.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    /// a / b, nil when either is missing or b is not positive.
    public static func ratio(_ a: Double?, _ b: Double?) -> Double? {
        guard let a, let b, b > 0 else { return nil }
        return a / b
    }

    /// How many idle sessions a proxy can hold with `fileLimit` descriptors: two per session
    /// (client and backend sockets) after `reserve` for its own files.
    public static func sessionCapacity(fileLimit: Int, reserve: Int = 256) -> Int {
        max(0, (fileLimit - reserve) / 2)
    }

    /// Splits `total` into `parts` counts that differ by at most one.
    public static func split(_ total: Int, into parts: Int) -> [Int] {
        guard parts > 0 else { return [] }
        return (0..<parts).map { total / parts + ($0 < total % parts ? 1 : 0) }
    }
}
