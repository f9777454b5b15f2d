import Foundation
import NIOCore
import Synchronization
import TDS

/// A logged-in backend connection the pool owns while it is idle, with what a client that
/// takes it must be told (the reply the backend sent at its own login).
struct PooledConnection: @unchecked Sendable {
    var id: Int
    var key: PoolKey
    var leg: BackendLeg
    var loginReply: ByteBuffer
    var database: String
    var retireAt: ContinuousClock.Instant
}

/// A cluster's backend connection pool (`pool:`, session mode): executes
/// `BackendPoolState`'s decisions. A login asks for a connection of its `PoolKey` on its
/// event loop (both legs of a session share one loop); when the client leaves, the relay
/// gives the connection back, which is drained (an attention for a request in flight) and
/// reset (RESETCONNECTION: temp tables, SET options, database, open transaction) before any
/// other client can take it.
final class BackendPool: Sendable {
    let config: PoolConfig
    let cluster: String

    enum Acquired {
        case reused(PooledConnection)
        /// Dial and log in; then `connected` (or `abandon` the slot).
        case connect(PoolSlot)
        /// At the limit past `acquire_timeout_ms`.
        case refused
    }

    /// A reserved place in a group, for the login that dials it.
    struct PoolSlot: Sendable {
        var key: PoolKey
        var id: Int
    }

    private struct Inner {
        var state: BackendPoolState<PoolKey, ObjectIdentifier>
        var connections: [Int: PooledConnection] = [:]
        var waiters: [Int: CheckedContinuation<BackendPoolState<PoolKey, ObjectIdentifier>.Grant?, Never>] = [:]
        var resets = 0
        var reuses = 0
    }

    private let inner: Mutex<Inner>

    init(config: PoolConfig, cluster: String) {
        self.config = config
        self.cluster = cluster
        inner = Mutex(Inner(state: .init(maxPerGroup: config.maxBackendConnections,
                                         idleTimeout: .seconds(config.idleTimeoutSeconds), minIdle: config.minIdle)))
    }

    /// A connection for `key` on `loop`: an idle one, or a place to dial one, waiting up to
    /// `acquire_timeout_ms` at the limit.
    func acquire(key: PoolKey, loop: any EventLoop) async -> Acquired {
        let loopID = ObjectIdentifier(loop)
        let now = ContinuousClock.now
        let deadline = now + .milliseconds(config.acquireTimeoutMs)
        var evict: PooledConnection?
        let first: BackendPoolState<PoolKey, ObjectIdentifier>.AcquireResult = inner.withLock { i in
            let r = i.state.acquire(key: key, group: key.group, loop: loopID, now: now, deadline: deadline)
            if case .granted(.connect(let victim?)) = r { evict = i.connections.removeValue(forKey: victim) }
            return r
        }
        evict?.leg.close()
        switch first {
        case .granted(let grant):
            return take(grant, key: key)
        case .refused:
            return .refused
        case .wait(let waiter):
            let grant: BackendPoolState<PoolKey, ObjectIdentifier>.Grant? = await withTaskCancellationHandler {
                await withCheckedContinuation { continuation in
                    inner.withLock { $0.waiters[waiter] = continuation }
                    Task { [weak self] in
                        try? await Task.sleep(until: deadline, clock: .continuous)
                        self?.giveUp(waiter)
                    }
                }
            } onCancel: {
                giveUp(waiter)
            }
            guard let grant else { return .refused }
            return take(grant, key: key)
        }
    }

    private func giveUp(_ waiter: Int) {
        let continuation = inner.withLock { i -> CheckedContinuation<BackendPoolState<PoolKey, ObjectIdentifier>.Grant?, Never>? in
            guard i.state.waiterGone(waiter) else { return nil }
            return i.waiters.removeValue(forKey: waiter)
        }
        continuation?.resume(returning: nil)
    }

    private func take(_ grant: BackendPoolState<PoolKey, ObjectIdentifier>.Grant, key: PoolKey) -> Acquired {
        switch grant {
        case .reuse(let id):
            guard let c = inner.withLock({ i -> PooledConnection? in
                i.reuses += 1
                return i.connections[id]
            }) else { preconditionFailure("the pool granted connection \(id), which it does not hold") }
            return .reused(c)
        case .connect(let victim):
            if let victim, let c = inner.withLock({ $0.connections.removeValue(forKey: victim) }) { c.leg.close() }
            return .connect(PoolSlot(key: key, id: inner.withLock { $0.state.makeID() }))
        }
    }

