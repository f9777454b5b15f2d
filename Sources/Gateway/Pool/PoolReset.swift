import NIOCore
import TDS

/// What a backend connection goes through between two clients: a request still in flight
/// gets an attention and its reply is read up to the attention acknowledgement (MS-TDS
/// 2.2.1.7: a DONE with DONE_ATTN), then an empty SQL batch with RESETCONNECTION (packet
/// status 0x08) makes the server reset the session as after login (temp tables dropped,
/// SET options, language and database back to the login's, open transaction rolled back,
/// CONTEXT_INFO and SESSION_CONTEXT cleared), and its reply must carry the reset
/// acknowledgement (ENVCHANGE 18) and no error. This is PgBouncer's `server_reset_query`
/// moment, done with the protocol's own reset: at release, so a client's transaction never
/// waits in the pool holding locks, and a connection that does not answer is found before
/// anyone takes it. Anything else (no answer within `timeout`, an error, a closed
/// connection) means the connection is closed, never reused.
enum PoolReset {
    static let timeout: TimeAmount = .seconds(5)

    static func run(_ leg: BackendLeg, requestInFlight: Bool) async -> Bool {
        // A closed leg fails the waiting receive: the deadline closes it.
        let cutoff = leg.channel.eventLoop.scheduleTask(in: timeout) { leg.close() }
        defer { cutoff.cancel() }
        do {
            if requestInFlight {
                try await leg.send(TDSMessage(type: .attention, payload: ByteBuffer()))
                var drained = 0
                while true {
                    let message = try await leg.receive()
                    if endsWithAttentionAck(message.payload) { break }
                    drained += 1
                    if drained > 100_000 { return false }
                }
            }
            var payload = ByteBufferAllocator().buffer(capacity: 32)
            SQLBatch(allHeaders: AllHeaders(transactionDescriptor: 0), text: "").write(into: &payload)
            try await leg.send(TDSMessage(type: .sqlBatch, status: .resetConnection, payload: payload))
            let reply = try await leg.receive()
            var acknowledged = false
            for token in try TDSTokenParser.parseAll(reply.payload) {
                switch token {
                case .envChange(.resetConnectionAck): acknowledged = true
                case .error: return false
                default: continue
                }
            }
            return acknowledged
        } catch {
            return false
        }
    }

    /// The message ends with a DONE token whose status has DONE_ATTN (0x0020).
    static func endsWithAttentionAck(_ payload: ByteBuffer) -> Bool {
        // DONE (TDS 7.2+): 0xFD, Status (2), CurCmd (2), DoneRowCount (8).
        let size = 13
        guard payload.readableBytes >= size,
              let type = payload.getInteger(at: payload.writerIndex - size, as: UInt8.self),
              let status = payload.getInteger(at: payload.writerIndex - size + 1, endianness: .little, as: UInt16.self)
        else { return false }
        return type == 0xFD && status & 0x0020 != 0
    }
}
