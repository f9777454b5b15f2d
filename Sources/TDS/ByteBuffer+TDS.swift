import NIOCore

// Every read names the field it serves so a hostile or truncated message reports
// exactly where it broke instead of trapping.
extension ByteBuffer {
    @inline(__always)
    func tdsTruncated(_ field: String, needed: Int) -> TDSDecodingError {
        TDSDecodingError(truncated: field, reason: "needs \(needed) bytes, \(readableBytes) left")
    }

    mutating func tdsU8(_ field: String) throws -> UInt8 {
        guard let v = readInteger(as: UInt8.self) else { throw tdsTruncated(field, needed: 1) }
        return v
    }

    mutating func tdsU16LE(_ field: String) throws -> UInt16 {
        guard let v = readInteger(endianness: .little, as: UInt16.self) else { throw tdsTruncated(field, needed: 2) }
        return v
    }

    mutating func tdsU16BE(_ field: String) throws -> UInt16 {
        guard let v = readInteger(endianness: .big, as: UInt16.self) else { throw tdsTruncated(field, needed: 2) }
        return v
    }

    mutating func tdsU32LE(_ field: String) throws -> UInt32 {
        guard let v = readInteger(endianness: .little, as: UInt32.self) else { throw tdsTruncated(field, needed: 4) }
        return v
    }

    mutating func tdsU32BE(_ field: String) throws -> UInt32 {
        guard let v = readInteger(endianness: .big, as: UInt32.self) else { throw tdsTruncated(field, needed: 4) }
        return v
    }

    mutating func tdsI32LE(_ field: String) throws -> Int32 {
        guard let v = readInteger(endianness: .little, as: Int32.self) else { throw tdsTruncated(field, needed: 4) }
        return v
    }

    mutating func tdsU64LE(_ field: String) throws -> UInt64 {
        guard let v = readInteger(endianness: .little, as: UInt64.self) else { throw tdsTruncated(field, needed: 8) }
        return v
    }

    /// Reads `count` bytes; the length is checked against what is there before any allocation.
    mutating func tdsBytes(_ field: String, count: Int) throws -> [UInt8] {
        guard count >= 0 else { throw TDSDecodingError(field: field, reason: "negative length \(count)") }
        guard count <= readableBytes else { throw tdsTruncated(field, needed: count) }
        return readBytes(length: count) ?? []
    }

    mutating func tdsSlice(_ field: String, count: Int) throws -> ByteBuffer {
        guard count >= 0 else { throw TDSDecodingError(field: field, reason: "negative length \(count)") }
        guard count <= readableBytes, let s = readSlice(length: count) else { throw tdsTruncated(field, needed: count) }
        return s
    }

    mutating func tdsSkip(_ field: String, count: Int) throws {
        guard count >= 0 else { throw TDSDecodingError(field: field, reason: "negative length \(count)") }
        guard count <= readableBytes else { throw tdsTruncated(field, needed: count) }
        moveReaderIndex(forwardBy: count)
    }

    /// UTF-16LE text of `units` code units.
    mutating func tdsUTF16(_ field: String, units: Int) throws -> String {
        let bytes = try tdsBytes(field, count: units &* 2)
        return TDSString.decodeUTF16LE(bytes)
    }

    /// B_VARCHAR: u8 length in characters, then UTF-16LE.
    mutating func tdsBVarchar(_ field: String) throws -> String {
        let n = try tdsU8(field + ".length")
        return try tdsUTF16(field, units: Int(n))
    }

    /// US_VARCHAR: u16 length in characters, then UTF-16LE.
    mutating func tdsUSVarchar(_ field: String) throws -> String {
        let n = try tdsU16LE(field + ".length")
        return try tdsUTF16(field, units: Int(n))
    }

    /// B_VARBYTE: u8 length in bytes.
    mutating func tdsBVarbyte(_ field: String) throws -> [UInt8] {
        let n = try tdsU8(field + ".length")
        return try tdsBytes(field, count: Int(n))
    }

    /// Everything left, for "rest of the message" fields.
    mutating func tdsRest() -> [UInt8] {
        readBytes(length: readableBytes) ?? []
    }

