import AsyncHTTPClient
import Foundation
import Gateway
import NIOCore
import NIOPosix
import NIOSSL
import Routing
import Synchronization
import TDS

/// One phase of a drill (the failover, then optionally the failback) and what it saw.
public struct DrillPhase: Sendable {
    public var name: String
    public var report: DrillReport
}

/// Why a drill could not run at all (as opposed to a drill that ran and reports errors).
public struct DrillError: Error, CustomStringConvertible {
    public var description: String
}

/// Runs `tdsgate drill failover`: synthetic traffic through tdsgate, the failover, a watch
/// on tdsgate's view of the primary, and a check afterwards that every acknowledged write
/// is still there.
public enum DrillRunner {
    public static func run(_ options: DrillOptions) async throws -> [DrillPhase] {
        if options.mode != .simulate && (options.failoverGroup == nil || options.armToken == nil) {
            throw DrillError(description: "--\(options.mode.rawValue) needs the cluster's failover_group (ARM resource and identity) in the configuration; --simulate needs neither")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let httpClient = HTTPClient(eventLoopGroupProvider: .shared(group))
        let http = DrillHTTP(client: httpClient)
        do {
            let tls = try makeTLS(options.trust)
            let admin = DrillAdminClient(http: http, baseURL: options.adminURL.hasSuffix("/") ? String(options.adminURL.dropLast()) : options.adminURL,
                                         token: options.adminToken)
            var phases: [DrillPhase] = []
            let first = try await runPhase("failover", options: options, admin: admin, http: http, tls: tls, loop: group.next())
            phases.append(first)
            if options.failback && options.mode != .simulate {
                phases.append(try await runPhase("failback", options: options, admin: admin, http: http, tls: tls, loop: group.next()))
            }
            try await httpClient.shutdown()
            try await group.shutdownGracefully()
            return phases
        } catch {
            try? await httpClient.shutdown()
            try? await group.shutdownGracefully()
            throw error
        }
    }

    static func makeTLS(_ trust: DrillOptions.Trust) throws -> NIOSSLContext {
        var config = TLSConfiguration.makeClientConfiguration()
        config.certificateVerification = .fullVerification
        switch trust {
        case .systemRoots:
            break
        case .only(let file):
            try checkReadable(caFile: file, source: "--ca-file")
            config.trustRoots = .file(file)
        case .systemRootsAnd(let file):
            try checkReadable(caFile: file, source: "the cluster's ca_file")
            config.additionalTrustRoots = [.file(file)]
        }
        // TLS inside PRELOGIN stops at 1.2 (TDS 7.x).
        config.maximumTLSVersion = .tlsv12
        do {
            return try NIOSSLContext(configuration: config)
        } catch {
            throw DrillError(description: "cannot load the CA certificates to check tdsgate's listener with (\(trust.summary)): \(error); "
                + "give --ca-file with a PEM file of the CA that signed the listener's certificate")
        }
    }

    private static func checkReadable(caFile: String, source: String) throws {
        guard FileManager.default.isReadableFile(atPath: caFile) else {
            throw DrillError(description: "the CA file \(caFile) (\(source)) does not exist or cannot be read, so tdsgate's listener "
                + "certificate cannot be checked; give --ca-file with the PEM of the CA that signed it")
        }
    }

    private static func runPhase(_ name: String, options: DrillOptions, admin: DrillAdminClient, http: DrillHTTP,
                                 tls: NIOSSLContext, loop: any EventLoop) async throws -> DrillPhase {
        let say = options.progress ?? { _ in }
        let initial = try await waitForPrimary(admin: admin, cluster: options.cluster, within: .seconds(30))
        say("\(name): cluster '\(options.cluster)' primary is '\(initial)'; starting \(options.writers) writer(s) and \(options.readers) reader(s)")

        let table = "tdsgate_drill_" + String(UInt32.random(in: 0...UInt32.max), radix: 16)
        try await prepare(table: table, options: options, tls: tls, loop: loop)

        let drillID = table.replacingOccurrences(of: "tdsgate_drill_", with: "") + "-" + name
        await admin.drillEvent(options.cluster, ["phase": "start", "mode": options.mode.rawValue, "drill_id": drillID, "target": name])
        let start = ContinuousClock.now
        let recorder = SharedRecorder(DrillRecorder(cluster: options.cluster, start: start, initialPrimary: initial))
        let workload = DrillWorkload(options: options, table: table, tls: tls, admin: admin, recorder: recorder, loop: loop)
        let deadline = start + options.timeout
        let control = DrillControl(options: options, admin: admin, http: http, initial: initial, recorder: recorder, say: say)

        let outcome: Result<Void, any Error> = await withTaskGroup(of: Result<Void, any Error>.self) { group in
            for w in 0..<options.writers { group.addTask { await workload.writer(w); return .success(()) } }
            for r in 0..<options.readers { group.addTask { await workload.reader(r); return .success(()) } }
            group.addTask { await control.watch(until: deadline, stopped: { workload.isStopped }); return .success(()) }
            group.addTask {
                defer { workload.stop() }
                do {
                    try await control.drive(deadline: deadline)
                    return .success(())
                } catch {
                    return .failure(error)
                }
            }
            var result: Result<Void, any Error> = .success(())
            for await r in group { if case .failure = r { result = r } }
            return result
        }
        let end = ContinuousClock.now
        var report = recorder.withLock { $0.report(end: end) }
        report.mode = options.mode.rawValue
        if case .failure(let error) = outcome {
            report.aborted = "\(error)"
            say("\(name): aborted: \(error)")
        }
        let acked = workload.acknowledgedKeys
        do {
            let missing = try await verify(table: table, acknowledged: acked, options: options, tls: tls, loop: loop)
            report.writesVerified = acked.count - missing.count
            report.lostWrites = missing.prefix(20).map(String.init)
            report.lostWriteCount = missing.count
        } catch {
            say("\(name): could not read the acknowledged writes back: \(error)")
        }
        let passed = report.safe && report.aborted == nil && report.timeToFirstWriteMs != nil
        var endEvent: [String: Any] = ["phase": "end", "mode": options.mode.rawValue, "drill_id": drillID,
                                  "outcome": report.aborted != nil ? "aborted" : passed ? "passed" : "failed",
                                  "duration_ms": Int(report.durationMs), "sessions_closed": report.sessionsClosed,
                                  "summary": "\(report.writesAcknowledged) writes, \(report.errorTotal) errors, unsafe \(report.unsafeWrites.count), lost \(report.lostWriteCount)"]
        if let old = report.oldPrimary { endEvent["old_primary"] = old }
        if let new = report.newPrimary { endEvent["new_primary"] = new }
        await admin.drillEvent(options.cluster, endEvent)
        return DrillPhase(name: name, report: report)
    }

    private static func waitForPrimary(admin: DrillAdminClient, cluster: String, within: Duration) async throws -> String {
        let until = ContinuousClock.now + within
        while true {
            let snapshot: ClusterSnapshot
            do {
                snapshot = try await admin.cluster(cluster)
            } catch {
                throw DrillError(description: "cannot read cluster '\(cluster)' from tdsgate's admin API at \(admin.baseURL): \(error); "
                    + "check that tdsgate runs with this configuration (or give --admin-url)")
            }
            if let p = snapshot.primary { return p }
            if ContinuousClock.now >= until {
                throw DrillError(description: "cluster '\(cluster)' has had no primary for \(within); there is nothing to fail over")
            }
            try await Task.sleep(for: .milliseconds(200))
        }
    }

    /// A write session that waits for the primary; used before and after the traffic.
    private static func withWriteSession<T>(options: DrillOptions, tls: NIOSSLContext, loop: any EventLoop,
                                            _ body: (BenchConnection) async throws -> T) async throws -> T {
        let until = ContinuousClock.now + .seconds(30)
        var lastError: (any Error)?
        while ContinuousClock.now < until {
            do {
                let endpoint = BenchEndpoint(name: "tdsgate", host: options.proxyHost, port: options.proxyPort, tlsName: options.tlsName,
                                             tls: tls, user: options.user, password: options.password, database: options.database,
                                             appName: "tdsgate-drill setup")
                let c = try await BenchConnection.open(endpoint, on: loop, settings: DrillWorkload.settings)
                do {
                    let result = try await body(c)
                    await c.close()
                    return result
                } catch {
                    await c.close()
                    throw error
                }
            } catch let error as BenchCertificateError {
                // Retrying cannot fix trust or a name: say what to change.
                throw DrillError(description: "cannot open a session through tdsgate: \(error). The drill trusted \(options.trust.summary) "
                    + "and expected the name '\(options.tlsName)'; give --ca-file with the CA that signed the listener's certificate "
                    + "and --tls-name with a name the certificate carries")
            } catch let error as BenchServerError where error.number == 18456 {
                throw DrillError(description: "tdsgate refused the login of '\(options.user)': \(error). The drill logs in with a SQL login "
                    + "tdsgate holds (logins: in its config) whose policy rule allows writes; check --user and the password in the "
                    + "environment variable given by --password-env")
            } catch {
                lastError = error
                try await Task.sleep(for: .milliseconds(250))
            }
        }
        throw DrillError(description: "no write session through tdsgate's listener \(options.proxyHost):\(options.proxyPort) within 30 s "
            + "(last error: \(lastError.map { "\($0)" } ?? "none")); check that tdsgate runs there (or give --proxy host:port) "
            + "and that `tdsgate status` shows a primary")
    }

    private static func prepare(table: String, options: DrillOptions, tls: NIOSSLContext, loop: any EventLoop) async throws {
        try await withWriteSession(options: options, tls: tls, loop: loop) { c in
            let reply = try await c.execute("CREATE TABLE \(table) (k BIGINT PRIMARY KEY, w INT)")
            if let e = reply.errors.first {
                throw DrillError(description: "cannot create the drill's table \(table): error \(e.number): \(e.message)")
            }
        }
    }

    /// Keys acknowledged during the phase that the primary no longer has; drops the table.
    private static func verify(table: String, acknowledged: [Int64], options: DrillOptions, tls: NIOSSLContext,
                               loop: any EventLoop) async throws -> [Int64] {
        try await withWriteSession(options: options, tls: tls, loop: loop) { c in
            let reply = try await c.execute("SELECT k FROM \(table)")
            if let e = reply.errors.first { throw BenchServerError(number: e.number, message: e.message) }
            var present = Set<Int64>()
            for row in reply.rows { if case .int(let k)? = row.first { present.insert(k) } }
            _ = try? await c.execute("DROP TABLE \(table)")
            return acknowledged.filter { !present.contains($0) }.sorted()
        }
    }
}
