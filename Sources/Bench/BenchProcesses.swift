import Dispatch
import Foundation
import NIOCore
import NIOPosix
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// One child process of the bench (the emulator, tdsgate, HAProxy).
final class BenchChild: @unchecked Sendable {
    let name: String
    let logFile: String
    private let process: Process

    init(name: String, logFile: String, process: Process) {
        self.name = name
        self.logFile = logFile
        self.process = process
    }

    var pid: Int32 { process.processIdentifier }
    var isRunning: Bool { process.isRunning }

    /// The last lines of the child's log, for error messages.
    func logTail(lines: Int = 15) -> String {
        guard let text = try? String(contentsOfFile: logFile, encoding: .utf8) else { return "(no log)" }
        return text.split(separator: "\n", omittingEmptySubsequences: false).suffix(lines).joined(separator: "\n")
    }
}

/// A thread that lives as long as the bench and starts every child. Children run under
/// `setpriv --pdeathsig KILL`, and PR_SET_PDEATHSIG fires when the *thread* that spawned
/// the child exits: pool threads come and go (and the main actor is not the main thread
/// under an async command), so spawning happens on this thread, which never exits.
final class SpawnerThread: @unchecked Sendable {
    static let shared = SpawnerThread()
    private let condition = NSCondition()
    private var jobs: [() -> Void] = []

    private init() {
        let thread = Thread { [self] in self.loop() }
        thread.name = "tdsgate-bench-spawner"
        thread.start()
    }

    private func loop() {
        while true {
            condition.lock()
            while jobs.isEmpty { condition.wait() }
            let job = jobs.removeFirst()
            condition.unlock()
            job()
        }
    }

    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
            condition.lock()
            jobs.append { continuation.resume(with: Result { try body() }) }
            condition.signal()
            condition.unlock()
        }
    }
}

/// Every child the bench started, so that they are stopped at the end, on error and on
/// Ctrl-C. Children are also started under `setpriv --pdeathsig KILL` (from
/// `SpawnerThread`), so the kernel kills them if the bench itself dies without cleaning up.
final class BenchChildren: Sendable {
    static let shared = BenchChildren()
    private let children = Mutex<[BenchChild]>([])
    /// Set by a signal: the run is abandoned, no table is printed.
    static let interrupted = Atomic<Bool>(false)

    /// Set once, from `installSignalHandlers`; keeps the sources alive.
    nonisolated(unsafe) private static var signalSources: [any DispatchSourceSignal] = []

    /// Starts `executable` with its output going to `logFile`.
    func launch(name: String, executable: String, arguments: [String], logFile: String) async throws -> BenchChild {
        let child = try await SpawnerThread.shared.run { () throws -> BenchChild in
            let p = Process()
            if let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"].first(where: { FileManager.default.isExecutableFile(atPath: $0) }) {
                p.executableURL = URL(fileURLWithPath: setpriv)
                p.arguments = ["--pdeathsig", "KILL", "--", executable] + arguments
            } else {
                p.executableURL = URL(fileURLWithPath: executable)
                p.arguments = arguments
            }
            _ = FileManager.default.createFile(atPath: logFile, contents: nil)
            let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logFile))
            p.standardOutput = log
            p.standardError = log
            p.standardInput = FileHandle.nullDevice
            try p.run()
            return BenchChild(name: name, logFile: logFile, process: p)
        }
        children.withLock { $0.append(child) }
        return child
    }

    /// SIGTERM, then SIGKILL after `grace`; bounded in time.
    func stop(_ child: BenchChild, grace: Duration = .seconds(5)) async {
        guard child.isRunning else { return }
        kill(child.pid, SIGTERM)
        let deadline = ContinuousClock.now + grace
        while child.isRunning && ContinuousClock.now < deadline {
            try? await Task.sleep(for: .milliseconds(50))
        }
        if child.isRunning {
            kill(child.pid, SIGKILL)
            let hard = ContinuousClock.now + .seconds(2)
            while child.isRunning && ContinuousClock.now < hard {
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        children.withLock { $0.removeAll { $0 === child } }
    }

    func stopAll() async {
        // Proxies first, the emulator (started first) last.
        for child in children.withLock({ $0 }).reversed() {
            await stop(child)
        }
    }

    /// From a signal handler's queue: no awaiting, just signals.
    func killAllNow() {
        let all = children.withLock { $0 }
        for c in all where c.isRunning { kill(c.pid, SIGTERM) }
        usleep(300_000)
        for c in all where c.isRunning { kill(c.pid, SIGKILL) }
    }

    /// Ctrl-C, SIGTERM and SIGHUP stop every child and exit.
    func installSignalHandlers() {
        var sources: [any DispatchSourceSignal] = []
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            signal(sig, SIG_IGN)
            let s = DispatchSource.makeSignalSource(signal: sig, queue: DispatchQueue(label: "tdsgate.bench.signals"))
            s.setEventHandler { [self] in
                Self.interrupted.store(true, ordering: .sequentiallyConsistent)
                FileHandle.standardError.write(Data("bench: signal \(sig), stopping child processes\n".utf8))
                killAllNow()
                exit(128 + sig)
            }
            s.resume()
            sources.append(s)
        }
        Self.signalSources += sources
    }
}

