import TDS

/// Decides the SESSIONSTATE tokens of a session that negotiated SESSIONRECOVERY: it holds
/// what the client was last told (the FEATUREEXTACK, then every token since) and turns a
/// new state into the token that brings the client up to date, or nothing.
struct SessionStateReporter: Sendable {
    private var nextSequence: UInt32 = 0
    private var reported: [UInt8: [UInt8]]
    /// Ids last sent in a token without fRecoverable: the client counts them as
    /// unrecoverable until a recoverable token names them again.
    private var unrecoverable: Set<UInt8> = []

    init(acknowledged: [SessionStateEntry]) {
        reported = Dictionary(acknowledged.map { ($0.id, $0.value) }, uniquingKeysWith: { $1 })
    }

    /// After RESETCONNECTION the client drops its deltas and holds the initial state again.
    mutating func rebase(_ initial: [SessionStateEntry]) {
        reported = Dictionary(initial.map { ($0.id, $0.value) }, uniquingKeysWith: { $1 })
        unrecoverable = []
    }

    /// The token for `current` (every recoverable state as entries), or nil when the client
    /// already knows it. A state the client holds that is gone now is sent empty.
    mutating func token(for current: [SessionStateEntry], recoverable: Bool) -> SessionStateToken? {
        let now = Dictionary(current.map { ($0.id, $0.value) }, uniquingKeysWith: { $1 })
        var changed = Set(now.filter { reported[$0.key] != $0.value }.keys)
        changed.formUnion(reported.keys.filter { now[$0] == nil && reported[$0] != [] })
        if recoverable { changed.formUnion(unrecoverable) }
        guard !changed.isEmpty else { return nil }
        let entries = changed.sorted().map { SessionStateEntry(id: $0, value: now[$0] ?? []) }
        for e in entries { reported[e.id] = e.value }
        if recoverable { unrecoverable = [] } else { unrecoverable.formUnion(changed) }
        defer { nextSequence &+= 1 }
        return SessionStateToken(sequenceNumber: nextSequence, recoverable: recoverable, entries: entries)
    }
}
