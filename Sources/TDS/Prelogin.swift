import NIOCore

public struct PreloginEncryption: RawRepresentable, Hashable, Sendable {
    public var rawValue: UInt8
    public init(rawValue: UInt8) { self.rawValue = rawValue }

    public static let off = PreloginEncryption(rawValue: 0)
    public static let on = PreloginEncryption(rawValue: 1)
    public static let notSupported = PreloginEncryption(rawValue: 2)
    public static let required = PreloginEncryption(rawValue: 3)
    /// Sent by go-mssqldb inside a TDS 8.0 (strict) connection.
    public static let strict = PreloginEncryption(rawValue: 4)

    /// The client-certificate flag or-ed on top of the mode.
    public var clientCertificate: Bool {
        get { rawValue & 0x80 != 0 }
        set { rawValue = newValue ? rawValue | 0x80 : rawValue & 0x7F }
    }

    /// The mode without the client-certificate flag.
    public var mode: PreloginEncryption { PreloginEncryption(rawValue: rawValue & 0x7F) }
}

public struct PreloginVersion: Hashable, Sendable {
    public var major: UInt8
    public var minor: UInt8
    /// Big-endian on the wire.
    public var build: UInt16
    /// Big-endian like the build (tedious and the Rust ODBC core write it so).
    public var subBuild: UInt16

    public init(major: UInt8, minor: UInt8, build: UInt16, subBuild: UInt16 = 0) {
        self.major = major
        self.minor = minor
        self.build = build
        self.subBuild = subBuild
    }

    init?(bytes: [UInt8]) {
        guard bytes.count >= 6 else { return nil }
        major = bytes[0]
        minor = bytes[1]
        build = UInt16(bytes[2]) << 8 | UInt16(bytes[3])
        subBuild = UInt16(bytes[4]) << 8 | UInt16(bytes[5])
    }

    var bytes: [UInt8] {
        [major, minor, UInt8(build >> 8), UInt8(truncatingIfNeeded: build),
         UInt8(subBuild >> 8), UInt8(truncatingIfNeeded: subBuild)]
    }
}

public struct PreloginOption: Hashable, Sendable {
    public var token: UInt8
    /// The option's bytes: parsed options are views into the message they came from, so a
    /// table of many options naming the same bytes costs a slice each, not a copy each.
    public var bytes: ByteBuffer

    public var data: [UInt8] {
        get { Array(bytes.readableBytesView) }
        set { bytes = ByteBuffer(bytes: newValue) }
    }

    public init(token: UInt8, data: [UInt8]) {
        self.token = token
        self.bytes = ByteBuffer(bytes: data)
    }

    public init(token: UInt8, bytes: ByteBuffer) {
        self.token = token
        self.bytes = bytes
    }

    public static let versionToken: UInt8 = 0x00
    public static let encryptionToken: UInt8 = 0x01
    public static let instanceToken: UInt8 = 0x02
    public static let threadIDToken: UInt8 = 0x03
    public static let marsToken: UInt8 = 0x04
    public static let traceIDToken: UInt8 = 0x05
    public static let fedAuthRequiredToken: UInt8 = 0x06
    public static let nonceToken: UInt8 = 0x07
    public static let terminator: UInt8 = 0xFF
}

public struct PreloginMessage: Hashable, Sendable {
    /// Table order kept; unknown options kept and re-emitted.
    public var options: [PreloginOption]

    public init(options: [PreloginOption] = []) {
        self.options = options
    }

    /// Most options a PRELOGIN may carry. Drivers send five to eight (MS-TDS defines eight
    /// tokens); a table of thousands is an attack on whoever parses it.
    public static let maxOptions = 32

    /// Tokens MS-TDS defines (VERSION through NONCEOPT) may appear once each, as SQL Server
    /// requires; unknown tokens are kept, bounded by `maxOptions`.
    private static func isKnown(_ token: UInt8) -> Bool { token <= PreloginOption.nonceToken }

    public init(parsing payload: ByteBuffer) throws {
        let total = payload.readableBytes
        var table = payload
        var result: [PreloginOption] = []
        var seen: UInt16 = 0
        while true {
            let token = try table.tdsU8("PRELOGIN.OptionToken")
            if token == PreloginOption.terminator { break }
            let field = "PRELOGIN.Option[0x\(String(token, radix: 16))]"
            guard result.count < Self.maxOptions else {
                throw TDSDecodingError(field: "PRELOGIN", reason: "more than \(Self.maxOptions) options")
            }
            if Self.isKnown(token) {
                guard seen & (1 << UInt16(token)) == 0 else {
                    throw TDSDecodingError(field: field, reason: "the option appears twice")
                }
                seen |= 1 << UInt16(token)
            }
            let offset = Int(try table.tdsU16BE(field + ".Offset"))
            let length = Int(try table.tdsU16BE(field + ".Length"))
            guard offset + length <= total else {
                throw TDSDecodingError(field: field, reason: "offset \(offset) + length \(length) exceeds message length \(total)")
            }
            guard let bytes = payload.getSlice(at: payload.readerIndex + offset, length: length) else {
                throw TDSDecodingError(field: field, reason: "offset \(offset) + length \(length) exceeds message length \(total)")
            }
            result.append(PreloginOption(token: token, bytes: bytes))
        }
        options = result
    }

