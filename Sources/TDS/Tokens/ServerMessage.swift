import NIOCore

/// ERROR (0xAA) and INFO (0xAB) bodies.
public struct ServerMessage: Hashable, Sendable {
    public var number: Int32
    public var state: UInt8
    /// Severity ("class"): 0-10 informational, 11+ errors, 20+ fatal to the connection.
    public var severity: UInt8
    public var message: String
    public var serverName: String
    public var procedureName: String
    public var lineNumber: Int32

    public var class_: UInt8 {
        get { severity }
        set { severity = newValue }
    }

    public init(number: Int32, state: UInt8 = 1, severity: UInt8, message: String, serverName: String = "",
                procedureName: String = "", lineNumber: Int32 = 1) {
        self.number = number
        self.state = state
        self.severity = severity
        self.message = message
        self.serverName = serverName
        self.procedureName = procedureName
        self.lineNumber = lineNumber
    }

    public init(number: Int32, state: UInt8 = 1, class_: UInt8, message: String, serverName: String = "",
                procedureName: String = "", lineNumber: Int32 = 1) {
        self.init(number: number, state: state, severity: class_, message: message, serverName: serverName,
                  procedureName: procedureName, lineNumber: lineNumber)
    }

    /// The body always fits the token's u16 length: server and procedure names are cut at
    /// 255 characters (B_VARCHAR), the message at what is left, ending with "…" when cut.
    func writeBody(into b: inout ByteBuffer) {
        let server = TDSString.utf16Prefix(serverName, maxUnits: 255)
        let procedure = TDSString.utf16Prefix(procedureName, maxUnits: 255)
        // Number, state, class, the message's length, line number; each name's length byte.
        let fixed = 4 + 1 + 1 + 2 + 4 + 1 + 1
        let room = (Int(UInt16.max) - fixed - 2 * (server.count + procedure.count)) / 2
        var text = TDSString.utf16Prefix(message, maxUnits: room)
        if text.count < message.utf16.count {
            text = TDSString.utf16Prefix(message, maxUnits: room - 1) + Array("…".utf16)
        }
        b.tdsWriteI32LE(number)
        b.writeInteger(state)
        b.writeInteger(severity)
        b.tdsWriteU16LE(UInt16(text.count))
        for u in text { b.tdsWriteU16LE(u) }
        for name in [server, procedure] {
            b.writeInteger(UInt8(name.count))
            for u in name { b.tdsWriteU16LE(u) }
        }
        b.tdsWriteI32LE(lineNumber)
    }

    static func read(body b: inout ByteBuffer, name: String) throws -> ServerMessage {
        let number = try b.tdsI32LE(name + ".Number")
        let state = try b.tdsU8(name + ".State")
        let severity = try b.tdsU8(name + ".Class")
        let message = try b.tdsUSVarchar(name + ".MsgText")
        let server = try b.tdsBVarchar(name + ".ServerName")
        let proc = try b.tdsBVarchar(name + ".ProcName")
        let line = try b.tdsI32LE(name + ".LineNumber")
        return ServerMessage(number: number, state: state, severity: severity, message: message, serverName: server,
                             procedureName: proc, lineNumber: line)
    }
}
