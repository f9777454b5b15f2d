import NIOCore

/// RETURNVALUE (0xAC): an output parameter or UDF result.
public struct ReturnValue: Hashable, Sendable {
    public var ordinal: UInt16
    public var name: String
    /// 0x01 output parameter, 0x02 UDF return value.
    public var status: UInt8
    public var userType: UInt32
    public var flags: UInt16
    public var type: TDSTypeInfo
    public var value: TDSValue

    public init(ordinal: UInt16, name: String, status: UInt8 = 0x01, userType: UInt32 = 0, flags: UInt16 = TDSColumn.flagNullable,
                type: TDSTypeInfo, value: TDSValue) {
        self.ordinal = ordinal
        self.name = name
        self.status = status
        self.userType = userType
        self.flags = flags
        self.type = type
        self.value = value
    }

    func writeBody(into b: inout ByteBuffer) {
        b.tdsWriteU16LE(ordinal)
        b.tdsWriteBVarchar(name)
        b.writeInteger(status)
        b.tdsWriteU32LE(userType)
        b.tdsWriteU16LE(flags)
        type.write(into: &b)
        value.write(as: type, into: &b)
    }

    static func readHeader(from b: inout ByteBuffer) throws -> ReturnValue {
        let ordinal = try b.tdsU16LE("RETURNVALUE.ParamOrdinal")
        let name = try b.tdsBVarchar("RETURNVALUE.ParamName")
        let status = try b.tdsU8("RETURNVALUE.Status")
        let userType = try b.tdsU32LE("RETURNVALUE.UserType")
        let flags = try b.tdsU16LE("RETURNVALUE.Flags")
        let type = try TDSTypeInfo.read(from: &b, field: "RETURNVALUE.TYPE_INFO")
        return ReturnValue(ordinal: ordinal, name: name, status: status, userType: userType, flags: flags, type: type, value: .null)
    }
}
