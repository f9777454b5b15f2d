import NIOCore

/// A decoded column, parameter or return value.
public enum TDSValue: Hashable, Sendable {
    case null
    case int(Int64)
    case bit(Bool)
    case float(Double)
    case string(String)
    case bytes([UInt8])
    case decimal(TDSDecimal)
    /// money / smallmoney in units of 1/10000.
    case money(Int64)
    /// Days since 1900-01-01 and 1/300 s since midnight.
    case datetime(days: Int32, fraction: UInt32)
    /// Days since 1900-01-01 and minutes since midnight.
    case smallDateTime(days: UInt16, minutes: UInt16)
    /// Days since 0001-01-01.
    case date(days: Int)
    /// Time since midnight in units of 10^-scale seconds.
    case time(ticks: UInt64)
    case datetime2(days: Int, ticks: UInt64)
    /// UTC date and time plus the offset in minutes.
    case datetimeoffset(days: Int, ticks: UInt64, offsetMinutes: Int16)
    /// 16 bytes in wire order.
    case guid([UInt8])

    public var isNull: Bool { self == .null }

    /// Floats compare by bit pattern: a codec cares about the wire value, and NaN must equal itself.
    public static func == (lhs: TDSValue, rhs: TDSValue) -> Bool {
        switch (lhs, rhs) {
        case (.null, .null): return true
        case let (.int(a), .int(b)): return a == b
        case let (.bit(a), .bit(b)): return a == b
        case let (.float(a), .float(b)): return a.bitPattern == b.bitPattern
        case let (.string(a), .string(b)): return a == b
        case let (.bytes(a), .bytes(b)): return a == b
        case let (.decimal(a), .decimal(b)): return a == b
        case let (.money(a), .money(b)): return a == b
        case let (.datetime(d1, f1), .datetime(d2, f2)): return d1 == d2 && f1 == f2
        case let (.smallDateTime(d1, m1), .smallDateTime(d2, m2)): return d1 == d2 && m1 == m2
        case let (.date(a), .date(b)): return a == b
        case let (.time(a), .time(b)): return a == b
        case let (.datetime2(d1, t1), .datetime2(d2, t2)): return d1 == d2 && t1 == t2
        case let (.datetimeoffset(d1, t1, o1), .datetimeoffset(d2, t2, o2)): return d1 == d2 && t1 == t2 && o1 == o2
        case let (.guid(a), .guid(b)): return a == b
        default: return false
        }
    }

    public func hash(into hasher: inout Hasher) {
        switch self {
        case .null: hasher.combine(0)
        case .int(let v): hasher.combine(1); hasher.combine(v)
        case .bit(let v): hasher.combine(2); hasher.combine(v)
        case .float(let v): hasher.combine(3); hasher.combine(v.bitPattern)
        case .string(let v): hasher.combine(4); hasher.combine(v)
        case .bytes(let v): hasher.combine(5); hasher.combine(v)
        case .decimal(let v): hasher.combine(6); hasher.combine(v)
        case .money(let v): hasher.combine(7); hasher.combine(v)
        case let .datetime(d, f): hasher.combine(8); hasher.combine(d); hasher.combine(f)
        case let .smallDateTime(d, m): hasher.combine(9); hasher.combine(d); hasher.combine(m)
        case .date(let v): hasher.combine(10); hasher.combine(v)
        case .time(let v): hasher.combine(11); hasher.combine(v)
        case let .datetime2(d, t): hasher.combine(12); hasher.combine(d); hasher.combine(t)
        case let .datetimeoffset(d, t, o): hasher.combine(13); hasher.combine(d); hasher.combine(t); hasher.combine(o)
        case .guid(let v): hasher.combine(14); hasher.combine(v)
        }
    }
}

/// Sign and magnitude of a DECIMAL/NUMERIC; the scale lives in the type.
public struct TDSDecimal: Hashable, Sendable {
    public var isNegative: Bool
    /// Little-endian integer, high zero bytes trimmed.
    public private(set) var magnitude: [UInt8]

    public init(isNegative: Bool, magnitude: [UInt8]) {
        var m = magnitude
        while let last = m.last, last == 0 { m.removeLast() }
        self.isNegative = isNegative && !m.isEmpty
        self.magnitude = m
    }

    /// The unscaled integer (123.45 at scale 2 is 12345).
    public init(_ value: Int64) {
        var m: [UInt8] = []
        var v = value.magnitude
        while v != 0 {
            m.append(UInt8(truncatingIfNeeded: v))
            v >>= 8
        }
        self.init(isNegative: value < 0, magnitude: m)
    }