    mutating func tdsWriteU16LE(_ v: UInt16) { writeInteger(v, endianness: .little) }
    mutating func tdsWriteU32LE(_ v: UInt32) { writeInteger(v, endianness: .little) }
    mutating func tdsWriteI32LE(_ v: Int32) { writeInteger(v, endianness: .little) }
    mutating func tdsWriteU64LE(_ v: UInt64) { writeInteger(v, endianness: .little) }

    mutating func tdsWriteUTF16(_ s: String) {
        for unit in s.utf16 { writeInteger(unit, endianness: .little) }
    }

    /// B_VARCHAR; text longer than 255 UTF-16 units is cut (the format cannot say more).
    mutating func tdsWriteBVarchar(_ s: String) {
        let units = TDSString.utf16Prefix(s, maxUnits: 255)
        writeInteger(UInt8(units.count))
        for u in units { writeInteger(u, endianness: .little) }
    }

    /// US_VARCHAR; text longer than `maxUnits` (at most 65535) UTF-16 units is cut.
    mutating func tdsWriteUSVarchar(_ s: String, maxUnits: Int = 65535) {
        let units = TDSString.utf16Prefix(s, maxUnits: min(maxUnits, 65535))
        writeInteger(UInt16(units.count), endianness: .little)
        for u in units { writeInteger(u, endianness: .little) }
    }

    mutating func tdsWriteBVarbyte(_ b: [UInt8]) {
        let part = b.prefix(255)
        writeInteger(UInt8(part.count))
        writeBytes(part)
    }
}

/// String helpers for the UTF-16LE text TDS carries everywhere.
public enum TDSString {
    public static func decodeUTF16LE(_ bytes: [UInt8]) -> String {
        // Most SQL text and names are ASCII: narrowing to UTF-8 is several times faster than
        // the generic UTF-16 transcoder.
        if let ascii = asciiFromUTF16LE(bytes) { return ascii }
        var units: [UInt16] = []
        units.reserveCapacity(bytes.count / 2)
        var i = 0
        while i &+ 1 < bytes.count {
            units.append(UInt16(bytes[i]) | (UInt16(bytes[i &+ 1]) << 8))
            i &+= 2
        }
        return String(decoding: units, as: UTF16.self)
    }

    private static func asciiFromUTF16LE(_ bytes: [UInt8]) -> String? {
        let count = bytes.count / 2
        return bytes.withUnsafeBufferPointer { source -> String? in
            for i in 0..<count where source[2 &* i] >= 0x80 || source[2 &* i &+ 1] != 0 { return nil }
            return String(unsafeUninitializedCapacity: count) { target in
                for i in 0..<count { target[i] = source[2 &* i] }
                return count
            }
        }
    }

    /// The first `maxUnits` UTF-16 units of `s`, never ending inside a surrogate pair.
    public static func utf16Prefix(_ s: String, maxUnits: Int) -> [UInt16] {
        var units = Array(s.utf16.prefix(max(0, maxUnits) + 1))
        guard units.count > maxUnits else { return units }
        units.removeLast(units.count - max(0, maxUnits))
        if let last = units.last, UTF16.isLeadSurrogate(last) { units.removeLast() }
        return units
    }

    public static func encodeUTF16LE(_ s: String) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(s.utf16.count * 2)
        for u in s.utf16 {
            out.append(UInt8(truncatingIfNeeded: u))
            out.append(UInt8(truncatingIfNeeded: u >> 8))
        }
        return out
    }

    /// B_VARCHAR bytes (u8 character count + UTF-16LE).
    public static func bVarchar(_ s: String) -> [UInt8] {
        var b = ByteBuffer()
        b.tdsWriteBVarchar(s)
        return b.tdsRest()
    }

    /// US_VARCHAR bytes (u16 character count + UTF-16LE).
    public static func usVarchar(_ s: String) -> [UInt8] {
        var b = ByteBuffer()
        b.tdsWriteUSVarchar(s)
        return b.tdsRest()
    }

    public static func readBVarchar(from buffer: inout ByteBuffer, field: String) throws -> String {
        try buffer.tdsBVarchar(field)
    }

    public static func readUSVarchar(from buffer: inout ByteBuffer, field: String) throws -> String {
        try buffer.tdsUSVarchar(field)
    }
}
