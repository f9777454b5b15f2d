/// The bookkeeping of a cluster's backend connection pool, pure: which connections are idle
/// (and for which session shape and event loop), how many each group (endpoint and backend
/// identity) holds against its limit, and who waits for one. Time comes in as an input;
/// `BackendPool` executes the actions (hands a connection over, dials, closes, wakes a waiter).
///
/// A connection is in one of three places: reserved (a login is dialling it), busy (a
/// client session relays over it) or idle (reset and ready). All three count against the
/// group's `maxPerGroup`.
struct BackendPoolState<Key: Hashable, Loop: Hashable> {
    /// Endpoint and backend identity: what `max_backend_connections` bounds.
    struct Group: Hashable, Sendable {
        var endpoint: String
        var backendIdentity: String
    }

    struct Idle {
        var id: Int
        var key: Key
        var group: Group
        var loop: Loop
        var idleSince: ContinuousClock.Instant
        /// Past this the connection is retired (max lifetime, or its token's expiry).
        var retireAt: ContinuousClock.Instant
    }

    struct Waiter {
        var id: Int
        var key: Key
        var group: Group
        var loop: Loop
        var deadline: ContinuousClock.Instant
    }

    /// What `acquire` and the events after it give a login.
    enum Grant: Equatable {
        /// Take this idle connection.
        case reuse(connection: Int)
        /// A place is reserved: dial a new connection (and, first, close `evicting`: an idle
        /// connection of another shape that gave its place up).
        case connect(evicting: Int?)
    }

    enum AcquireResult: Equatable {
        case granted(Grant)
        /// At the limit: wait (until the waiter's deadline) for a `Wake`.
        case wait(waiter: Int)
        /// At the limit and no time to wait.
        case refused
    }

    /// A waiter that can go on, and how.
    struct Wake: Equatable {
        var waiter: Int
        var grant: Grant
    }

    /// What to do with a connection its client left (after it was drained and reset).
    enum ReleaseResult: Equatable {
        /// Keep it idle.
        case pooled
        /// Hand it to this waiter, which wants exactly this shape on this loop.
        case handedTo(waiter: Int)
        /// Close it (retired, or its place goes to a waiter of another shape), then wake.
        case close(wake: Wake?)
    }

    let maxPerGroup: Int
    let idleTimeout: Duration
    /// Idle connections per group that the idle timeout leaves open.
    let minIdle: Int

    private(set) var idle: [Idle] = []
    private(set) var waiters: [Waiter] = []
    /// Reserved + busy + idle, per group.
    private(set) var open: [Group: Int] = [:]
    private(set) var busy: [Group: Int] = [:]
    private var nextID = 1

    init(maxPerGroup: Int, idleTimeout: Duration, minIdle: Int) {
        precondition(maxPerGroup > 0)
        self.maxPerGroup = maxPerGroup
        self.idleTimeout = idleTimeout
        self.minIdle = min(minIdle, maxPerGroup)
    }

    /// A new id for a connection or a waiter.
    mutating func makeID() -> Int {
        defer { nextID += 1 }
        return nextID
    }

    /// A login wants a connection of `key` on `loop`. An idle match is taken (the most
    /// recently used first: its TLS session and caches are warm; the rest may time out);
    /// otherwise a place is reserved while the group is under its limit, or an idle
    /// connection of another shape gives its place up; otherwise the login waits.
    mutating func acquire(key: Key, group: Group, loop: Loop, now: ContinuousClock.Instant,
                          deadline: ContinuousClock.Instant) -> AcquireResult {
        if let index = idle.lastIndex(where: { $0.key == key && $0.loop == loop && $0.retireAt > now }) {
            let connection = idle.remove(at: index)
            busy[group, default: 0] += 1
            return .granted(.reuse(connection: connection.id))
        }
        if let grant = reserve(group) { return .granted(grant) }
        guard deadline > now else { return .refused }
        let waiter = Waiter(id: makeID(), key: key, group: group, loop: loop, deadline: deadline)
        waiters.append(waiter)
        return .wait(waiter: waiter.id)
    }

    /// A place for a new connection in `group`: a free one, or one an idle connection gives up.
    private mutating func reserve(_ group: Group) -> Grant? {
        if open[group, default: 0] < maxPerGroup {
            open[group, default: 0] += 1
            return .connect(evicting: nil)
        }
        // The least recently used idle connection of the group makes room.
        if let index = idle.firstIndex(where: { $0.group == group }) {
            let victim = idle.remove(at: index)
            return .connect(evicting: victim.id)   // its place passes to the new connection
        }
        return nil
    }

    /// The login that reserved a place got its connection logged in: it is busy now.
    mutating func connected(group: Group) {
        busy[group, default: 0] += 1
    }