    /// Parses text such as "-123.45" into an integer scaled by 10^scale; nil if malformed or
    /// wider than 38 digits.
    public init?(_ text: String, scale: UInt8) {
        var digits: [UInt8] = []
        var negative = false
        var fraction = -1
        for (i, ch) in text.utf8.enumerated() {
            switch ch {
            case UInt8(ascii: "-") where i == 0: negative = true
            case UInt8(ascii: "+") where i == 0: break
            case UInt8(ascii: "."):
                guard fraction < 0 else { return nil }
                fraction = 0
            case UInt8(ascii: "0")...UInt8(ascii: "9"):
                if fraction >= 0 {
                    guard fraction < Int(scale) else { continue }
                    fraction += 1
                }
                digits.append(ch - UInt8(ascii: "0"))
            default: return nil
            }
        }
        guard !digits.isEmpty else { return nil }
        for _ in 0..<(Int(scale) - max(fraction, 0)) { digits.append(0) }
        guard digits.count <= 39 else { return nil }
        var limbs: [UInt32] = [0, 0, 0, 0, 0]
        for d in digits {
            var carry = UInt64(d)
            for i in limbs.indices {
                let x = UInt64(limbs[i]) * 10 + carry
                limbs[i] = UInt32(truncatingIfNeeded: x)
                carry = x >> 32
            }
        }
        guard limbs[4] == 0 else { return nil }
        var bytes: [UInt8] = []
        for l in limbs.prefix(4) {
            bytes.append(contentsOf: [UInt8(truncatingIfNeeded: l), UInt8(truncatingIfNeeded: l >> 8),
                                      UInt8(truncatingIfNeeded: l >> 16), UInt8(truncatingIfNeeded: l >> 24)])
        }
        self.init(isNegative: negative, magnitude: bytes)
    }

    /// Decimal text with `scale` fractional digits.
    public func string(scale: UInt8) -> String {
        var limbs: [UInt32] = []
        var i = 0
        while i < magnitude.count {
            var l: UInt32 = 0
            for k in 0..<4 where i + k < magnitude.count { l |= UInt32(magnitude[i + k]) << (8 * k) }
            limbs.append(l)
            i += 4
        }
        var digits: [Character] = []
        while limbs.contains(where: { $0 != 0 }) {
            var rem: UInt64 = 0
            for j in limbs.indices.reversed() {
                let cur = (rem << 32) | UInt64(limbs[j])
                limbs[j] = UInt32(cur / 10)
                rem = cur % 10
            }
            digits.append(Character(String(rem)))
        }
        while digits.count <= Int(scale) { digits.append("0") }
        var text = String(digits.reversed())
        if scale > 0 { text.insert(".", at: text.index(text.endIndex, offsetBy: -Int(scale))) }
        return isNegative ? "-" + text : text
    }
}

extension TDSValue {
    // MARK: Reading

