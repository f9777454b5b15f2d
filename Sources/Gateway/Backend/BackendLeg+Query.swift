import NIOCore
import Routing
import TDS

extension BackendLeg {
    /// Runs one SQL batch on a logged-in backend leg and returns its rows (probes, and the
    /// landing check of sessions that must not write). An ERROR token fails it.
    func query(_ sql: String) async throws -> [[TDSValue]] {
        var payload = ByteBufferAllocator().buffer(capacity: 64 + sql.utf16.count * 2)
        SQLBatch(allHeaders: AllHeaders(transactionDescriptor: 0), text: sql).write(into: &payload)
        try await send(TDSMessage(type: .sqlBatch, payload: payload))
        let reply = try await receive()
        var rows: [[TDSValue]] = []
        for token in try TDSTokenParser.parseAll(reply.payload) {
            switch token {
            case .row(let values), .nbcRow(let values): rows.append(values)
            case .error(let m): throw BackendError(description: "error \(m.number): \(m.message)")
            default: continue
            }
        }
        return rows
    }

    /// What the session's database is on this leg: READ_WRITE on a primary, READ_ONLY on a
    /// readable secondary (the same query probes use).
    func updateability() async throws -> ObservedRole {
        let rows = try await query(RoleProbe.updateabilityQuery)
        if case .string(let s)? = rows.first?.first { return RoleProbe.role(updateability: s) }
        return .unknown
    }
}
