import NIOCore

public struct DoneStatus: OptionSet, Hashable, Sendable {
    public var rawValue: UInt16
    public init(rawValue: UInt16) { self.rawValue = rawValue }

    public static let more = DoneStatus(rawValue: 0x0001)
    public static let error = DoneStatus(rawValue: 0x0002)
    public static let inTransaction = DoneStatus(rawValue: 0x0004)
    public static let count = DoneStatus(rawValue: 0x0010)
    public static let attention = DoneStatus(rawValue: 0x0020)
    public static let serverError = DoneStatus(rawValue: 0x0100)
}

/// DONE (0xFD), DONEPROC (0xFE), DONEINPROC (0xFF) bodies.
public struct Done: Hashable, Sendable {
    public var status: DoneStatus
    public var currentCommand: UInt16
    public var rowCount: UInt64

    public init(status: DoneStatus = [], currentCommand: UInt16 = 0, rowCount: UInt64 = 0) {
        self.status = status
        self.currentCommand = currentCommand
        self.rowCount = rowCount
    }

    func writeBody(into b: inout ByteBuffer) {
        b.tdsWriteU16LE(status.rawValue)
        b.tdsWriteU16LE(currentCommand)
        b.tdsWriteU64LE(rowCount)
    }

    static func read(body b: inout ByteBuffer, name: String) throws -> Done {
        let status = try b.tdsU16LE(name + ".Status")
        let command = try b.tdsU16LE(name + ".CurCmd")
        let count = try b.tdsU64LE(name + ".DoneRowCount")
        return Done(status: DoneStatus(rawValue: status), currentCommand: command, rowCount: count)
    }
}