    /// Reads one value (TYPE_VARBYTE) of `type`.
    public static func read(_ type: TDSTypeInfo, from buffer: inout ByteBuffer, field: String) throws -> TDSValue {
        if let size = type.fixedSize {
            return try readFixed(type, size: size, from: &buffer, field: field)
        }
        if type.isPLP {
            guard let bytes = try readPLP(from: &buffer, field: field) else { return .null }
            return try decodeVariable(type, bytes: bytes, field: field)
        }
        if type.isUShortLength {
            let length = try buffer.tdsU16LE(field + ".Length")
            if length == 0xFFFF { return .null }
            return try decodeVariable(type, bytes: try buffer.tdsBytes(field, count: Int(length)), field: field)
        }
        let length = Int(try buffer.tdsU8(field + ".Length"))
        if length == 0 { return .null }
        var b = try buffer.tdsSlice(field, count: length)
        func bad() -> TDSDecodingError {
            TDSDecodingError(field: field + ".Length", reason: "length \(length) is not valid for \(type.sqlName)")
        }
        switch type {
        case .intN:
            switch length {
            case 1: return .int(Int64(try b.tdsU8(field)))
            case 2: return .int(Int64(Int16(bitPattern: try b.tdsU16LE(field))))
            case 4: return .int(Int64(try b.tdsI32LE(field)))
            case 8: return .int(Int64(bitPattern: try b.tdsU64LE(field)))
            default: throw bad()
            }
        case .bitN:
            guard length == 1 else { throw bad() }
            return .bit(try b.tdsU8(field) != 0)
        case .floatN:
            switch length {
            case 4: return .float(Double(Float(bitPattern: try b.tdsU32LE(field))))
            case 8: return .float(Double(bitPattern: try b.tdsU64LE(field)))
            default: throw bad()
            }
        case .moneyN:
            switch length {
            case 4: return .money(Int64(try b.tdsI32LE(field)))
            case 8: return try readFixed(.money, size: 8, from: &b, field: field)
            default: throw bad()
            }
        case .datetimeN:
            switch length {
            case 4: return try readFixed(.smallDateTime, size: 4, from: &b, field: field)
            case 8: return try readFixed(.datetime, size: 8, from: &b, field: field)
            default: throw bad()
            }
        case .uniqueidentifier:
            guard length == 16 else { throw bad() }
            return .guid(b.tdsRest())
        case .decimal, .numeric:
            guard length >= 2, length <= 17 else { throw bad() }
            let sign = try b.tdsU8(field + ".Sign")
            return .decimal(TDSDecimal(isNegative: sign == 0, magnitude: b.tdsRest()))
        case .date:
            guard length == 3 else { throw bad() }
            return .date(days: Int(try readUInt(&b, bytes: 3, field: field)))
        case .time(let scale):
            guard length == TDSTypeInfo.timeLength(scale: scale) else { throw bad() }
            return .time(ticks: try readUInt(&b, bytes: length, field: field))
        case .datetime2(let scale):
            let t = TDSTypeInfo.timeLength(scale: scale)
            guard length == t + 3 else { throw bad() }
            let ticks = try readUInt(&b, bytes: t, field: field)
            let days = try readUInt(&b, bytes: 3, field: field)
            return .datetime2(days: Int(days), ticks: ticks)
        case .datetimeoffset(let scale):
            let t = TDSTypeInfo.timeLength(scale: scale)
            guard length == t + 5 else { throw bad() }
            let ticks = try readUInt(&b, bytes: t, field: field)
            let days = try readUInt(&b, bytes: 3, field: field)
            let offset = Int16(bitPattern: try b.tdsU16LE(field + ".Offset"))
            return .datetimeoffset(days: Int(days), ticks: ticks, offsetMinutes: offset)
        default:
            throw TDSDecodingError(field: field, reason: "no byte-length reader for \(type.sqlName)")
        }
    }

    static func readUInt(_ b: inout ByteBuffer, bytes: Int, field: String) throws -> UInt64 {
        let raw = try b.tdsBytes(field, count: bytes)
        var v: UInt64 = 0
        for (i, byte) in raw.enumerated() { v |= UInt64(byte) << (8 * UInt64(i)) }
        return v
    }

    static func readFixed(_ type: TDSTypeInfo, size: Int, from buffer: inout ByteBuffer, field: String) throws -> TDSValue {
        var b = try buffer.tdsSlice(field, count: size)
        switch type {
        case .null: return .null
        case .int1: return .int(Int64(try b.tdsU8(field)))
        case .bit: return .bit(try b.tdsU8(field) != 0)
        case .int2: return .int(Int64(Int16(bitPattern: try b.tdsU16LE(field))))
        case .int4: return .int(Int64(try b.tdsI32LE(field)))
        case .int8: return .int(Int64(bitPattern: try b.tdsU64LE(field)))
        case .real: return .float(Double(Float(bitPattern: try b.tdsU32LE(field))))
        case .float8: return .float(Double(bitPattern: try b.tdsU64LE(field)))
        case .smallMoney: return .money(Int64(try b.tdsI32LE(field)))
        case .money:
            // High 32 bits first, each half little-endian.
            let high = Int64(try b.tdsI32LE(field))
            let low = Int64(try b.tdsU32LE(field))
            return .money(high << 32 | low)
        case .datetime:
            let days = try b.tdsI32LE(field)
            let fraction = try b.tdsU32LE(field)
            return .datetime(days: days, fraction: fraction)
        case .smallDateTime:
            let days = try b.tdsU16LE(field)
            let minutes = try b.tdsU16LE(field)
            return .smallDateTime(days: days, minutes: minutes)
        default:
            throw TDSDecodingError(field: field, reason: "\(type.sqlName) is not a fixed-length type")
        }
    }

    /// PLP body: u64 total (all ones = NULL), then u32-length chunks up to a zero terminator.
    static func readPLP(from buffer: inout ByteBuffer, field: String) throws -> [UInt8]? {
        let total = try buffer.tdsU64LE(field + ".PLPLength")
        if total == UInt64.max { return nil }
        var out: [UInt8] = []
        while true {
            let chunk = Int(try buffer.tdsU32LE(field + ".PLPChunkLength"))
            if chunk == 0 { break }
            out.append(contentsOf: try buffer.tdsBytes(field + ".PLPChunk", count: chunk))
        }
        return out
    }

