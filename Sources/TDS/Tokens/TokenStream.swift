import NIOCore

/// Shared token reader for the parser and the scanner.
enum TokenStream {
    enum Item {
        case token(TDSToken)
        /// A row or return value passed over without decoding (scanner mode).
        case skipped(type: UInt8)
    }

    /// Reads one token from the front of `buffer`. Returns nil (consuming nothing) when the token
    /// is not complete yet; throws when it is malformed.
    static func next(from buffer: inout ByteBuffer, columns: inout [TDSColumn]?, skipRows: Bool,
                     dataClassificationVersion: inout UInt8) throws -> Item? {
        var b = buffer
        do {
            let item = try read(from: &b, columns: &columns, skipRows: skipRows, dcVersion: dataClassificationVersion)
            if case .token(.featureExtAck(let acks)) = item,
               let dc = acks.first(where: { $0.id == Login7Feature.dataClassification }), let v = dc.data.first, v > 0 {
                dataClassificationVersion = v
            }
            buffer = b
            return item
        } catch let e as TDSDecodingError where e.isTruncation {
            return nil
        }
    }

    private static func u16Body(_ b: inout ByteBuffer, _ name: String) throws -> ByteBuffer {
        let length = try b.tdsU16LE(name + ".Length")
        return try b.tdsSlice(name, count: Int(length))
    }

    private static func requireEmpty(_ body: ByteBuffer, _ name: String) throws {
        guard body.readableBytes == 0 else {
            throw TDSDecodingError(field: name, reason: "\(body.readableBytes) unexpected bytes after the token's fields")
        }
    }

    private static func read(from b: inout ByteBuffer, columns: inout [TDSColumn]?, skipRows: Bool, dcVersion: UInt8) throws -> Item {
        let type = try b.tdsU8("TOKEN.Type")
        let name = TDSTokenType.name(type)
        switch type {
        case TDSTokenType.loginAck:
            var body = try u16Body(&b, name)
            return .token(.loginAck(try TDSDecodingError.bounded {
                let ack = try LoginAck.read(body: &body)
                try requireEmpty(body, name)
                return ack
            }))
        case TDSTokenType.envChange:
            let body = try u16Body(&b, name)
            return .token(.envChange(try TDSDecodingError.bounded { try EnvChange.read(body: body) }))
        case TDSTokenType.error, TDSTokenType.info:
            var body = try u16Body(&b, name)
            let m = try TDSDecodingError.bounded {
                let m = try ServerMessage.read(body: &body, name: name)
                try requireEmpty(body, name)
                return m
            }
            return .token(type == TDSTokenType.error ? .error(m) : .info(m))
        case TDSTokenType.done, TDSTokenType.doneProc, TDSTokenType.doneInProc:
            let d = try Done.read(body: &b, name: name)
            switch type {
            case TDSTokenType.done: return .token(.done(d))
            case TDSTokenType.doneProc: return .token(.doneProc(d))
            default: return .token(.doneInProc(d))
            }
        case TDSTokenType.featureExtAck:
            return .token(.featureExtAck(try FeatureAck.readList(from: &b)))
        case TDSTokenType.fedAuthInfo:
            let length = try b.tdsU32LE(name + ".Length")
            let body = try b.tdsSlice(name, count: Int(length))
            return .token(.fedAuthInfo(try TDSDecodingError.bounded { try FedAuthInfo.read(body: body) }))
        case TDSTokenType.returnStatus:
            return .token(.returnStatus(try b.tdsI32LE(name + ".Value")))
        case TDSTokenType.colMetadata:
            let cols = try readColMetadata(&b)
            columns = cols
            return .token(.colMetadata(cols))
        case TDSTokenType.row, TDSTokenType.nbcRow:
            guard let cols = columns else {
                throw TDSDecodingError(field: name, reason: "row before any COLMETADATA")
            }
            let nbc = type == TDSTokenType.nbcRow
            var nulls = [Bool](repeating: false, count: cols.count)
            if nbc {
                let bitmap = try b.tdsBytes(name + ".NullBitmap", count: (cols.count + 7) / 8)
                for i in cols.indices { nulls[i] = bitmap[i / 8] & (1 << UInt8(i % 8)) != 0 }
            }
            if skipRows {
                for (i, c) in cols.enumerated() where !nulls[i] {
                    try TDSValue.skip(c.type, from: &b, field: "\(name)[\(i)]")
                }
                return .skipped(type: type)
            }
            var values: [TDSValue] = []
            values.reserveCapacity(cols.count)
            for (i, c) in cols.enumerated() {
                values.append(nulls[i] ? .null : try TDSValue.read(c.type, from: &b, field: "\(name)[\(i)] \(c.name)"))
            }
            return .token(nbc ? .nbcRow(values) : .row(values))
        case TDSTokenType.order:
            var body = try u16Body(&b, name)
            guard body.readableBytes % 2 == 0 else {
                throw TDSDecodingError(field: name, reason: "odd length \(body.readableBytes)")
            }
            var cols: [UInt16] = []
            while body.readableBytes > 0 { cols.append(try body.tdsU16LE(name + ".ColNum")) }
            return .token(.order(cols))
        case TDSTokenType.sspi:
            var body = try u16Body(&b, name)
            return .token(.sspi(body.tdsRest()))
        case TDSTokenType.returnValue:
            var rv = try ReturnValue.readHeader(from: &b)
            if skipRows {
                try TDSValue.skip(rv.type, from: &b, field: name + ".Value")
                return .skipped(type: type)
            }
            rv.value = try TDSValue.read(rv.type, from: &b, field: name + ".Value")
            return .token(.returnValue(rv))
        case TDSTokenType.dataClassification:
            // No length prefix: walk the structure, keep the body raw.
            let start = b
            try skipDataClassification(&b, version: dcVersion)
            let length = b.readerIndex - start.readerIndex
            return .token(.other(type: type, data: start.getBytes(at: start.readerIndex, length: length) ?? []))
        default:
            switch TDSTokenType.lengthRule(type) {
            case .fixed(let n):
                return .token(.other(type: type, data: try b.tdsBytes(name, count: n)))
            case .u16:
                var body = try u16Body(&b, name)
                return .token(.other(type: type, data: body.tdsRest()))
            case .u32:
                let length = try b.tdsU32LE(name + ".Length")
                return .token(.other(type: type, data: try b.tdsBytes(name, count: Int(length))))
            case .special:
                throw TDSDecodingError(field: "TOKEN.Type", reason: "unsupported token \(name)")
            }
        }
    }

