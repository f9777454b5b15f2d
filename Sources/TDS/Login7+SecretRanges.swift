import NIOCore

/// A byte range of a LOGIN7 payload that holds a credential, so a dump can overwrite it in
/// place: lengths and offsets stay valid and a dissector still parses the message.
public struct Login7SecretRange: Hashable, Sendable {
    public enum Kind: String, Hashable, Sendable {
        case password
        case changePassword
        case sspi
        /// FEDAUTH SECURITYTOKEN bytes (UTF-16LE JWT).
        case fedAuthToken
        /// FEDAUTH data in a layout we do not know: all of it, to stay on the safe side.
        case fedAuthData
    }

    public var kind: Kind
    /// Offset from the start of the LOGIN7 payload (the reassembled message body).
    public var offset: Int
    public var length: Int

    public init(kind: Kind, offset: Int, length: Int) {
        self.kind = kind
        self.offset = offset
        self.length = length
    }
}

extension Login7 {
    /// Ranges of password, change-password, SSPI and FEDAUTH token bytes. Throws when the
    /// message does not parse: the caller should then treat the whole payload as secret.
    public static func secretRanges(in payload: ByteBuffer) throws -> [Login7SecretRange] {
        // Validates every offset and length the ranges below rely on.
        let login = try Login7(parsing: payload)
        let base = payload.readerIndex
        let length = Int(payload.getInteger(at: base, endianness: .little, as: UInt32.self) ?? 0)
        let version = payload.getInteger(at: base + 4, endianness: .little, as: UInt32.self) ?? 0
        let fixedLength = (version >> 24 == 0x70 || version >> 24 == 0x71) ? 86 : Login7.fixedLength

        func entry(_ field: Login7Field) -> (offset: Int, count: Int) {
            let offset = Int(payload.getInteger(at: base + field.tableOffset, endianness: .little, as: UInt16.self) ?? 0)
            let n = Int(payload.getInteger(at: base + field.tableOffset + 2, endianness: .little, as: UInt16.self) ?? 0)
            return (offset, field.isText ? n * 2 : n)
        }

        var ranges: [Login7SecretRange] = []
        func add(_ kind: Login7SecretRange.Kind, _ offset: Int, _ count: Int) {
            guard count > 0, offset >= 0, offset + count <= length else { return }
            ranges.append(Login7SecretRange(kind: kind, offset: offset, length: count))
        }
        let password = entry(.password)
        add(.password, password.offset, password.count)
        if fixedLength >= Login7.fixedLength {
            let change = entry(.changePassword)
            add(.changePassword, change.offset, change.count)
        }
        var sspi = entry(.sspi)
        if sspi.count == 0xFFFF, fixedLength >= Login7.fixedLength {
            sspi.count = Int(payload.getInteger(at: base + 90, endianness: .little, as: UInt32.self) ?? 0)
        }
        add(.sspi, sspi.offset, sspi.count)

        let ext = entry(.featureExtPointer)
        guard login.hasFeatureExtension, ext.count >= 4,
              let pointer32 = payload.getInteger(at: base + ext.offset, endianness: .little, as: UInt32.self)
        else { return ranges }
        var position = Int(pointer32)
        while position < length, let id = payload.getInteger(at: base + position, as: UInt8.self), id != Login7Feature.terminator {
            guard let n32 = payload.getInteger(at: base + position + 1, endianness: .little, as: UInt32.self) else { break }
            let dataStart = position + 5
            let count = Int(n32)
            guard count <= length - dataStart else { break }
            if id == Login7Feature.fedAuth, count > 0 {
                let options = payload.getInteger(at: base + dataStart, as: UInt8.self) ?? 0
                switch options >> 1 {
                case Login7FedAuth.librarySecurityToken where count >= 5:
                    let tokenLength = Int(payload.getInteger(at: base + dataStart + 1, endianness: .little, as: UInt32.self) ?? 0)
                    add(.fedAuthToken, dataStart + 5, min(tokenLength, count - 5))
                case Login7FedAuth.libraryMSAL:
                    break
                default:
                    add(.fedAuthData, dataStart, count)
                }
            }
            position = dataStart + count
        }
        return ranges
    }
}