/// Reads /proc for a process's resident memory and CPU time.
enum ProcStats {
    /// VmRSS in KiB.
    static func rssKiB(pid: Int32) -> Int? {
        guard let text = readProcFile("/proc/\(pid)/status") else { return nil }
        return statusField("VmRSS", in: text)
    }

    /// /proc files report a size of 0, so they are read until EOF rather than by size.
    static func readProcFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var data: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while data.count < 1 << 20 {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            data += chunk[0..<n]
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// A "Name:   1234 kB" field of /proc/PID/status.
    static func statusField(_ name: String, in text: String) -> Int? {
        for line in text.split(separator: "\n") where line.hasPrefix(name + ":") {
            let digits = line.dropFirst(name.count + 1).split(whereSeparator: { $0 == " " || $0 == "\t" }).first
            return digits.flatMap { Int($0) }
        }
        return nil
    }

    /// User + system CPU seconds (/proc/PID/stat fields 14 and 15).
    static func cpuSeconds(pid: Int32) -> Double? {
        guard let text = readProcFile("/proc/\(pid)/stat") else { return nil }
        return cpuSeconds(statLine: text, ticksPerSecond: Double(sysconf(Int32(_SC_CLK_TCK))))
    }

    static func cpuSeconds(statLine: String, ticksPerSecond: Double) -> Double? {
        // The command name (field 2) may hold spaces: count fields after its closing ')'.
        guard let close = statLine.lastIndex(of: ")") else { return nil }
        let fields = statLine[statLine.index(after: close)...].split(separator: " ")
        // fields[0] is field 3 (state); utime is field 14, stime field 15.
        guard fields.count > 12, let u = Double(fields[11]), let s = Double(fields[12]), ticksPerSecond > 0 else { return nil }
        return (u + s) / ticksPerSecond
    }

    /// Busy CPU seconds of the whole machine since boot (/proc/stat: user, nice, system, irq,
    /// softirq, steal), to tell how much other processes used during a run.
    static func machineBusySeconds() -> Double? {
        guard let text = readProcFile("/proc/stat"), let line = text.split(separator: "\n").first, line.hasPrefix("cpu ") else { return nil }
        let f = line.split(separator: " ").dropFirst().compactMap { Double($0) }
        guard f.count >= 8 else { return nil }
        let ticks = Double(sysconf(Int32(_SC_CLK_TCK)))
        return (f[0] + f[1] + f[2] + f[5] + f[6] + f[7]) / ticks
    }

    static func openFiles(pid: Int32) -> Int? {
        (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd"))?.count
    }
}

/// RLIMIT_NOFILE: every proxied session costs the proxy two descriptors.
enum FileLimit {
    /// Raises the soft limit to the hard limit (and the hard limit to `wanted` when the
    /// process may: root with CAP_SYS_RESOURCE). Children inherit the result.
    static func raise(wanted: Int) -> (soft: Int, hard: Int) {
        var rl = rlimit()
        guard getrlimit(resourceNOFILE, &rl) == 0 else { return (0, 0) }
        if Int(rl.rlim_max) < wanted {
            var up = rlimit(rlim_cur: rlim_t(wanted), rlim_max: rlim_t(wanted))
            if setrlimit(resourceNOFILE, &up) == 0 { rl = up }
        }
        if rl.rlim_cur < rl.rlim_max {
            var up = rlimit(rlim_cur: rl.rlim_max, rlim_max: rl.rlim_max)
            if setrlimit(resourceNOFILE, &up) == 0 { rl = up }
        }
        _ = getrlimit(resourceNOFILE, &rl)
        return (Int(rl.rlim_cur), Int(rl.rlim_max))
    }

    #if canImport(Glibc)
    private static let resourceNOFILE = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    #else
    private static let resourceNOFILE = RLIMIT_NOFILE
    #endif
}

enum BenchWait {
    /// Polls until something accepts TCP connections on host:port, bounded by `timeout`.
    static func forPort(host: String, port: Int, timeout: Duration, child: BenchChild?, group: any EventLoopGroup) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let child, !child.isRunning {
                throw BenchSetupError("\(child.name) exited during start-up; its log (\(child.logFile)) ends with:\n\(child.logTail())")
            }
            if let ch = try? await ClientBootstrap(group: group).connectTimeout(.milliseconds(500)).connect(host: host, port: port).get() {
                try? await ch.close()
                return
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BenchSetupError("nothing listens on \(host):\(port) after \(timeout)" + (child.map { "; \($0.name)'s log ends with:\n\($0.logTail())" } ?? ""))
    }

    /// Polls until `path` exists, bounded by `timeout`.
    static func forFile(_ path: String, timeout: Duration, child: BenchChild) async throws {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if FileManager.default.fileExists(atPath: path) { return }
            if !child.isRunning {
                throw BenchSetupError("\(child.name) exited during start-up; its log (\(child.logFile)) ends with:\n\(child.logTail())")
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw BenchSetupError("\(child.name) did not write \(path) within \(timeout); its log ends with:\n\(child.logTail())")
    }
}

struct BenchSetupError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