    /// MS-TDS 2.2.7.5; version 2 adds a query-level and per-property SensitivityRank.
    static func skipDataClassification(_ b: inout ByteBuffer, version: UInt8) throws {
        let f = "DATACLASSIFICATION"
        for list in ["SensitivityLabels", "InformationTypes"] {
            let count = try b.tdsU16LE("\(f).\(list).Count")
            for _ in 0..<count {
                _ = try b.tdsBVarchar("\(f).\(list).Name")
                _ = try b.tdsBVarchar("\(f).\(list).Id")
            }
        }
        if version >= 2 { _ = try b.tdsI32LE(f + ".SensitivityRank") }
        let columns = try b.tdsU16LE(f + ".NumResultSetColumns")
        for _ in 0..<columns {
            let properties = try b.tdsU16LE(f + ".NumSensitivityProperties")
            try b.tdsSkip(f + ".SensitivityProperty", count: Int(properties) * (version >= 2 ? 8 : 4))
        }
    }

    static func readColMetadata(_ b: inout ByteBuffer) throws -> [TDSColumn] {
        let count = try b.tdsU16LE("COLMETADATA.Count")
        if count == 0xFFFF { return [] }
        var cols: [TDSColumn] = []
        for i in 0..<Int(count) {
            let f = "COLMETADATA[\(i)]"
            let userType = try b.tdsU32LE(f + ".UserType")
            let flags = try b.tdsU16LE(f + ".Flags")
            let type = try TDSTypeInfo.read(from: &b, field: f + ".TYPE_INFO")
            let name = try b.tdsBVarchar(f + ".ColName")
            cols.append(TDSColumn(name: name, type: type, flags: flags, userType: userType))
        }
        return cols
    }
}

/// Parses complete tokens from a reply payload, keeping COLMETADATA context for rows.
public struct TDSTokenParser: Sendable {
    public private(set) var columns: [TDSColumn]?
    /// Layout of DATACLASSIFICATION tokens: the version from the server's FEATUREEXTACK (0x09),
    /// picked up automatically when the login reply passes through this parser.
    public var dataClassificationVersion: UInt8 = 2

    public init() {}

    /// Consumes every complete token at the front of `buffer`; a token that is cut short stays in
    /// the buffer (feed more bytes and call again). Throws on malformed input.
    public mutating func parse(_ buffer: inout ByteBuffer) throws -> [TDSToken] {
        var tokens: [TDSToken] = []
        while buffer.readableBytes > 0 {
            guard let item = try TokenStream.next(from: &buffer, columns: &columns, skipRows: false,
                                                  dataClassificationVersion: &dataClassificationVersion) else { break }
            if case .token(let t) = item { tokens.append(t) }
        }
        return tokens
    }

    /// Parses a complete reply; leftover bytes are an error.
    public static func parseAll(_ payload: ByteBuffer) throws -> [TDSToken] {
        var parser = TDSTokenParser()
        var b = payload
        let tokens = try parser.parse(&b)
        guard b.readableBytes == 0 else {
            throw TDSDecodingError(field: "TOKEN", reason: "\(b.readableBytes) bytes of an incomplete token at the end of the reply")
        }
        return tokens
    }
}