    /// The slot's login succeeded: the connection is the pool's from now on (busy).
    func connected(_ slot: PoolSlot, leg: BackendLeg, loginReply: ByteBuffer, database: String,
                   tokenExpiresOn: Date) -> PooledConnection {
        let lifetime = ContinuousClock.now + .seconds(config.maxLifetimeSeconds)
        // A minute before the token expires, so no connection outlives the token it logged in with.
        let untilExpiry = max(0, tokenExpiresOn.timeIntervalSinceNow - 60)
        let byToken = ContinuousClock.now + .milliseconds(Int64(untilExpiry * 1000))
        let c = PooledConnection(id: slot.id, key: slot.key, leg: leg, loginReply: loginReply, database: database,
                                 retireAt: min(lifetime, byToken))
        inner.withLock { i in
            i.state.connected(group: slot.key.group)
            i.connections[c.id] = c
        }
        // A connection the server ends while it is idle gives its place up.
        leg.channel.closeFuture.whenComplete { [weak self] _ in self?.idleClosed(c.id) }
        return c
    }

    /// The slot was not used (the dial or login failed, or was cancelled).
    func abandon(_ slot: PoolSlot) {
        let wake = inner.withLock { $0.state.placeFreed(group: slot.key.group, wasBusy: false) }
        deliver(wake)
    }

    /// The connection's client left. `reusable` is false when it could not be drained and
    /// reset, or its session ended otherwise than by the client leaving; it is then closed.
    func release(_ c: PooledConnection, reusable: Bool) {
        let loopID = ObjectIdentifier(c.leg.channel.eventLoop)
        var handTo: CheckedContinuation<BackendPoolState<PoolKey, ObjectIdentifier>.Grant?, Never>?
        var wake: BackendPoolState<PoolKey, ObjectIdentifier>.Wake?
        var close = false
        inner.withLock { i in
            if reusable { i.resets += 1 }
            switch i.state.released(connection: c.id, key: c.key, group: c.key.group, loop: loopID,
                                    reusable: reusable && c.leg.channel.isActive, retireAt: c.retireAt, now: .now) {
            case .pooled:
                break
            case .handedTo(let waiter):
                handTo = i.waiters.removeValue(forKey: waiter)
            case .close(let w):
                i.connections[c.id] = nil
                close = true
                wake = w
            }
        }
        if close { c.leg.close() }
        handTo?.resume(returning: .reuse(connection: c.id))
        deliver(wake)
    }

    private func idleClosed(_ id: Int) {
        let wake = inner.withLock { i -> BackendPoolState<PoolKey, ObjectIdentifier>.Wake? in
            // Only an idle connection is forgotten here; a busy one is its relay's to release.
            guard i.state.idle.contains(where: { $0.id == id }) else { return nil }
            i.connections[id] = nil
            return i.state.idleClosed(id)
        }
        deliver(wake)
    }

    private func deliver(_ wake: BackendPoolState<PoolKey, ObjectIdentifier>.Wake?) {
        guard let wake else { return }
        let continuation = inner.withLock { $0.waiters.removeValue(forKey: wake.waiter) }
        continuation?.resume(returning: wake.grant)
    }

    /// Closes idle connections that are retired, idle too long, or whose endpoint is not
    /// usable; runs every second while the pool exists.
    func sweep(unusableEndpoints: Set<String> = []) {
        let (closing, wakes) = inner.withLock { i in
            let r = i.state.sweep(now: .now, unusable: { unusableEndpoints.contains($0.endpoint) })
            return (r.close.compactMap { i.connections.removeValue(forKey: $0) }, r.wake)
        }
        for c in closing { c.leg.close() }
        for w in wakes { deliver(w) }
    }

    /// Shutdown: every idle connection is closed.
    func closeIdle() {
        let closing = inner.withLock { i in i.state.drainAll().compactMap { i.connections.removeValue(forKey: $0) } }
        for c in closing { c.leg.close() }
    }

    /// Figures per group, for the admin API and metrics.
    struct GroupFigures: Sendable, Codable {
        var endpoint: String
        var backendIdentity: String
        var idle: Int
        var busy: Int
        var waiting: Int
        var open: Int
        var max: Int
    }

    struct Figures: Sendable, Codable {
        var cluster: String
        var mode: String
        var groups: [GroupFigures]
        var reuses: Int
        var resets: Int
    }

    func figures() -> Figures {
        inner.withLock { i in
            let groups = i.state.groups.sorted { ($0.endpoint, $0.backendIdentity) < ($1.endpoint, $1.backendIdentity) }.map { g in
                let f = i.state.figures(g)
                return GroupFigures(endpoint: g.endpoint, backendIdentity: g.backendIdentity, idle: f.idle, busy: f.busy,
                                    waiting: f.waiting, open: f.open, max: config.maxBackendConnections)
            }
            return Figures(cluster: cluster, mode: config.mode.rawValue, groups: groups, reuses: i.reuses, resets: i.resets)
        }
    }
}
