import NIOCore

/// One token of a server reply (a 0x04 message body).
public enum TDSToken: Hashable, Sendable {
    case loginAck(LoginAck)
    case envChange(EnvChange)
    case error(ServerMessage)
    case info(ServerMessage)
    case done(Done)
    case doneProc(Done)
    case doneInProc(Done)
    case featureExtAck([FeatureAck])
    case fedAuthInfo(FedAuthInfo)
    case returnStatus(Int32)
    case colMetadata([TDSColumn])
    case row([TDSValue])
    case nbcRow([TDSValue])
    case order([UInt16])
    case sspi([UInt8])
    case returnValue(ReturnValue)
    /// Any other token, with the bytes after its type and length prefix.
    case other(type: UInt8, data: [UInt8])

    public var type: UInt8 {
        switch self {
        case .loginAck: return TDSTokenType.loginAck
        case .envChange: return TDSTokenType.envChange
        case .error: return TDSTokenType.error
        case .info: return TDSTokenType.info
        case .done: return TDSTokenType.done
        case .doneProc: return TDSTokenType.doneProc
        case .doneInProc: return TDSTokenType.doneInProc
        case .featureExtAck: return TDSTokenType.featureExtAck
        case .fedAuthInfo: return TDSTokenType.fedAuthInfo
        case .returnStatus: return TDSTokenType.returnStatus
        case .colMetadata: return TDSTokenType.colMetadata
        case .row: return TDSTokenType.row
        case .nbcRow: return TDSTokenType.nbcRow
        case .order: return TDSTokenType.order
        case .sspi: return TDSTokenType.sspi
        case .returnValue: return TDSTokenType.returnValue
        case .other(let t, _): return t
        }
    }

    public var name: String { TDSTokenType.name(type) }

    /// Writes the token. ROW and NBCROW need the result set's columns: pass them here, or use
    /// `TDSTokenWriter`, which remembers the last COLMETADATA. Without columns a row is written
    /// with no values.
    public func write(into buffer: inout ByteBuffer) {
        write(into: &buffer, columns: [])
    }

    public func write(into buffer: inout ByteBuffer, columns: [TDSColumn]) {
        // A body longer than the u16 length can say is cut there: the token stays framed
        // (its length and its bytes agree) instead of wrapping into a corrupt stream. ERROR
        // and INFO shorten their message to fit, so only oversized SSPI data gets cut.
        func u16Token(_ body: (inout ByteBuffer) -> Void) {
            var b = ByteBuffer()
            body(&b)
            let length = min(b.readableBytes, Int(UInt16.max))
            buffer.writeInteger(type)
            buffer.tdsWriteU16LE(UInt16(length))
            var part = b.readSlice(length: length) ?? ByteBuffer()
            buffer.writeBuffer(&part)
        }
        switch self {
        case .loginAck(let ack): u16Token { ack.writeBody(into: &$0) }
        case .envChange(let change): u16Token { change.writeBody(into: &$0) }
        case .error(let m), .info(let m): u16Token { m.writeBody(into: &$0) }
        case .done(let d), .doneProc(let d), .doneInProc(let d):
            buffer.writeInteger(type)
            d.writeBody(into: &buffer)
        case .featureExtAck(let acks):
            buffer.writeInteger(type)
            FeatureAck.writeList(acks, into: &buffer)
        case .fedAuthInfo(let info):
            var b = ByteBuffer()
            info.writeBody(into: &b)
            buffer.writeInteger(type)
            buffer.tdsWriteU32LE(UInt32(truncatingIfNeeded: b.readableBytes))
            buffer.writeBuffer(&b)
        case .returnStatus(let v):
            buffer.writeInteger(type)
            buffer.tdsWriteI32LE(v)
        case .colMetadata(let cols):
            TDSToken.writeColMetadata(cols, into: &buffer)
        case .row(let values):
            TDSToken.writeRow(values, columns: columns, into: &buffer)
        case .nbcRow(let values):
            TDSToken.writeNBCRow(values, columns: columns, into: &buffer)
        case .order(let cols):
            u16Token { b in for c in cols { b.tdsWriteU16LE(c) } }
        case .sspi(let data):
            u16Token { $0.writeBytes(data) }
        case .returnValue(let rv):
            buffer.writeInteger(type)
            rv.writeBody(into: &buffer)
        case let .other(t, data):
            buffer.writeInteger(t)
            switch TDSTokenType.lengthRule(t) {
            case .u16:
                buffer.tdsWriteU16LE(UInt16(clamping: data.count))
                buffer.writeBytes(data.prefix(Int(UInt16.max)))
            case .u32:
                buffer.tdsWriteU32LE(UInt32(clamping: data.count))
                buffer.writeBytes(data.prefix(Int(UInt32.max)))
            case .fixed, .special:
                buffer.writeBytes(data)
            }
        }
    }

    public static func writeColMetadata(_ columns: [TDSColumn], into buffer: inout ByteBuffer) {
        buffer.writeInteger(TDSTokenType.colMetadata)
        if columns.isEmpty {
            // "No metadata" marker.
            buffer.tdsWriteU16LE(0xFFFF)
            return
        }
        buffer.tdsWriteU16LE(UInt16(truncatingIfNeeded: min(columns.count, 0xFFFE)))
        for c in columns.prefix(0xFFFE) {
            buffer.tdsWriteU32LE(c.userType)
            buffer.tdsWriteU16LE(c.flags)
            c.type.write(into: &buffer)
            buffer.tdsWriteBVarchar(c.name)
        }
    }

    /// ROW: every column's value in order; missing values are NULL, extra ones dropped.
    public static func writeRow(_ values: [TDSValue], columns: [TDSColumn], into buffer: inout ByteBuffer) {
        buffer.writeInteger(TDSTokenType.row)
        for (i, c) in columns.enumerated() {
            (i < values.count ? values[i] : .null).write(as: c.type, into: &buffer)
        }
    }

    /// NBCROW: null bitmap (bit i = column i is NULL), then only the non-NULL values.
    public static func writeNBCRow(_ values: [TDSValue], columns: [TDSColumn], into buffer: inout ByteBuffer) {
        buffer.writeInteger(TDSTokenType.nbcRow)
        var bitmap = [UInt8](repeating: 0, count: (columns.count + 7) / 8)
        for i in columns.indices where i >= values.count || values[i] == .null {
            bitmap[i / 8] |= 1 << UInt8(i % 8)
        }
        buffer.writeBytes(bitmap)
        for (i, c) in columns.enumerated() where i < values.count && values[i] != .null {
            values[i].write(as: c.type, into: &buffer)
        }
    }
}

/// Writes tokens, remembering the last COLMETADATA so ROW/NBCROW tokens get their types.
public struct TDSTokenWriter: Sendable {
    public private(set) var columns: [TDSColumn] = []

    public init() {}

    public mutating func write(_ token: TDSToken, into buffer: inout ByteBuffer) {
        if case .colMetadata(let cols) = token { columns = cols }
        token.write(into: &buffer, columns: columns)
    }

    public mutating func write(_ tokens: [TDSToken], into buffer: inout ByteBuffer) {
        for t in tokens { write(t, into: &buffer) }
    }
}
