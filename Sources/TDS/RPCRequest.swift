import NIOCore

public enum RPCProcedure: Hashable, Sendable {
    case name(String)
    case id(UInt16)

    public static let spCursor = RPCProcedure.id(1)
    public static let spCursorOpen = RPCProcedure.id(2)
    public static let spCursorPrepare = RPCProcedure.id(3)
    public static let spCursorExecute = RPCProcedure.id(4)
    public static let spCursorPrepExec = RPCProcedure.id(5)
    public static let spCursorUnprepare = RPCProcedure.id(6)
    public static let spCursorFetch = RPCProcedure.id(7)
    public static let spCursorOption = RPCProcedure.id(8)
    public static let spCursorClose = RPCProcedure.id(9)
    public static let spExecuteSQL = RPCProcedure.id(10)
    public static let spPrepare = RPCProcedure.id(11)
    public static let spExecute = RPCProcedure.id(12)
    public static let spPrepExec = RPCProcedure.id(13)
    public static let spPrepExecRPC = RPCProcedure.id(14)
    public static let spUnprepare = RPCProcedure.id(15)

    /// The procedure's name; well-known ids are spelled out.
    public var displayName: String {
        switch self {
        case .name(let n): return n
        case .id(let id):
            let names = ["", "sp_cursor", "sp_cursoropen", "sp_cursorprepare", "sp_cursorexecute", "sp_cursorprepexec",
                         "sp_cursorunprepare", "sp_cursorfetch", "sp_cursoroption", "sp_cursorclose", "sp_executesql",
                         "sp_prepare", "sp_execute", "sp_prepexec", "sp_prepexecrpc", "sp_unprepare"]
            return Int(id) < names.count && id > 0 ? names[Int(id)] : "proc#\(id)"
        }
    }
}

public struct RPCParameter: Sendable, Hashable {
    public var name: String
    /// 0x01 by-reference (output), 0x02 default value, 0x08 encrypted.
    public var statusFlags: UInt8
    public var type: TDSTypeInfo
    public var value: TDSValue

    /// Wire bytes of the value as received, reused while type and value are unchanged (a driver
    /// may chunk PLP data or pad decimals differently from this writer).
    var received: Received?

    struct Received: Sendable, Hashable {
        var type: TDSTypeInfo
        var value: TDSValue
        var bytes: [UInt8]
    }

    public init(name: String, statusFlags: UInt8 = 0, type: TDSTypeInfo, value: TDSValue) {
        self.name = name
        self.statusFlags = statusFlags
        self.type = type
        self.value = value
        self.received = nil
    }

    public var isOutput: Bool { statusFlags & 0x01 != 0 }

    public static func == (lhs: RPCParameter, rhs: RPCParameter) -> Bool {
        lhs.name == rhs.name && lhs.statusFlags == rhs.statusFlags && lhs.type == rhs.type && lhs.value == rhs.value
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(statusFlags)
        hasher.combine(type)
        hasher.combine(value)
    }

    func write(into buffer: inout ByteBuffer) {
        buffer.tdsWriteBVarchar(name)
        buffer.writeInteger(statusFlags)
        type.write(into: &buffer)
        if let received, received.type == type, received.value == value {
            buffer.writeBytes(received.bytes)
        } else {
            value.write(as: type, into: &buffer)
        }
    }

    static func read(from b: inout ByteBuffer, index: Int) throws -> RPCParameter {
        let f = "RPC.Parameter[\(index)]"
        let name = try b.tdsBVarchar(f + ".ParamName")
        let status = try b.tdsU8(f + ".StatusFlags")
        guard status & 0x08 == 0 else {
            throw TDSDecodingError(field: f + ".StatusFlags", reason: "encrypted (Always Encrypted) parameters are not supported")
        }
        let type = try TDSTypeInfo.read(from: &b, field: f + ".TYPE_INFO")
        let before = b
        let value = try TDSValue.read(type, from: &b, field: f + ".Value")
        let bytes = before.getBytes(at: before.readerIndex, length: b.readerIndex - before.readerIndex) ?? []
        var p = RPCParameter(name: name, statusFlags: status, type: type, value: value)
        p.received = Received(type: type, value: value, bytes: bytes)
        return p
    }
}

/// RPC request (0x03). Only the first request of a batched RPC message is decoded; the rest
/// (from the batch separator on) is kept as raw bytes and written back unchanged.
public struct RPCRequest: Sendable, Hashable {
    public var allHeaders: AllHeaders?
    public var procedure: RPCProcedure
    /// 0x01 WithRecompile, 0x02 NoMetaData, 0x04 ReuseMetaData.
    public var optionFlags: UInt16
    public var parameters: [RPCParameter]
    /// Bytes from the batch separator (0xFF, 0x80) or NoExec flag (0xFE) on.
    public var remainingRequests: [UInt8]

    public init(allHeaders: AllHeaders? = AllHeaders(transactionDescriptor: 0), procedure: RPCProcedure,
                optionFlags: UInt16 = 0, parameters: [RPCParameter] = [], remainingRequests: [UInt8] = []) {
        self.allHeaders = allHeaders
        self.procedure = procedure
        self.optionFlags = optionFlags
        self.parameters = parameters
        self.remainingRequests = remainingRequests
    }

    public init(parsing payload: ByteBuffer) throws {
        var b = payload
        allHeaders = AllHeaders.isPresent(in: payload) ? try AllHeaders.read(from: &b, field: "RPC.ALL_HEADERS") : nil
        let nameLength = try b.tdsU16LE("RPC.NameLenProcID")
        if nameLength == 0xFFFF {
            procedure = .id(try b.tdsU16LE("RPC.ProcID"))
        } else {
            procedure = .name(try b.tdsUTF16("RPC.ProcName", units: Int(nameLength)))
        }
        optionFlags = try b.tdsU16LE("RPC.OptionFlags")
        parameters = []
        remainingRequests = []
        while let first = b.getInteger(at: b.readerIndex, as: UInt8.self) {
            if first == 0xFF || first == 0xFE || first == 0x80 {
                remainingRequests = b.tdsRest()
                break
            }
            parameters.append(try RPCParameter.read(from: &b, index: parameters.count))
        }
    }

    public func write(into buffer: inout ByteBuffer) {
        allHeaders?.write(into: &buffer)
        switch procedure {
        case .id(let id):
            buffer.tdsWriteU16LE(0xFFFF)
            buffer.tdsWriteU16LE(id)
        case .name(let n):
            buffer.tdsWriteUSVarchar(n)
        }
        buffer.tdsWriteU16LE(optionFlags)
        for p in parameters { p.write(into: &buffer) }
        buffer.writeBytes(remainingRequests)
    }

    /// The SQL text of sp_executesql / sp_prepexec / sp_prepare (their first string parameter).
    public var sqlText: String? {
        let index: Int
        switch procedure {
        case .spExecuteSQL: index = 0
        case .spPrepExec, .spPrepare: index = 2
        case .name(let n):
            // Some drivers call the system procedures by name.
            switch n.lowercased().split(separator: ".").last.map({ $0.trimmingCharacters() }) {
            case "sp_executesql": index = 0
            case "sp_prepexec", "sp_prepare": index = 2
            default: return nil
            }
        default: return nil
        }
        guard index < parameters.count, case .string(let s) = parameters[index].value else { return nil }
        return s
    }
}

extension Substring {
    /// Strips the [brackets] of a quoted identifier.
    fileprivate func trimmingCharacters() -> String {
        var s = self
        if s.hasPrefix("[") { s = s.dropFirst() }
        if s.hasSuffix("]") { s = s.dropLast() }
        return String(s)
    }
}
