import NIOCore

/// Transaction manager request (0x0E).
public struct TransactionManagerRequest: Sendable, Hashable {
    public static let getDTCAddress: UInt16 = 0
    public static let propagate: UInt16 = 1
    public static let begin: UInt16 = 5
    public static let promote: UInt16 = 6
    public static let commit: UInt16 = 7
    public static let rollback: UInt16 = 8
    public static let save: UInt16 = 9

    public var allHeaders: AllHeaders?
    public var requestType: UInt16
    /// Request-specific bytes after the type.
    public var payload: [UInt8]

    public init(allHeaders: AllHeaders? = AllHeaders(transactionDescriptor: 0), requestType: UInt16, payload: [UInt8] = []) {
        self.allHeaders = allHeaders
        self.requestType = requestType
        self.payload = payload
    }

    public init(parsing payload: ByteBuffer) throws {
        var b = payload
        allHeaders = AllHeaders.isPresent(in: payload) ? try AllHeaders.read(from: &b, field: "TM.ALL_HEADERS") : nil
        requestType = try b.tdsU16LE("TM.RequestType")
        self.payload = b.tdsRest()
    }

    public func write(into buffer: inout ByteBuffer) {
        allHeaders?.write(into: &buffer)
        buffer.tdsWriteU16LE(requestType)
        buffer.writeBytes(payload)
    }

    public var requestName: String {
        switch requestType {
        case Self.getDTCAddress: return "TM_GET_DTC_ADDRESS"
        case Self.propagate: return "TM_PROPAGATE_XACT"
        case Self.begin: return "TM_BEGIN_XACT"
        case Self.promote: return "TM_PROMOTE_XACT"
        case Self.commit: return "TM_COMMIT_XACT"
        case Self.rollback: return "TM_ROLLBACK_XACT"
        case Self.save: return "TM_SAVE_XACT"
        default: return "TM_\(requestType)"
        }
    }

    /// BEGIN: isolation level byte (0 = unchanged, 1 read uncommitted ... 5 snapshot).
    public var isolationLevel: UInt8? {
        guard requestType == Self.begin else { return nil }
        return payload.first
    }

    /// BEGIN/COMMIT/ROLLBACK/SAVE: the transaction name (B_VARCHAR).
    public var transactionName: String? {
        var b = ByteBuffer(bytes: payload)
        switch requestType {
        case Self.begin:
            guard (try? b.tdsU8("TM.IsolationLevel")) != nil else { return nil }
        case Self.commit, Self.rollback, Self.save:
            break
        default:
            return nil
        }
        return try? b.tdsBVarchar("TM.Name")
    }

    /// COMMIT/ROLLBACK: whether a new transaction begins at once (flags bit 0x01 after the name).
    public var beginsNewTransaction: Bool? {
        guard requestType == Self.commit || requestType == Self.rollback else { return nil }
        var b = ByteBuffer(bytes: payload)
        guard (try? b.tdsBVarchar("TM.Name")) != nil else { return nil }
        guard let flags = try? b.tdsU8("TM.Flags") else { return false }
        return flags & 0x01 != 0
    }

    /// COMMIT/ROLLBACK with a new transaction: its isolation level and name.
    public var newTransaction: (isolationLevel: UInt8, name: String)? {
        guard beginsNewTransaction == true else { return nil }
        var b = ByteBuffer(bytes: payload)
        guard (try? b.tdsBVarchar("TM.Name")) != nil, (try? b.tdsU8("TM.Flags")) != nil,
              let level = try? b.tdsU8("TM.NewIsolationLevel"), let name = try? b.tdsBVarchar("TM.NewName") else { return nil }
        return (level, name)
    }

    /// BEGIN: isolation level then name.
    public static func beginTransaction(isolationLevel: UInt8 = 0, name: String = "", transactionDescriptor: UInt64 = 0) -> TransactionManagerRequest {
        var b = ByteBuffer()
        b.writeInteger(isolationLevel)
        b.tdsWriteBVarchar(name)
        return TransactionManagerRequest(allHeaders: AllHeaders(transactionDescriptor: transactionDescriptor),
                                         requestType: begin, payload: b.tdsRest())
    }
}