    /// Skips a PLP body without keeping it.
    static func skipPLP(from buffer: inout ByteBuffer, field: String) throws {
        let total = try buffer.tdsU64LE(field + ".PLPLength")
        if total == UInt64.max { return }
        while true {
            let chunk = Int(try buffer.tdsU32LE(field + ".PLPChunkLength"))
            if chunk == 0 { return }
            try buffer.tdsSkip(field + ".PLPChunk", count: chunk)
        }
    }

    /// Moves past one value without decoding it (for the relay's scanner).
    static func skip(_ type: TDSTypeInfo, from buffer: inout ByteBuffer, field: String) throws {
        if let size = type.fixedSize {
            try buffer.tdsSkip(field, count: size)
        } else if type.isPLP {
            try skipPLP(from: &buffer, field: field)
        } else if type.isUShortLength {
            let length = try buffer.tdsU16LE(field + ".Length")
            if length != 0xFFFF { try buffer.tdsSkip(field, count: Int(length)) }
        } else {
            let length = try buffer.tdsU8(field + ".Length")
            try buffer.tdsSkip(field, count: Int(length))
        }
    }

    static func decodeVariable(_ type: TDSTypeInfo, bytes: [UInt8], field: String) throws -> TDSValue {
        switch type {
        case .nvarchar, .nchar:
            guard bytes.count % 2 == 0 else {
                throw TDSDecodingError(field: field, reason: "odd UTF-16 byte length \(bytes.count)")
            }
            return .string(TDSString.decodeUTF16LE(bytes))
        case .varchar, .char:
            // The collation's code page is not resolved; Latin-1 maps every byte and round-trips.
            return .string(String(String.UnicodeScalarView(bytes.map { Unicode.Scalar($0) })))
        default:
            return .bytes(bytes)
        }
    }

    // MARK: Writing

    /// Writes the value as TYPE_VARBYTE of `type`. A value that does not fit the type is written
    /// as NULL (or zero for fixed-length types, which cannot carry NULL in a ROW).
    public func write(as type: TDSTypeInfo, into buffer: inout ByteBuffer) {
        if let size = type.fixedSize {
            writeFixed(type, size: size, into: &buffer)
            return
        }
        if type.isPLP {
            guard let bytes = variableBytes(type) else {
                buffer.tdsWriteU64LE(UInt64.max)
                return
            }
            buffer.tdsWriteU64LE(UInt64(bytes.count))
            if !bytes.isEmpty {
                buffer.tdsWriteU32LE(UInt32(truncatingIfNeeded: bytes.count))
                buffer.writeBytes(bytes)
            }
            buffer.tdsWriteU32LE(0)
            return
        }
        if type.isUShortLength {
            guard var bytes = variableBytes(type) else {
                buffer.tdsWriteU16LE(0xFFFF)
                return
            }
            if bytes.count > 0xFFFE { bytes = Array(bytes.prefix(0xFFFE)) }
            buffer.tdsWriteU16LE(UInt16(bytes.count))
            buffer.writeBytes(bytes)
            return
        }
        let bytes = byteLengthBody(type) ?? []
        buffer.writeInteger(UInt8(truncatingIfNeeded: bytes.count))
        buffer.writeBytes(bytes)
    }

    var integerValue: Int64? {
        switch self {
        case .int(let v): return v
        case .bit(let b): return b ? 1 : 0
        default: return nil
        }
    }

    var doubleValue: Double? {
        switch self {
        case .float(let d): return d
        case .int(let v): return Double(v)
        default: return nil
        }
    }

    static func le(_ v: UInt64, bytes: Int) -> [UInt8] {
        (0..<bytes).map { UInt8(truncatingIfNeeded: v >> (8 * UInt64($0))) }
    }

