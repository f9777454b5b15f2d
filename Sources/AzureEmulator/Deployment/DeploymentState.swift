import Foundation
import Synchronization

/// A login error the emulator will answer with on the next N logins (fault injection).
public struct LoginFault: Sendable, Codable, Equatable {
    public var node: String?
    public var number: Int32
    public var remaining: Int
}

/// Everything mutable about the emulated deployment: which server is primary in each
/// failover group, which nodes are up, each replica's data and its replication backlog,
/// and the faults waiting to fire. One lock; every operation is short.
public final class DeploymentState: Sendable {
    public let config: EmulatorConfig

    struct Pending: Sendable {
        var due: ContinuousClock.Instant
        var database: String
        var changes: [RowChange]
    }

    struct State: Sendable {
        var serverIsPrimary: [String: Bool] = [:]
        var nodeAlive: [String: Bool] = [:]
        var data: [String: [String: DatabaseData]] = [:]
        var pending: [String: [Pending]] = [:]
        var loginFaults: [LoginFault] = []
        var refuseNext: [String: Int] = [:]
        var loginDelayMs: [String: Int] = [:]
        var lagMs: [String: Int] = [:]
        var nextSPID = 51
        var sessionLimit: [String: Int] = [:]
        /// SPIDs of the logged-in sessions on each node.
        var openSessions: [String: Set<Int>] = [:]
        var failovers = 0
        var lastFailover: Date?
    }

    let state: Mutex<State>

    public init(config: EmulatorConfig) {
        self.config = config
        var s = State()
        for server in config.servers {
            let secondaryInGroup = config.failoverGroups.contains { $0.secondaryServer == server.name }
            s.serverIsPrimary[server.name] = !secondaryInGroup
            for node in server.nodes {
                s.nodeAlive[node.name] = true
                s.lagMs[node.name] = node.lagMilliseconds
                if let m = node.maxSessions { s.sessionLimit[node.name] = m }
                if node.kind != .gateway {
                    s.data[node.name] = Dictionary(uniqueKeysWithValues: server.databases.map { ($0.lowercased(), DatabaseData()) })
                }
            }
        }
        state = Mutex(s)
    }

    // MARK: Topology

    public func server(named name: String) -> ServerConfig? { config.servers.first { $0.name == name } }

    public func node(named name: String) -> (ServerConfig, NodeConfig)? {
        for s in config.servers { if let n = s.nodes.first(where: { $0.name == name }) { return (s, n) } }
        return nil
    }

    func group(of server: String) -> FailoverGroupConfig? {
        config.failoverGroups.first { $0.primaryServer == server || $0.secondaryServer == server }
    }

    func partner(of server: String) -> String? {
        guard let g = group(of: server) else { return nil }
        return g.primaryServer == server ? g.secondaryServer : g.primaryServer
    }

    /// Data nodes that hold copies of this server's databases (the server's and its
    /// failover partner's replicas).
    func replicaSet(of server: String) -> [NodeConfig] {
        var names = [server]
        if let p = partner(of: server) { names.append(p) }
        return names.compactMap { self.server(named: $0) }.flatMap { $0.nodes.filter { $0.kind != .gateway } }
    }

    public func isWritable(node name: String) -> Bool {
        guard let (server, node) = node(named: name), node.kind == .primaryReplica else { return false }
        return state.withLock { $0.serverIsPrimary[server.name] ?? false }
    }

    public func isPrimaryServer(_ server: String) -> Bool {
        state.withLock { $0.serverIsPrimary[server] ?? false }
    }

    public func isAlive(node: String) -> Bool { state.withLock { $0.nodeAlive[node] ?? false } }

    /// Where a gateway sends a login: the server's primary replica for read-write, a
    /// readable replica for ReadOnlyIntent (read scale-out), the primary replica otherwise.
    public func redirectTarget(gatewayServer: String, readOnly: Bool) -> NodeConfig? {
        guard let server = server(named: gatewayServer) else { return nil }
        let alive = state.withLock { $0.nodeAlive }
        if readOnly, let r = server.nodes.first(where: { $0.kind == .readableReplica && alive[$0.name] == true }) { return r }
        return server.nodes.first { $0.kind == .primaryReplica && alive[$0.name] == true }
    }

