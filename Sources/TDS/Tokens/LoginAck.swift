import NIOCore

/// LOGINACK (0xAD).
public struct LoginAck: Hashable, Sendable {
    /// 1 = SQL_TSQL.
    public var interface: UInt8
    /// Big-endian on the wire (0x74000004 for TDS 7.4).
    public var tdsVersion: UInt32
    public var programName: String
    /// major, minor, build high, build low.
    public var programVersion: [UInt8]

    public init(interface: UInt8 = 1, tdsVersion: UInt32 = 0x7400_0004, programName: String = "Microsoft SQL Server",
                programVersion: [UInt8] = [16, 0, 0x10, 0x00]) {
        self.interface = interface
        self.tdsVersion = tdsVersion
        self.programName = programName
        self.programVersion = programVersion
    }

    func writeBody(into b: inout ByteBuffer) {
        b.writeInteger(interface)
        b.writeInteger(tdsVersion, endianness: .big)
        b.tdsWriteBVarchar(programName)
        var v = Array(programVersion.prefix(4))
        while v.count < 4 { v.append(0) }
        b.writeBytes(v)
    }

    static func read(body b: inout ByteBuffer) throws -> LoginAck {
        let interface = try b.tdsU8("LOGINACK.Interface")
        let version = try b.tdsU32BE("LOGINACK.TDSVersion")
        let name = try b.tdsBVarchar("LOGINACK.ProgName")
        let progVersion = try b.tdsBytes("LOGINACK.ProgVersion", count: 4)
        return LoginAck(interface: interface, tdsVersion: version, programName: name, programVersion: progVersion)
    }
}