    /// A reserved place was not used (the dial or the login failed, the client left), or a
    /// busy connection closed for good. The place goes to the first waiter of the group.
    mutating func placeFreed(group: Group, wasBusy: Bool) -> Wake? {
        if wasBusy { busy[group, default: 0] -= 1 }
        open[group, default: 0] -= 1
        return wakeForFreePlace(in: group)
    }

    private mutating func wakeForFreePlace(in group: Group) -> Wake? {
        guard let index = waiters.firstIndex(where: { $0.group == group }) else { return nil }
        let waiter = waiters.remove(at: index)
        open[group, default: 0] += 1
        return Wake(waiter: waiter.id, grant: .connect(evicting: nil))
    }

    /// A busy connection's client left and the connection was drained and reset
    /// (`reusable`), or could not be (`!reusable`: it is closed).
    mutating func released(connection: Int, key: Key, group: Group, loop: Loop, reusable: Bool,
                           retireAt: ContinuousClock.Instant, now: ContinuousClock.Instant) -> ReleaseResult {
        busy[group, default: 0] -= 1
        guard reusable, retireAt > now else {
            open[group, default: 0] -= 1
            return .close(wake: wakeForFreePlace(in: group))
        }
        if let index = waiters.firstIndex(where: { $0.key == key && $0.loop == loop }) {
            let waiter = waiters.remove(at: index)
            busy[group, default: 0] += 1
            return .handedTo(waiter: waiter.id)
        }
        if waiters.contains(where: { $0.group == group }) {
            // Someone of another shape waits for this group's place: it gets the place.
            return .close(wake: wakeReplacing(in: group))
        }
        idle.append(Idle(id: connection, key: key, group: group, loop: loop, idleSince: now, retireAt: retireAt))
        return .pooled
    }

    /// The closing connection's place passes straight to the group's first waiter.
    private mutating func wakeReplacing(in group: Group) -> Wake? {
        guard let index = waiters.firstIndex(where: { $0.group == group }) else {
            open[group, default: 0] -= 1
            return nil
        }
        let waiter = waiters.remove(at: index)
        return Wake(waiter: waiter.id, grant: .connect(evicting: nil))
    }

    /// A waiter's deadline passed (or its login was cancelled); false when it was already woken.
    mutating func waiterGone(_ id: Int) -> Bool {
        guard let index = waiters.firstIndex(where: { $0.id == id }) else { return false }
        waiters.remove(at: index)
        return true
    }

    /// Idle connections to close now: retired, idle past the timeout (beyond `minIdle` of
    /// their group), or matching `unusable` (their endpoint was demoted, drained, disabled or
    /// is down). Their places go to waiters.
    mutating func sweep(now: ContinuousClock.Instant, unusable: (Group) -> Bool = { _ in false }) -> (close: [Int], wake: [Wake]) {
        var kept: [Idle] = []
        var closing: [Idle] = []
        var idleCount: [Group: Int] = [:]
        for c in idle { idleCount[c.group, default: 0] += 1 }
        // Oldest first, so the ones the timeout spares are the most recently used.
        for c in idle {
            let timedOut = now - c.idleSince >= idleTimeout && idleCount[c.group, default: 0] > minIdle
            if c.retireAt <= now || timedOut || unusable(c.group) {
                closing.append(c)
                idleCount[c.group, default: 0] -= 1
            } else {
                kept.append(c)
            }
        }
        idle = kept
        var wakes: [Wake] = []
        for c in closing {
            open[c.group, default: 0] -= 1
            if let wake = wakeForFreePlace(in: c.group) { wakes.append(wake) }
        }
        return (closing.map(\.id), wakes)
    }

    /// An idle connection closed by itself (the server or the network ended it).
    mutating func idleClosed(_ id: Int) -> Wake? {
        guard let index = idle.firstIndex(where: { $0.id == id }) else { return nil }
        let c = idle.remove(at: index)
        open[c.group, default: 0] -= 1
        return wakeForFreePlace(in: c.group)
    }

    /// Every idle connection, for shutdown.
    mutating func drainAll() -> [Int] {
        defer { idle.removeAll() }
        for c in idle { open[c.group, default: 0] -= 1 }
        return idle.map(\.id)
    }

    /// The group's figures: idle, busy, waiting and open.
    func figures(_ group: Group) -> (idle: Int, busy: Int, waiting: Int, open: Int) {
        (idle.count(where: { $0.group == group }), busy[group, default: 0],
         waiters.count(where: { $0.group == group }), open[group, default: 0])
    }

    var groups: Set<Group> { Set(open.keys).union(waiters.map(\.group)) }
}