    func geoLinks(node: String, database: String) -> [GeoLinkStatus] {
        guard let (server, _) = self.node(named: node), let partner = partner(of: server.name), let g = group(of: server.name) else { return [] }
        let primary = isPrimaryServer(server.name)
        let lag = state.withLock { s in (s.lagMs[node] ?? 0) / 1000 }
        var hasher = Hasher()
        hasher.combine(g.name)
        hasher.combine(database.lowercased())
        let seed = UInt64(bitPattern: Int64(hasher.finalize()))
        let bytes = withUnsafeBytes(of: seed.bigEndian) { Array($0) } + withUnsafeBytes(of: (~seed).bigEndian) { Array($0) }
        let linkID = UUID(uuid: (bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5], bytes[6], bytes[7],
                                 bytes[8], bytes[9], bytes[10], bytes[11], bytes[12], bytes[13], bytes[14], bytes[15]))
        return [GeoLinkStatus(partnerServer: partner, partnerDatabase: database, role: primary ? 0 : 1, lagSeconds: lag, linkID: linkID)]
    }

    public func nextSPID() -> Int {
        state.withLock { s in
            defer { s.nextSPID = s.nextSPID >= 32_000 ? 51 : s.nextSPID + 1 }
            return s.nextSPID
        }
    }

    // MARK: Sessions

    /// Counts a session that has logged in; returns the limit instead when the node is full.
    func admitSession(node: String, spid: Int) -> Int? {
        state.withLock { s in
            if let limit = s.sessionLimit[node], (s.openSessions[node]?.count ?? 0) >= limit { return limit }
            s.openSessions[node, default: []].insert(spid)
            return nil
        }
    }

    /// The session ended (any reason); a no-op for one that never logged in.
    func endSession(node: String, spid: Int) {
        state.withLock { _ = $0.openSessions[node]?.remove(spid) }
    }

    /// nil removes the limit.
    public func setSessionLimit(node: String, limit: Int?) { state.withLock { $0.sessionLimit[node] = limit } }

    public func openSessionCount(node: String) -> Int { state.withLock { $0.openSessions[node]?.count ?? 0 } }

    // MARK: Data

    /// The node's view of a database, after applying the replication backlog that is due.
    func snapshot(node: String, database: String) -> DatabaseData? {
        state.withLock { s in
            Self.applyDue(&s, node: node, now: .now)
            return s.data[node]?[database.lowercased()]
        }
    }

    func commit(node: String, database: String, changes: [RowChange]) throws(SQLError) -> [Int] {
        guard let (server, _) = self.node(named: node) else { throw SQLError.readOnly(database) }
        let members = replicaSet(of: server.name).map(\.name).filter { $0 != node }
        let result: Result<[Int], SQLError> = state.withLock { s in
            guard s.serverIsPrimary[server.name] == true, s.nodeAlive[node] == true,
                  var db = s.data[node]?[database.lowercased()] else { return .failure(SQLError.readOnly(database)) }
            var counts: [Int] = []
            do throws(SQLError) {
                for c in changes { counts.append(try db.apply(c)) }
            } catch {
                return .failure(error)
            }
            s.data[node]![database.lowercased()] = db
            let now = ContinuousClock.now
            for m in members {
                let lag = s.lagMs[m] ?? 0
                s.pending[m, default: []].append(Pending(due: now + .milliseconds(lag), database: database.lowercased(), changes: changes))
                if lag == 0 { Self.applyDue(&s, node: m, now: now) }
            }
            return .success(counts)
        }
        return try result.get()
    }

    private static func applyDue(_ s: inout State, node: String, now: ContinuousClock.Instant) {
        guard var queue = s.pending[node], !queue.isEmpty else { return }
        while let first = queue.first, first.due <= now {
            queue.removeFirst()
            if var db = s.data[node]?[first.database] {
                for c in first.changes { _ = try? db.apply(c) }
                s.data[node]![first.database] = db
            }
        }
        s.pending[node] = queue
    }

    public func databaseExists(server: String, name: String) -> Bool {
        self.server(named: server)?.databases.contains { $0.lowercased() == name.lowercased() } ?? false
    }

    // MARK: Failover and faults

    /// Planned failover waits for replication (no data loss); forced failover promotes the
    /// secondary as it is and re-seeds every other replica from it.
    public func failover(group name: String, allowDataLoss: Bool) throws {
        guard let g = config.failoverGroups.first(where: { $0.name == name }) else {
            throw EmulatorConfigError("failover group '\(name)' does not exist")
        }
        let nodes = replicaSet(of: g.primaryServer).map(\.name)
        state.withLock { s in
            let newPrimaryServer = s.serverIsPrimary[g.primaryServer] == true ? g.secondaryServer : g.primaryServer
            let oldPrimaryServer = newPrimaryServer == g.primaryServer ? g.secondaryServer : g.primaryServer
            guard let newPrimaryNode = server(named: newPrimaryServer)?.nodes.first(where: { $0.kind == .primaryReplica })?.name else { return }
            if allowDataLoss {
                s.pending[newPrimaryNode] = []
                if let seed = s.data[newPrimaryNode] {
                    for n in nodes where n != newPrimaryNode {
                        s.data[n] = seed
                        s.pending[n] = []
                    }
                }
            } else {
                let far = ContinuousClock.now + .seconds(86_400 * 365)
                for n in nodes { Self.applyDue(&s, node: n, now: far) }
            }
            s.serverIsPrimary[newPrimaryServer] = true
            s.serverIsPrimary[oldPrimaryServer] = false
            s.failovers += 1
            s.lastFailover = Date()
        }
    }

    public func setAlive(node: String, _ alive: Bool) { state.withLock { $0.nodeAlive[node] = alive } }

    public func injectLoginFault(_ fault: LoginFault) { state.withLock { $0.loginFaults.append(fault) } }

    public func refuseConnections(node: String, count: Int) { state.withLock { $0.refuseNext[node] = count } }

    public func setLoginDelay(node: String, milliseconds: Int) { state.withLock { $0.loginDelayMs[node] = milliseconds } }

    public func setLag(node: String, milliseconds: Int) { state.withLock { $0.lagMs[node] = milliseconds } }

    public func clearFaults() {
        state.withLock { s in
            s.loginFaults = []
            s.refuseNext = [:]
            s.loginDelayMs = [:]
        }
    }

    /// Consumes a refusal for a new connection, if one is armed.
    func takeRefusal(node: String) -> Bool {
        state.withLock { s in
            guard let n = s.refuseNext[node], n > 0 else { return false }
            s.refuseNext[node] = n - 1
            return true
        }
    }

    func loginDelay(node: String) -> Int { state.withLock { $0.loginDelayMs[node] ?? 0 } }

    /// Consumes the first login fault that applies to this node.
    func takeLoginFault(node: String) -> Int32? {
        state.withLock { s in
            guard let i = s.loginFaults.firstIndex(where: { ($0.node == nil || $0.node == node) && $0.remaining > 0 }) else { return nil }
            s.loginFaults[i].remaining -= 1
            let number = s.loginFaults[i].number
            if s.loginFaults[i].remaining == 0 { s.loginFaults.remove(at: i) }
            return number
        }
    }

    /// JSON-ready view for the control API.
    public func describe() -> [String: Any] {
        let s = state.withLock { $0 }
        var servers: [[String: Any]] = []
        for server in config.servers {
            servers.append([
                "name": server.name,
                "role": (s.serverIsPrimary[server.name] ?? false) ? "primary" : "secondary",
                "databases": server.databases,
                "nodes": server.nodes.map { n -> [String: Any] in
                    [
                        "name": n.name, "kind": n.kind.rawValue, "port": n.port,
                        "alive": s.nodeAlive[n.name] ?? false,
                        "writable": n.kind == .primaryReplica && (s.serverIsPrimary[server.name] ?? false),
                        "replication_backlog": s.pending[n.name]?.count ?? 0,
                        "lag_ms": s.lagMs[n.name] ?? 0,
                        "sessions": s.openSessions[n.name]?.count ?? 0,
                        "max_sessions": s.sessionLimit[n.name].map { $0 as Any } ?? NSNull(),
                    ]
                },
            ])
        }
        var out: [String: Any] = [
            "servers": servers,
            "failover_groups": config.failoverGroups.map { g -> [String: Any] in
                let primary = (s.serverIsPrimary[g.primaryServer] ?? false) ? g.primaryServer : g.secondaryServer
                return ["name": g.name, "primary_server": primary, "secondary_server": primary == g.primaryServer ? g.secondaryServer : g.primaryServer]
            },
            "failovers": s.failovers,
            "login_faults": s.loginFaults.map { ["node": $0.node ?? "*", "number": Int($0.number), "remaining": $0.remaining] },
        ]
        if let t = s.lastFailover { out["last_failover"] = ISO8601DateFormatter().string(from: t) }
        return out
    }
}

/// SQL data access for one session on one node.
struct NodeDataAccess: SQLDataAccess {
    let deployment: DeploymentState
    let node: String
    let server: String

    func snapshot(database: String) -> DatabaseData? { deployment.snapshot(node: node, database: database) }
    func commit(database: String, changes: [RowChange]) throws(SQLError) -> [Int] {
        try deployment.commit(node: node, database: database, changes: changes)
    }
    func databaseName(_ name: String) -> String? {
        if name.lowercased() == "master" { return "master" }
        return deployment.server(named: server)?.databases.first { $0.lowercased() == name.lowercased() }
    }
}
