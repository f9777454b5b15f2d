import NIOCore

/// SQL collation as sent on the wire (5 bytes: LCID/flags u32 LE, sort id u8).
public enum TDSCollation {
    /// SQL_Latin1_General_CP1_CI_AS, the usual server default.
    public static let `default`: [UInt8] = [0x09, 0x04, 0xD0, 0x00, 0x34]
    public static let length = 5
}

/// TYPE_INFO for COLMETADATA, RETURNVALUE and RPC parameters.
public enum TDSTypeInfo: Hashable, Sendable {
    /// NULLTYPE 0x1F: no data bytes.
    case null
    case int1, int2, int4, int8, bit, real, float8, money, smallMoney, datetime, smallDateTime
    /// INTN 0x26: length 1, 2, 4 or 8.
    case intN(length: UInt8)
    /// BITN 0x68: length 1.
    case bitN
    /// FLTN 0x6D: length 4 or 8.
    case floatN(length: UInt8)
    /// MONEYN 0x6E: length 4 or 8.
    case moneyN(length: UInt8)
    /// DATETIMN 0x6F: length 4 (smalldatetime) or 8.
    case datetimeN(length: UInt8)
    /// GUIDTYPE 0x24, length 16.
    case uniqueidentifier
    /// DECIMALN 0x6A; `length` is the declared maximum value length (drivers send 17).
    case decimal(precision: UInt8, scale: UInt8, length: UInt8 = 17)
    /// NUMERICN 0x6C.
    case numeric(precision: UInt8, scale: UInt8, length: UInt8 = 17)
    /// DATEN 0x28.
    case date
    /// TIMEN 0x29.
    case time(scale: UInt8)
    /// DATETIME2N 0x2A.
    case datetime2(scale: UInt8)
    /// DATETIMEOFFSETN 0x2B.
    case datetimeoffset(scale: UInt8)
    /// NVARCHAR 0xE7, maxLength in bytes; 0xFFFF = nvarchar(max), sent as PLP.
    case nvarchar(maxLength: UInt16, collation: [UInt8] = TDSCollation.default)
    /// NCHAR 0xEF, length in bytes.
    case nchar(length: UInt16, collation: [UInt8] = TDSCollation.default)
    /// BIGVARCHR 0xA7; 0xFFFF = varchar(max), PLP.
    case varchar(maxLength: UInt16, collation: [UInt8] = TDSCollation.default)
    /// BIGCHAR 0xAF.
    case char(length: UInt16, collation: [UInt8] = TDSCollation.default)
    /// BIGVARBIN 0xA5; 0xFFFF = varbinary(max), PLP.
    case varbinary(maxLength: UInt16)
    /// BIGBINARY 0xAD.
    case binary(length: UInt16)

    public static let maxMarker: UInt16 = 0xFFFF

    public var typeByte: UInt8 {
        switch self {
        case .null: return 0x1F
        case .int1: return 0x30
        case .bit: return 0x32
        case .int2: return 0x34
        case .int4: return 0x38
        case .smallDateTime: return 0x3A
        case .real: return 0x3B
        case .money: return 0x3C
        case .datetime: return 0x3D
        case .float8: return 0x3E
        case .smallMoney: return 0x7A
        case .int8: return 0x7F
        case .intN: return 0x26
        case .bitN: return 0x68
        case .floatN: return 0x6D
        case .moneyN: return 0x6E
        case .datetimeN: return 0x6F
        case .uniqueidentifier: return 0x24
        case .decimal: return 0x6A
        case .numeric: return 0x6C
        case .date: return 0x28
        case .time: return 0x29
        case .datetime2: return 0x2A
        case .datetimeoffset: return 0x2B
        case .nvarchar: return 0xE7
        case .nchar: return 0xEF
        case .varchar: return 0xA7
        case .char: return 0xAF
        case .varbinary: return 0xA5
        case .binary: return 0xAD
        }
    }

    /// Byte count of fixed-length types (no length prefix on values), nil for the others.
    public var fixedSize: Int? {
        switch self {
        case .null: return 0
        case .int1, .bit: return 1
        case .int2: return 2
        case .int4, .real, .smallMoney, .smallDateTime: return 4
        case .int8, .float8, .money, .datetime: return 8
        default: return nil
        }
    }

    /// Values travel as PLP chunks (the MAX types).
    public var isPLP: Bool {
        switch self {
        case .nvarchar(let m, _), .varchar(let m, _): return m == TDSTypeInfo.maxMarker
        case .varbinary(let m): return m == TDSTypeInfo.maxMarker
        default: return false
        }
    }

