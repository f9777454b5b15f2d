import NIOCore

/// One FEATUREEXTACK (0xAE) entry.
public struct FeatureAck: Hashable, Sendable {
    public var id: UInt8
    public var data: [UInt8]

    public init(id: UInt8, data: [UInt8] = []) {
        self.id = id
        self.data = data
    }

    public var name: String { Login7Feature.name(of: id) }

    static func writeList(_ acks: [FeatureAck], into b: inout ByteBuffer) {
        for a in acks {
            b.writeInteger(a.id)
            b.tdsWriteU32LE(UInt32(truncatingIfNeeded: a.data.count))
            b.writeBytes(a.data)
        }
        b.writeInteger(Login7Feature.terminator)
    }

    static func readList(from b: inout ByteBuffer) throws -> [FeatureAck] {
        var acks: [FeatureAck] = []
        while true {
            let id = try b.tdsU8("FEATUREEXTACK.FeatureId")
            if id == Login7Feature.terminator { return acks }
            let length = try b.tdsU32LE("FEATUREEXTACK.FeatureAckDataLen")
            acks.append(FeatureAck(id: id, data: try b.tdsBytes("FEATUREEXTACK.FeatureAckData", count: Int(length))))
        }
    }
}

/// FEDAUTHINFO (0xEE): where an MSAL-workflow client gets its token.
public struct FedAuthInfo: Hashable, Sendable {
    public var stsURL: String
    public var spn: String

    public static let stsURLID: UInt8 = 0x01
    public static let spnID: UInt8 = 0x02

    public init(stsURL: String, spn: String) {
        self.stsURL = stsURL
        self.spn = spn
    }

    /// Body after the u32 token length: count, (id, length, offset) entries, then UTF-16LE data;
    /// offsets count from the count field.
    func writeBody(into b: inout ByteBuffer) {
        let sts = TDSString.encodeUTF16LE(stsURL)
        let spnBytes = TDSString.encodeUTF16LE(spn)
        let header = 4 + 2 * 9
        b.tdsWriteU32LE(2)
        b.writeInteger(FedAuthInfo.stsURLID)
        b.tdsWriteU32LE(UInt32(truncatingIfNeeded: sts.count))
        b.tdsWriteU32LE(UInt32(header))
        b.writeInteger(FedAuthInfo.spnID)
        b.tdsWriteU32LE(UInt32(truncatingIfNeeded: spnBytes.count))
        b.tdsWriteU32LE(UInt32(truncatingIfNeeded: header + sts.count))
        b.writeBytes(sts)
        b.writeBytes(spnBytes)
    }

    static func read(body: ByteBuffer) throws -> FedAuthInfo {
        var b = body
        let total = body.readableBytes
        let count = try b.tdsU32LE("FEDAUTHINFO.CountOfInfoIDs")
        guard Int(count) <= (total - 4) / 9 else {
            throw TDSDecodingError(field: "FEDAUTHINFO.CountOfInfoIDs", reason: "\(count) entries do not fit in \(total) bytes")
        }
        var sts = ""
        var spn = ""
        for _ in 0..<count {
            let id = try b.tdsU8("FEDAUTHINFO.FedAuthInfoID")
            let length = Int(try b.tdsU32LE("FEDAUTHINFO.FedAuthInfoDataLen"))
            let offset = Int(try b.tdsU32LE("FEDAUTHINFO.FedAuthInfoDataOffset"))
            guard offset <= total, length <= total - offset else {
                throw TDSDecodingError(field: "FEDAUTHINFO.FedAuthInfoData", reason: "offset \(offset) + length \(length) exceeds token length \(total)")
            }
            var data = body
            data.moveReaderIndex(forwardBy: offset)
            let text = TDSString.decodeUTF16LE(try data.tdsBytes("FEDAUTHINFO.FedAuthInfoData", count: length))
            switch id {
            case stsURLID: sts = text
            case spnID: spn = text
            default: break
            }
        }
        return FedAuthInfo(stsURL: sts, spn: spn)
    }
}