    func writeFixed(_ type: TDSTypeInfo, size: Int, into buffer: inout ByteBuffer) {
        var out = ByteBuffer()
        switch (type, self) {
        case (.int1, _), (.bit, _), (.int2, _), (.int4, _), (.int8, _):
            out.writeBytes(TDSValue.le(UInt64(bitPattern: integerValue ?? 0), bytes: size))
        case (.real, _):
            out.tdsWriteU32LE(Float(doubleValue ?? 0).bitPattern)
        case (.float8, _):
            out.tdsWriteU64LE((doubleValue ?? 0).bitPattern)
        case (.smallMoney, .money(let v)):
            out.tdsWriteI32LE(Int32(truncatingIfNeeded: v))
        case (.money, .money(let v)):
            out.tdsWriteI32LE(Int32(truncatingIfNeeded: v >> 32))
            out.tdsWriteU32LE(UInt32(truncatingIfNeeded: v))
        case let (.datetime, .datetime(days, fraction)):
            out.tdsWriteI32LE(days)
            out.tdsWriteU32LE(fraction)
        case let (.smallDateTime, .smallDateTime(days, minutes)):
            out.tdsWriteU16LE(days)
            out.tdsWriteU16LE(minutes)
        default:
            break
        }
        var bytes = out.tdsRest()
        while bytes.count < size { bytes.append(0) }
        buffer.writeBytes(bytes.prefix(size))
    }

    /// Bytes of a u16-length or PLP value; nil means NULL.
    func variableBytes(_ type: TDSTypeInfo) -> [UInt8]? {
        switch (type, self) {
        case (.nvarchar, .string(let s)), (.nchar, .string(let s)):
            return TDSString.encodeUTF16LE(s)
        case (.varchar, .string(let s)), (.char, .string(let s)):
            return s.unicodeScalars.map { $0.value <= 0xFF ? UInt8($0.value) : UInt8(ascii: "?") }
        case (.varbinary, .bytes(let b)), (.binary, .bytes(let b)),
            (.varchar, .bytes(let b)), (.char, .bytes(let b)):
            return b
        default:
            return nil
        }
    }

    /// Body of a u8-length value; nil (or empty) means NULL.
    func byteLengthBody(_ type: TDSTypeInfo) -> [UInt8]? {
        switch (type, self) {
        case (_, .null):
            return nil
        case (.intN(let l), _):
            guard let v = integerValue else { return nil }
            return TDSValue.le(UInt64(bitPattern: v), bytes: Int(l))
        case (.bitN, _):
            guard let v = integerValue else { return nil }
            return [v != 0 ? 1 : 0]
        case (.floatN(let l), _):
            guard let d = doubleValue else { return nil }
            return l == 4 ? TDSValue.le(UInt64(Float(d).bitPattern), bytes: 4) : TDSValue.le(d.bitPattern, bytes: 8)
        case (.moneyN(let l), .money(let v)):
            var b = ByteBuffer()
            if l == 4 {
                b.tdsWriteI32LE(Int32(truncatingIfNeeded: v))
            } else {
                b.tdsWriteI32LE(Int32(truncatingIfNeeded: v >> 32))
                b.tdsWriteU32LE(UInt32(truncatingIfNeeded: v))
            }
            return b.tdsRest()
        case let (.datetimeN(l), .datetime(days, fraction)) where l == 8:
            var b = ByteBuffer()
            b.tdsWriteI32LE(days)
            b.tdsWriteU32LE(fraction)
            return b.tdsRest()
        case let (.datetimeN(l), .smallDateTime(days, minutes)) where l == 4:
            var b = ByteBuffer()
            b.tdsWriteU16LE(days)
            b.tdsWriteU16LE(minutes)
            return b.tdsRest()
        case (.uniqueidentifier, .guid(let g)):
            guard g.count == 16 else { return nil }
            return g
        case let (.decimal(p, _, _), .decimal(d)), let (.numeric(p, _, _), .decimal(d)):
            var size = TDSTypeInfo.decimalLength(precision: p) - 1
            while size < d.magnitude.count, size < 16 { size += 4 }
            guard d.magnitude.count <= size else { return nil }
            var mag = d.magnitude
            while mag.count < size { mag.append(0) }
            return [d.isNegative ? 0 : 1] + mag
        case (.date, .date(let days)):
            return TDSValue.le(UInt64(clamping: days), bytes: 3)
        case let (.time(scale), .time(ticks)):
            return TDSValue.le(ticks, bytes: TDSTypeInfo.timeLength(scale: scale))
        case let (.datetime2(scale), .datetime2(days, ticks)):
            return TDSValue.le(ticks, bytes: TDSTypeInfo.timeLength(scale: scale)) + TDSValue.le(UInt64(clamping: days), bytes: 3)
        case let (.datetimeoffset(scale), .datetimeoffset(days, ticks, offset)):
            return TDSValue.le(ticks, bytes: TDSTypeInfo.timeLength(scale: scale)) + TDSValue.le(UInt64(clamping: days), bytes: 3)
                + TDSValue.le(UInt64(UInt16(bitPattern: offset)), bytes: 2)
        default:
            return nil
        }
    }
}