    /// u16 length prefix on values (0xFFFF = NULL).
    var isUShortLength: Bool {
        switch self {
        case .nvarchar, .nchar, .varchar, .char, .varbinary, .binary: return !isPLP
        default: return false
        }
    }

    /// SQL spelling, for logs and dumps.
    public var sqlName: String {
        func len(_ n: UInt16, unicode: Bool) -> String {
            n == TDSTypeInfo.maxMarker ? "max" : String(unicode ? n / 2 : n)
        }
        switch self {
        case .null: return "null"
        case .int1: return "tinyint"
        case .int2: return "smallint"
        case .int4: return "int"
        case .int8: return "bigint"
        case .bit, .bitN: return "bit"
        case .real: return "real"
        case .float8: return "float"
        case .money: return "money"
        case .smallMoney: return "smallmoney"
        case .datetime: return "datetime"
        case .smallDateTime: return "smalldatetime"
        case .intN(let l):
            switch l {
            case 1: return "tinyint"
            case 2: return "smallint"
            case 8: return "bigint"
            default: return "int"
            }
        case .floatN(let l): return l == 4 ? "real" : "float"
        case .moneyN(let l): return l == 4 ? "smallmoney" : "money"
        case .datetimeN(let l): return l == 4 ? "smalldatetime" : "datetime"
        case .uniqueidentifier: return "uniqueidentifier"
        case let .decimal(p, s, _): return "decimal(\(p),\(s))"
        case let .numeric(p, s, _): return "numeric(\(p),\(s))"
        case .date: return "date"
        case .time(let s): return "time(\(s))"
        case .datetime2(let s): return "datetime2(\(s))"
        case .datetimeoffset(let s): return "datetimeoffset(\(s))"
        case .nvarchar(let m, _): return "nvarchar(\(len(m, unicode: true)))"
        case .nchar(let m, _): return "nchar(\(len(m, unicode: true)))"
        case .varchar(let m, _): return "varchar(\(len(m, unicode: false)))"
        case .char(let m, _): return "char(\(len(m, unicode: false)))"
        case .varbinary(let m): return "varbinary(\(len(m, unicode: false)))"
        case .binary(let m): return "binary(\(len(m, unicode: false)))"
        }
    }

    /// Type byte followed by the type-specific TYPE_INFO bytes.
    public func write(into buffer: inout ByteBuffer) {
        buffer.writeInteger(typeByte)
        switch self {
        case .null, .int1, .int2, .int4, .int8, .bit, .real, .float8, .money, .smallMoney, .datetime,
            .smallDateTime, .date:
            break
        case .intN(let l), .floatN(let l), .moneyN(let l), .datetimeN(let l):
            buffer.writeInteger(l)
        case .bitN:
            buffer.writeInteger(UInt8(1))
        case .uniqueidentifier:
            buffer.writeInteger(UInt8(16))
        case let .decimal(p, s, l), let .numeric(p, s, l):
            buffer.writeInteger(l)
            buffer.writeInteger(p)
            buffer.writeInteger(s)
        case .time(let s), .datetime2(let s), .datetimeoffset(let s):
            buffer.writeInteger(s)
        case let .nvarchar(m, c), let .nchar(m, c), let .varchar(m, c), let .char(m, c):
            buffer.tdsWriteU16LE(m)
            var coll = Array(c.prefix(TDSCollation.length))
            while coll.count < TDSCollation.length { coll.append(0) }
            buffer.writeBytes(coll)
        case .varbinary(let m), .binary(let m):
            buffer.tdsWriteU16LE(m)
        }
    }

