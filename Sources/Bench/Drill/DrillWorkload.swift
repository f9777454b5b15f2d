import Foundation
import NIOCore
import NIOSSL
import Routing
import Synchronization
import TDS

/// The synthetic sessions of a drill: writers insert unique keys, readers read with
/// ApplicationIntent=ReadOnly. Each session reconnects after any error, as a well-written
/// application would, and everything it sees goes to the recorder.
final class DrillWorkload: Sendable {
    let options: DrillOptions
    let table: String
    let tls: NIOSSLContext
    let admin: DrillAdminClient
    let recorder: SharedRecorder
    let loop: any EventLoop
    private let stopped = Mutex(false)
    private let acknowledged = Mutex<[Int64]>([])

    init(options: DrillOptions, table: String, tls: NIOSSLContext, admin: DrillAdminClient, recorder: SharedRecorder, loop: any EventLoop) {
        self.options = options
        self.table = table
        self.tls = tls
        self.admin = admin
        self.recorder = recorder
        self.loop = loop
    }

    var isStopped: Bool { stopped.withLock { $0 } }
    func stop() { stopped.withLock { $0 = true } }
    var acknowledgedKeys: [Int64] { acknowledged.withLock { $0 } }

    func endpoint(appName: String, readOnly: Bool) -> BenchEndpoint {
        BenchEndpoint(name: "tdsgate", host: options.proxyHost, port: options.proxyPort, tlsName: options.tlsName, tls: tls,
                      user: options.user, password: options.password, database: options.database,
                      appName: appName, readOnlyIntent: readOnly)
    }

    static let settings = BenchClientSettings(packetSize: 4096, connectTimeout: .seconds(5), replyTimeout: .seconds(30))

    /// A logged-in session and the tdsgate endpoint carrying it (from the admin API).
    func open(appName: String, readOnly: Bool) async throws -> (BenchConnection, String?) {
        let c = try await BenchConnection.open(endpoint(appName: appName, readOnly: readOnly), on: loop, settings: Self.settings)
        for attempt in 0..<3 {
            if let s = try? await admin.sessions(options.cluster).first(where: { $0.appName == appName }) {
                return (c, s.endpoint)
            }
            if attempt < 2 { try? await Task.sleep(for: .milliseconds(20)) }
        }
        return (c, nil)
    }

    func writer(_ index: Int) async {
        await session(label: "w\(index)", readOnly: false) { connection, endpoint, serial in
            let key = Int64(index) * 10_000_000 + Int64(serial)
            let sent = ContinuousClock.now
            let reply = try await connection.execute("INSERT INTO \(self.table) (k, w) VALUES (\(key), \(index))")
            if let e = reply.errors.first { throw BenchServerError(number: e.number, message: e.message) }
            let acked = ContinuousClock.now
            self.acknowledged.withLock { $0.append(key) }
            self.recorder.withLock { $0.writeAcknowledged(endpoint: endpoint ?? "?", key: String(key), sentAt: sent, ackedAt: acked) }
        }
    }

    func reader(_ index: Int) async {
        await session(label: "r\(index)", readOnly: true) { connection, endpoint, _ in
            let reply = try await connection.execute("SELECT DATABASEPROPERTYEX(DB_NAME(), 'Updateability')")
            if let e = reply.errors.first { throw BenchServerError(number: e.number, message: e.message) }
            let now = ContinuousClock.now
            self.recorder.withLock { $0.readSucceeded(endpoint: endpoint, at: now) }
        }
    }

    /// One synthetic application session: connect, repeat `request`, and on any error
    /// record it, drop the connection and start again, until the drill stops.
    private func session(label: String, readOnly: Bool,
                         request: @escaping @Sendable (BenchConnection, String?, Int) async throws -> Void) async {
        var connection: BenchConnection?
        var endpoint: String?
        var serial = 0
        var connects = 0
        while !isStopped {
            if connection == nil {
                connects += 1
                let started = ContinuousClock.now
                do {
                    (connection, endpoint) = try await open(appName: "tdsgate-drill \(label)#\(connects)", readOnly: readOnly)
                    noteStall(since: started)
                } catch {
                    noteStall(since: started)
                    record(error, endpoint: nil, request: readOnly ? .read : .write)
                    try? await Task.sleep(for: .milliseconds(100))
                    continue
                }
            }
            serial += 1
            let started = ContinuousClock.now
            do {
                try await request(connection!, endpoint, serial)
                noteStall(since: started)
            } catch {
                noteStall(since: started)
                record(error, endpoint: endpoint, request: readOnly ? .read : .write)
                let now = ContinuousClock.now
                if !(error is BenchServerError) {
                    recorder.withLock { $0.sessionClosed(endpoint: endpoint, at: now) }
                }
                await connection?.close()
                connection = nil
                endpoint = nil
                continue
            }
            try? await Task.sleep(for: options.requestInterval)
        }
        await connection?.close()
    }

    private func noteStall(since started: ContinuousClock.Instant) {
        let now = ContinuousClock.now
        if now - started > options.stallThreshold {
            recorder.withLock { $0.stalled(for: now - started, at: now) }
        }
    }

    private func record(_ error: any Error, endpoint: String?, request: DrillRecorder.RequestKind) {
        let now = ContinuousClock.now
        if let e = error as? BenchServerError {
            recorder.withLock { $0.error(number: e.number, endpoint: endpoint, at: now, request: request) }
        } else {
            recorder.withLock { $0.error(label: Self.label(error), endpoint: endpoint, at: now, request: request) }
        }
    }

    /// Errors without a server number, named by what the application saw.
    static func label(_ error: any Error) -> String {
        if error is BenchCertificateError { return "TLS certificate not verified" }
        let text = "\(error)".lowercased()
        if text.contains("closed") || text.contains("reset") || text.contains("eof") { return "connection closed" }
        if text.contains("timed out") || text.contains("timeout") { return "timeout" }
        if text.contains("refused") { return "connection refused" }
        if text.contains("tls") || text.contains("ssl") || text.contains("handshake") { return "TLS failure" }
        return "other: " + String("\(error)".prefix(60))
    }
}
