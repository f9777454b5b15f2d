import NIOCore

/// One FeatureExt entry of a LOGIN7 (id u8, length u32 LE, data).
public struct Login7Feature: Hashable, Sendable {
    public var id: UInt8
    public var data: [UInt8]

    public init(id: UInt8, data: [UInt8]) {
        self.id = id
        self.data = data
    }

    public static let sessionRecovery: UInt8 = 0x01
    public static let fedAuth: UInt8 = 0x02
    public static let columnEncryption: UInt8 = 0x04
    public static let globalTransactions: UInt8 = 0x05
    public static let azureSQLSupport: UInt8 = 0x08
    public static let dataClassification: UInt8 = 0x09
    public static let utf8Support: UInt8 = 0x0A
    public static let azureSQLDNSCaching: UInt8 = 0x0B
    public static let jsonSupport: UInt8 = 0x0D
    public static let vectorSupport: UInt8 = 0x0E
    public static let enhancedRouting: UInt8 = 0x0F
    public static let userAgent: UInt8 = 0x10
    public static let terminator: UInt8 = 0xFF

    public var name: String { Login7Feature.name(of: id) }

    public static func name(of id: UInt8) -> String {
        switch id {
        case sessionRecovery: return "SESSIONRECOVERY"
        case fedAuth: return "FEDAUTH"
        case columnEncryption: return "COLUMNENCRYPTION"
        case globalTransactions: return "GLOBALTRANSACTIONS"
        case azureSQLSupport: return "AZURESQLSUPPORT"
        case dataClassification: return "DATACLASSIFICATION"
        case utf8Support: return "UTF8_SUPPORT"
        case azureSQLDNSCaching: return "AZURESQLDNSCACHING"
        case jsonSupport: return "JSONSUPPORT"
        case vectorSupport: return "VECTORSUPPORT"
        case enhancedRouting: return "ENHANCEDROUTING"
        case userAgent: return "USERAGENT"
        default: return "FEATURE_0x" + String(id, radix: 16, uppercase: true)
        }
    }

    /// Entries followed by the 0xFF terminator.
    static func writeBlock(_ features: [Login7Feature], into buffer: inout ByteBuffer) {
        for f in features {
            buffer.writeInteger(f.id)
            buffer.tdsWriteU32LE(UInt32(truncatingIfNeeded: f.data.count))
            buffer.writeBytes(f.data)
        }
        buffer.writeInteger(terminator)
    }

    /// Parses entries up to and including the terminator; the reader index ends after it.
    static func readBlock(from buffer: inout ByteBuffer, field: String) throws -> [Login7Feature] {
        var result: [Login7Feature] = []
        while true {
            let id = try buffer.tdsU8(field + ".FeatureId")
            if id == terminator { return result }
            let name = "\(field)[\(Login7Feature.name(of: id))]"
            let length = try buffer.tdsU32LE(name + ".FeatureDataLen")
            guard Int(length) <= buffer.readableBytes else {
                throw TDSDecodingError(field: name, reason: "length \(length) exceeds the \(buffer.readableBytes) bytes left")
            }
            result.append(Login7Feature(id: id, data: try buffer.tdsBytes(name, count: Int(length))))
        }
    }
}

/// Typed view of the FEDAUTH (0x02) feature data.
public enum Login7FedAuth: Hashable, Sendable {
    /// Library 0x01: the client already holds an access token.
    case securityToken(token: String, echo: Bool, nonce: [UInt8]?)
    /// Library 0x02 (MSAL/ADAL): the server answers with FEDAUTHINFO and the token follows in a 0x08 message.
    case msal(workflow: UInt8, echo: Bool)

    public static let librarySecurityToken: UInt8 = 0x01
    public static let libraryMSAL: UInt8 = 0x02