    public static func read(from buffer: inout ByteBuffer, field: String) throws -> TDSTypeInfo {
        let type = try buffer.tdsU8(field + ".Type")
        func lengthByte(_ allowed: Set<UInt8>) throws -> UInt8 {
            let l = try buffer.tdsU8(field + ".Length")
            guard allowed.contains(l) else {
                throw TDSDecodingError(field: field + ".Length", reason: "length \(l) is not valid for type 0x\(String(type, radix: 16))")
            }
            return l
        }
        func scaleByte() throws -> UInt8 {
            let s = try buffer.tdsU8(field + ".Scale")
            guard s <= 7 else { throw TDSDecodingError(field: field + ".Scale", reason: "scale \(s) exceeds 7") }
            return s
        }
        func collation() throws -> [UInt8] { try buffer.tdsBytes(field + ".Collation", count: TDSCollation.length) }
        switch type {
        case 0x1F: return .null
        case 0x30: return .int1
        case 0x32: return .bit
        case 0x34: return .int2
        case 0x38: return .int4
        case 0x3A: return .smallDateTime
        case 0x3B: return .real
        case 0x3C: return .money
        case 0x3D: return .datetime
        case 0x3E: return .float8
        case 0x7A: return .smallMoney
        case 0x7F: return .int8
        case 0x26: return .intN(length: try lengthByte([1, 2, 4, 8]))
        case 0x68:
            _ = try lengthByte([1])
            return .bitN
        case 0x6D: return .floatN(length: try lengthByte([4, 8]))
        case 0x6E: return .moneyN(length: try lengthByte([4, 8]))
        case 0x6F: return .datetimeN(length: try lengthByte([4, 8]))
        case 0x24:
            _ = try lengthByte([16])
            return .uniqueidentifier
        case 0x6A, 0x6C:
            let l = try lengthByte([5, 9, 13, 17])
            let p = try buffer.tdsU8(field + ".Precision")
            let s = try buffer.tdsU8(field + ".Scale")
            guard p >= 1, p <= 38, s <= p else {
                throw TDSDecodingError(field: field + ".Precision", reason: "precision \(p) scale \(s) out of range")
            }
            return type == 0x6A ? .decimal(precision: p, scale: s, length: l) : .numeric(precision: p, scale: s, length: l)
        case 0x28: return .date
        case 0x29: return .time(scale: try scaleByte())
        case 0x2A: return .datetime2(scale: try scaleByte())
        case 0x2B: return .datetimeoffset(scale: try scaleByte())
        case 0xE7:
            let m = try buffer.tdsU16LE(field + ".MaxLength")
            return .nvarchar(maxLength: m, collation: try collation())
        case 0xEF:
            let m = try buffer.tdsU16LE(field + ".MaxLength")
            return .nchar(length: m, collation: try collation())
        case 0xA7:
            let m = try buffer.tdsU16LE(field + ".MaxLength")
            return .varchar(maxLength: m, collation: try collation())
        case 0xAF:
            let m = try buffer.tdsU16LE(field + ".MaxLength")
            return .char(length: m, collation: try collation())
        case 0xA5: return .varbinary(maxLength: try buffer.tdsU16LE(field + ".MaxLength"))
        case 0xAD: return .binary(length: try buffer.tdsU16LE(field + ".MaxLength"))
        default:
            throw TDSDecodingError(field: field + ".Type", reason: "unsupported data type 0x\(String(type, radix: 16, uppercase: true)) (\(unsupportedTypeName(type)))")
        }
    }

    static func unsupportedTypeName(_ type: UInt8) -> String {
        switch type {
        case 0x22: return "IMAGE"
        case 0x23: return "TEXT"
        case 0x63: return "NTEXT"
        case 0x62: return "SQL_VARIANT"
        case 0xF1: return "XML"
        case 0xF0: return "UDT"
        case 0xF3: return "TVP"
        case 0xF4: return "JSON"
        case 0xF5: return "VECTOR"
        case 0x25, 0x27, 0x2D, 0x2F, 0x37, 0x3F: return "legacy short type"
        default: return "unknown"
        }
    }

    /// Bytes of a time value of the given scale (MS-TDS 2.2.5.5.1.8).
    static func timeLength(scale: UInt8) -> Int {
        switch scale {
        case 0...2: return 3
        case 3...4: return 4
        default: return 5
        }
    }

    /// Storage bytes (sign included) for a decimal of the given precision.
    static func decimalLength(precision: UInt8) -> Int {
        switch precision {
        case 0...9: return 5
        case 10...19: return 9
        case 20...28: return 13
        default: return 17
        }
    }
}

public struct TDSColumn: Hashable, Sendable {
    public var name: String
    public var type: TDSTypeInfo
    /// 0x01 nullable, 0x08 updateable (read/write), 0x10 identity, 0x20 computed ...
    public var flags: UInt16
    public var userType: UInt32

    public static let flagNullable: UInt16 = 0x0001

    public init(name: String, type: TDSTypeInfo, flags: UInt16 = TDSColumn.flagNullable, userType: UInt32 = 0) {
        self.name = name
        self.type = type
        self.flags = flags
        self.userType = userType
    }

    public var isNullable: Bool { flags & TDSColumn.flagNullable != 0 }
}
