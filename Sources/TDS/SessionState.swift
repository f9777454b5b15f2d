import NIOCore

/// One `StateId StateLen StateValue` entry of a session state data set (MS-TDS 2.2.7.21).
/// The ids and value layouts belong to the server: clients keep the bytes and send them
/// back in a recovery login (SESSIONRECOVERY, MS-TDS 2.2.6.4).
public struct SessionStateEntry: Hashable, Sendable {
    public var id: UInt8
    public var value: [UInt8]

    public init(id: UInt8, value: [UInt8]) {
        self.id = id
        self.value = value
    }

    /// StateLen is one byte for 0...0xFE; 0xFF announces a DWORD length.
    static func write(_ entries: [SessionStateEntry], into b: inout ByteBuffer) {
        for e in entries {
            b.writeInteger(e.id)
            if e.value.count < 0xFF {
                b.writeInteger(UInt8(e.value.count))
            } else {
                b.writeInteger(UInt8(0xFF))
                b.tdsWriteU32LE(UInt32(truncatingIfNeeded: e.value.count))
            }
            b.writeBytes(e.value)
        }
    }

    /// Reads entries until `b` is empty.
    static func readAll(from b: inout ByteBuffer, field: String) throws -> [SessionStateEntry] {
        var out: [SessionStateEntry] = []
        while b.readableBytes > 0 {
            let id = try b.tdsU8(field + ".StateId")
            var length = Int(try b.tdsU8(field + ".StateLen"))
            if length == 0xFF { length = Int(try b.tdsU32LE(field + ".StateLen")) }
            guard length <= b.readableBytes else {
                throw TDSDecodingError(field: field + ".StateValue", reason: "length \(length) exceeds the \(b.readableBytes) bytes left")
            }
            out.append(SessionStateEntry(id: id, value: try b.tdsBytes(field + ".StateValue", count: length)))
        }
        return out
    }

    /// The FEATUREEXTACK data of SESSIONRECOVERY: the data set alone.
    public static func dataSetBytes(_ entries: [SessionStateEntry]) -> [UInt8] {
        var b = ByteBuffer()
        write(entries, into: &b)
        return b.readableBytesView.map { $0 }
    }

    public static func parseDataSet(_ bytes: [UInt8], field: String = "SESSIONRECOVERY.FeatureAckData") throws -> [SessionStateEntry] {
        var b = ByteBuffer(bytes: bytes)
        return try readAll(from: &b, field: field)
    }
}

/// SESSIONSTATE (0xE4): a change of recoverable session state, sent only when SESSIONRECOVERY
/// was negotiated and always followed by DONE or DONEPROC with DONE_FINAL.
public struct SessionStateToken: Hashable, Sendable {
    /// Starts at 0 and grows by one per token on a connection.
    public var sequenceNumber: UInt32
    /// Status bit 0 (fRecoverable): false means the session cannot be recovered any more.
    public var recoverable: Bool
    public var entries: [SessionStateEntry]

    public init(sequenceNumber: UInt32, recoverable: Bool, entries: [SessionStateEntry]) {
        self.sequenceNumber = sequenceNumber
        self.recoverable = recoverable
        self.entries = entries
    }

    /// The whole token: type, DWORD length, SeqNo, Status, data set.
    public func write(into buffer: inout ByteBuffer) {
        var body = ByteBuffer()
        body.tdsWriteU32LE(sequenceNumber)
        body.writeInteger(UInt8(recoverable ? 0x01 : 0x00))
        SessionStateEntry.write(entries, into: &body)
        buffer.writeInteger(TDSTokenType.sessionState)
        buffer.tdsWriteU32LE(UInt32(truncatingIfNeeded: body.readableBytes))
        buffer.writeBuffer(&body)
    }

    /// `body` is what follows the DWORD length (the token parser hands it over as
    /// `.other(type: 0xE4, data:)`).
    public init(body: [UInt8]) throws {
        var b = ByteBuffer(bytes: body)
        sequenceNumber = try b.tdsU32LE("SESSIONSTATE.SeqNo")
        recoverable = (try b.tdsU8("SESSIONSTATE.Status")) & 0x01 != 0
        entries = try SessionStateEntry.readAll(from: &b, field: "SESSIONSTATE")
    }
}

/// One chunk of SESSIONRECOVERY feature data in a LOGIN7: DWORD length, then database
/// (B_VARCHAR), collation (BYTELEN 0 or 5), language (B_VARCHAR) and the state data set.
/// In the second ("to be") chunk an empty database, collation or language means "as in
/// the initial chunk", and the data set holds only the states that changed.
public struct SessionRecoveryData: Hashable, Sendable {
    public var database: String
    public var collation: [UInt8]
    public var language: String
    public var states: [SessionStateEntry]

    public init(database: String, collation: [UInt8], language: String, states: [SessionStateEntry]) {
        self.database = database
        self.collation = collation
        self.language = language
        self.states = states
    }

    func write(into b: inout ByteBuffer) {
        var body = ByteBuffer()
        body.tdsWriteBVarchar(database)
        body.tdsWriteBVarbyte(collation)
        body.tdsWriteBVarchar(language)
        SessionStateEntry.write(states, into: &body)
        b.tdsWriteU32LE(UInt32(truncatingIfNeeded: body.readableBytes))
        b.writeBuffer(&body)
    }

    static func read(from b: inout ByteBuffer, field: String) throws -> SessionRecoveryData {
        let length = Int(try b.tdsU32LE(field + ".Length"))
        var body = try b.tdsSlice(field, count: length)
        let database = try body.tdsBVarchar(field + ".RecoveryDatabase")
        let collation = try body.tdsBVarbyte(field + ".RecoveryCollation")
        guard collation.isEmpty || collation.count == 5 else {
            throw TDSDecodingError(field: field + ".RecoveryCollation", reason: "a collation is 0 or 5 bytes, not \(collation.count)")
        }
        let language = try body.tdsBVarchar(field + ".RecoveryLanguage")
        let states = try SessionStateEntry.readAll(from: &body, field: field)
        return SessionRecoveryData(database: database, collation: collation, language: language, states: states)
    }
}

/// The SESSIONRECOVERY (0x01) FeatureExt data of a LOGIN7: empty on a new connection
/// (the client asks for the feature), or the initial state the server acknowledged at the
/// first login followed by the state to restore.
public enum SessionRecoveryRequest: Hashable, Sendable {
    case negotiate
    case recover(initial: SessionRecoveryData, current: SessionRecoveryData)

    public init(featureData: [UInt8]) throws {
        if featureData.isEmpty {
            self = .negotiate
            return
        }
        var b = ByteBuffer(bytes: featureData)
        let initial = try SessionRecoveryData.read(from: &b, field: "SESSIONRECOVERY.InitSessionRecoveryData")
        let current = try SessionRecoveryData.read(from: &b, field: "SESSIONRECOVERY.SessionRecoveryDataToBe")
        guard b.readableBytes == 0 else {
            throw TDSDecodingError(field: "SESSIONRECOVERY", reason: "\(b.readableBytes) bytes after the recovery data")
        }
        self = .recover(initial: initial, current: current)
    }

    public var featureData: [UInt8] {
        switch self {
        case .negotiate: return []
        case .recover(let initial, let current):
            var b = ByteBuffer()
            initial.write(into: &b)
            current.write(into: &b)
            return b.readableBytesView.map { $0 }
        }
    }
}