    public init(featureData: [UInt8]) throws {
        var b = ByteBuffer(bytes: featureData)
        let options = try b.tdsU8("FEDAUTH.Options")
        let library = options >> 1
        let echo = options & 0x01 != 0
        switch library {
        case Login7FedAuth.librarySecurityToken:
            let length = try b.tdsU32LE("FEDAUTH.FedAuthTokenLen")
            guard Int(length) <= b.readableBytes else {
                throw TDSDecodingError(field: "FEDAUTH.FedAuthToken", reason: "length \(length) exceeds the \(b.readableBytes) bytes left")
            }
            guard length % 2 == 0 else {
                throw TDSDecodingError(field: "FEDAUTH.FedAuthToken", reason: "odd UTF-16 byte length \(length)")
            }
            let token = try b.tdsUTF16("FEDAUTH.FedAuthToken", units: Int(length / 2))
            let nonce: [UInt8]?
            switch b.readableBytes {
            case 0: nonce = nil
            case 32: nonce = b.tdsRest()
            default:
                throw TDSDecodingError(field: "FEDAUTH.Nonce", reason: "expected 0 or 32 bytes, found \(b.readableBytes)")
            }
            self = .securityToken(token: token, echo: echo, nonce: nonce)
        case Login7FedAuth.libraryMSAL:
            let workflow = try b.tdsU8("FEDAUTH.Workflow")
            self = .msal(workflow: workflow, echo: echo)
        default:
            throw TDSDecodingError(field: "FEDAUTH.Options", reason: "unsupported fed-auth library 0x\(String(library, radix: 16))")
        }
    }

    public var featureData: [UInt8] {
        var b = ByteBuffer()
        switch self {
        case let .securityToken(token, echo, nonce):
            b.writeInteger(Login7FedAuth.librarySecurityToken << 1 | (echo ? 1 : 0))
            let bytes = TDSString.encodeUTF16LE(token)
            b.tdsWriteU32LE(UInt32(truncatingIfNeeded: bytes.count))
            b.writeBytes(bytes)
            if let nonce { b.writeBytes(nonce) }
        case let .msal(workflow, echo):
            b.writeInteger(Login7FedAuth.libraryMSAL << 1 | (echo ? 1 : 0))
            b.writeInteger(workflow)
        }
        return b.tdsRest()
    }

    public var echo: Bool {
        switch self {
        case let .securityToken(_, echo, _): return echo
        case let .msal(_, echo): return echo
        }
    }
}

/// Body of a 0x08 (federated authentication token) message: data length u32, token length u32,
/// token UTF-16LE, optional 32-byte nonce.
public struct FedAuthTokenMessage: Hashable, Sendable {
    public var token: String
    public var nonce: [UInt8]?

    public init(token: String, nonce: [UInt8]? = nil) {
        self.token = token
        self.nonce = nonce
    }

    public init(parsing payload: ByteBuffer) throws {
        var b = payload
        let dataLength = try b.tdsU32LE("FEDAUTHTOKEN.DataLen")
        guard Int(dataLength) <= b.readableBytes else {
            throw TDSDecodingError(field: "FEDAUTHTOKEN.DataLen", reason: "length \(dataLength) exceeds the \(b.readableBytes) bytes left")
        }
        var body = try b.tdsSlice("FEDAUTHTOKEN.Data", count: Int(dataLength))
        let tokenLength = try body.tdsU32LE("FEDAUTHTOKEN.TokenLen")
        guard Int(tokenLength) <= body.readableBytes else {
            throw TDSDecodingError(field: "FEDAUTHTOKEN.Token", reason: "length \(tokenLength) exceeds the \(body.readableBytes) bytes left")
        }
        guard tokenLength % 2 == 0 else {
            throw TDSDecodingError(field: "FEDAUTHTOKEN.Token", reason: "odd UTF-16 byte length \(tokenLength)")
        }
        token = try body.tdsUTF16("FEDAUTHTOKEN.Token", units: Int(tokenLength / 2))
        switch body.readableBytes {
        case 0: nonce = nil
        case 32: nonce = body.tdsRest()
        default:
            throw TDSDecodingError(field: "FEDAUTHTOKEN.Nonce", reason: "expected 0 or 32 bytes, found \(body.readableBytes)")
        }
    }

    public func write(into buffer: inout ByteBuffer) {
        let bytes = TDSString.encodeUTF16LE(token)
        let dataLength = 4 + bytes.count + (nonce?.count ?? 0)
        buffer.tdsWriteU32LE(UInt32(truncatingIfNeeded: dataLength))
        buffer.tdsWriteU32LE(UInt32(truncatingIfNeeded: bytes.count))
        buffer.writeBytes(bytes)
        if let nonce { buffer.writeBytes(nonce) }
    }
}