    /// Option table (closed by 0xFF) followed by the data in table order.
    public func write(into buffer: inout ByteBuffer) {
        var offset = options.count * 5 + 1
        for option in options {
            buffer.writeInteger(option.token)
            buffer.writeInteger(UInt16(truncatingIfNeeded: offset), endianness: .big)
            buffer.writeInteger(UInt16(truncatingIfNeeded: option.bytes.readableBytes), endianness: .big)
            offset += option.bytes.readableBytes
        }
        buffer.writeInteger(PreloginOption.terminator)
        for option in options { buffer.writeImmutableBuffer(option.bytes) }
    }

    public func data(for token: UInt8) -> [UInt8]? {
        options.first { $0.token == token }?.data
    }

    /// Replaces the option's data in place or inserts it after the last option with a lower
    /// token, so new messages keep VERSION, ENCRYPTION, INSTOPT, THREADID, MARS order
    /// (positional parsers such as impacket rely on it); nil removes it.
    public mutating func setData(_ data: [UInt8]?, for token: UInt8) {
        guard let data else {
            options.removeAll { $0.token == token }
            return
        }
        if let i = options.firstIndex(where: { $0.token == token }) {
            options[i].data = data
        } else if let j = options.lastIndex(where: { $0.token < token }) {
            options.insert(PreloginOption(token: token, data: data), at: j + 1)
        } else {
            options.insert(PreloginOption(token: token, data: data), at: 0)
        }
    }

    public var version: PreloginVersion? {
        get { data(for: PreloginOption.versionToken).flatMap(PreloginVersion.init(bytes:)) }
        set { setData(newValue?.bytes, for: PreloginOption.versionToken) }
    }

    public var encryption: PreloginEncryption? {
        get { data(for: PreloginOption.encryptionToken)?.first.map(PreloginEncryption.init(rawValue:)) }
        set { setData(newValue.map { [$0.rawValue] }, for: PreloginOption.encryptionToken) }
    }

    /// INSTOPT without its NUL terminator.
    public var instance: String? {
        get {
            guard let d = data(for: PreloginOption.instanceToken) else { return nil }
            let bytes = d.prefix { $0 != 0 }
            return String(decoding: bytes, as: UTF8.self)
        }
        set { setData(newValue.map { Array($0.utf8) + [0] }, for: PreloginOption.instanceToken) }
    }

    public var threadID: UInt32? {
        get {
            guard let d = data(for: PreloginOption.threadIDToken), d.count >= 4 else { return nil }
            // Little-endian, as FreeTDS sends it (a ULONG like the rest of TDS).
            return UInt32(d[0]) | UInt32(d[1]) << 8 | UInt32(d[2]) << 16 | UInt32(d[3]) << 24
        }
        set {
            setData(newValue.map { [UInt8(truncatingIfNeeded: $0), UInt8(truncatingIfNeeded: $0 >> 8), UInt8(truncatingIfNeeded: $0 >> 16), UInt8($0 >> 24)] },
                    for: PreloginOption.threadIDToken)
        }
    }

    public var mars: Bool? {
        get { data(for: PreloginOption.marsToken)?.first.map { $0 != 0 } }
        set { setData(newValue.map { [$0 ? 1 : 0] }, for: PreloginOption.marsToken) }
    }

    /// 36 bytes: connection GUID, activity GUID, sequence u32 LE.
    public var traceID: [UInt8]? {
        get { data(for: PreloginOption.traceIDToken) }
        set { setData(newValue, for: PreloginOption.traceIDToken) }
    }

    public var fedAuthRequired: UInt8? {
        get { data(for: PreloginOption.fedAuthRequiredToken)?.first }
        set { setData(newValue.map { [$0] }, for: PreloginOption.fedAuthRequiredToken) }
    }

    /// 32 bytes.
    public var nonce: [UInt8]? {
        get { data(for: PreloginOption.nonceToken) }
        set { setData(newValue, for: PreloginOption.nonceToken) }
    }
}
