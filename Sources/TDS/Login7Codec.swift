import NIOCore

/// The variable-length fields of LOGIN7, in the order of the fixed part's offset table.
enum Login7Field: Int, CaseIterable, Sendable {
    case hostName, userName, password, appName, serverName, featureExtPointer, clientInterfaceName,
        language, database, sspi, attachDBFile, changePassword

    /// Position of (offset, length) in the fixed part.
    var tableOffset: Int {
        switch self {
        case .hostName: return 36
        case .userName: return 40
        case .password: return 44
        case .appName: return 48
        case .serverName: return 52
        case .featureExtPointer: return 56
        case .clientInterfaceName: return 60
        case .language: return 64
        case .database: return 68
        case .sspi: return 78
        case .attachDBFile: return 82
        case .changePassword: return 86
        }
    }

    /// Lengths count UTF-16 units for text, bytes for the extension pointer and SSPI.
    var isText: Bool { self != .featureExtPointer && self != .sspi }

    var name: String {
        switch self {
        case .hostName: return "LOGIN7.HostName"
        case .userName: return "LOGIN7.UserName"
        case .password: return "LOGIN7.Password"
        case .appName: return "LOGIN7.AppName"
        case .serverName: return "LOGIN7.ServerName"
        case .featureExtPointer: return "LOGIN7.Extension"
        case .clientInterfaceName: return "LOGIN7.CltIntName"
        case .language: return "LOGIN7.Language"
        case .database: return "LOGIN7.Database"
        case .sspi: return "LOGIN7.SSPI"
        case .attachDBFile: return "LOGIN7.AtchDBFile"
        case .changePassword: return "LOGIN7.ChangePassword"
        }
    }

    /// Fields present in a fixed part of the given size (TDS 7.0/7.1 use 86 bytes).
    static func fields(fixedLength: Int) -> [Login7Field] {
        fixedLength >= Login7.fixedLength ? allCases : allCases.filter { $0 != .changePassword }
    }
}

struct Login7Layout: Sendable, Hashable {
    enum Item: Sendable, Hashable {
        case field(Login7Field)
        case gap([UInt8])
        case featureExt
    }

    struct RawText: Sendable, Hashable {
        var text: String
        var bytes: [UInt8]
    }

    var fixedLength: Int
    var items: [Item]
    /// Empty fields whose offset pointed nowhere useful (0, into the fixed part, or mid-field).
    var literalOffsets: [Login7Field: UInt16]
    /// Wire bytes of each text field, reused while the text is unchanged (decoding may be lossy).
    var rawText: [Login7Field: RawText]
    var sspiLong: UInt32
    var sspiCount: Int
    var hadFeatureBlock: Bool
    /// Extension bytes after the 4-byte FeatureExt pointer.
    var extensionExtra: [UInt8]
    /// Extension bytes when OptionFlags3 does not announce a FeatureExt block.
    var unusedExtension: [UInt8]
    /// Bytes after the length the message claims for itself.
    var trailing: [UInt8]

    static let canonicalItems: [Item] =
        ([.hostName, .userName, .password, .appName, .serverName, .featureExtPointer, .clientInterfaceName,
         .language, .database, .sspi, .attachDBFile, .changePassword] as [Login7Field]).map { Item.field($0) } + [.featureExt]
}

extension Login7 {
    /// payload = the whole reassembled LOGIN7 message body.
    public init(parsing payload: ByteBuffer) throws {
        let available = payload.readableBytes
        var b = payload
        let length = Int(try b.tdsU32LE("LOGIN7.Length"))
        let tdsVersion = try b.tdsU32LE("LOGIN7.TDSVersion")
        let topByte = tdsVersion >> 24
        let fixedLength = (topByte == 0x70 || topByte == 0x71) ? 86 : Login7.fixedLength
        guard length >= fixedLength else {
            throw TDSDecodingError(field: "LOGIN7.Length", reason: "length \(length) is smaller than the \(fixedLength)-byte fixed part")
        }
        guard length <= available else {
            throw TDSDecodingError(field: "LOGIN7.Length", reason: "length \(length) exceeds message length \(available)")
        }
        self.init()
        self.tdsVersion = tdsVersion
        packetSize = try b.tdsU32LE("LOGIN7.PacketSize")
        clientProgramVersion = try b.tdsU32LE("LOGIN7.ClientProgVer")
        clientPID = try b.tdsU32LE("LOGIN7.ClientPID")
        connectionID = try b.tdsU32LE("LOGIN7.ConnectionID")
        optionFlags1 = try b.tdsU8("LOGIN7.OptionFlags1")
        optionFlags2 = try b.tdsU8("LOGIN7.OptionFlags2")
        typeFlags = try b.tdsU8("LOGIN7.TypeFlags")
        optionFlags3 = try b.tdsU8("LOGIN7.OptionFlags3")
        clientTimeZone = try b.tdsI32LE("LOGIN7.ClientTimeZone")
        clientLCID = try b.tdsU32LE("LOGIN7.ClientLCID")

        var fixed = payload
        let fields = Login7Field.fields(fixedLength: fixedLength)
        var offsets: [Login7Field: Int] = [:]
        var byteLengths: [Login7Field: Int] = [:]
        for field in fields {
            var entry = fixed
            entry.moveReaderIndex(forwardBy: field.tableOffset)
            offsets[field] = Int(try entry.tdsU16LE(field.name + ".Offset"))
            let n = Int(try entry.tdsU16LE(field.name + ".Length"))
            byteLengths[field] = field.isText ? n * 2 : n
        }
        fixed.moveReaderIndex(forwardBy: 72)
        clientID = try fixed.tdsBytes("LOGIN7.ClientID", count: 6)
        var sspiLong: UInt32 = 0
        if fixedLength >= Login7.fixedLength {
            fixed.moveReaderIndex(to: payload.readerIndex + 90)
            sspiLong = try fixed.tdsU32LE("LOGIN7.SSPILong")
            if byteLengths[.sspi] == 0xFFFF {
                byteLengths[.sspi] = Int(sspiLong)
            }
        }

        var raw: [Login7Field: [UInt8]] = [:]
        for field in fields {
            let offset = offsets[field] ?? 0
            let count = byteLengths[field] ?? 0
            guard count > 0 else { continue }
            guard offset >= fixedLength else {
                throw TDSDecodingError(field: field.name, reason: "offset \(offset) lies inside the \(fixedLength)-byte fixed part")
            }
            guard offset + count <= length else {
                throw TDSDecodingError(field: field.name, reason: "offset \(offset) + length \(count) exceeds message length \(length)")
            }
            var slice = payload
            slice.moveReaderIndex(forwardBy: offset)
            raw[field] = try slice.tdsBytes(field.name, count: count)
        }

        var rawText: [Login7Field: Login7Layout.RawText] = [:]
        func text(_ field: Login7Field) -> String {
            let bytes = raw[field] ?? []
            let plain = (field == .password || field == .changePassword) ? Login7.deobfuscate(bytes: bytes) : bytes
            let s = TDSString.decodeUTF16LE(plain)
            rawText[field] = Login7Layout.RawText(text: s, bytes: bytes)
            return s
        }
        hostName = text(.hostName)
        userName = text(.userName)
        password = text(.password)
        appName = text(.appName)
        serverName = text(.serverName)
        clientInterfaceName = text(.clientInterfaceName)
        language = text(.language)
        database = text(.database)
        attachDBFile = text(.attachDBFile)
        changePassword = text(.changePassword)
        sspi = raw[.sspi] ?? []

        // FeatureExt: the extension field holds a u32 absolute offset of the block.
        var extensionExtra: [UInt8] = []
        var unusedExtension: [UInt8] = []
        var block: (start: Int, end: Int)?
        let ext = raw[.featureExtPointer] ?? []
        if optionFlags3 & Login7.optionFlags3Extension != 0, !ext.isEmpty {
            guard ext.count >= 4 else {
                throw TDSDecodingError(field: "LOGIN7.Extension", reason: "length \(ext.count) is shorter than the 4-byte FeatureExt offset")
            }
            let pointer = Int(UInt32(ext[0]) | UInt32(ext[1]) << 8 | UInt32(ext[2]) << 16 | UInt32(ext[3]) << 24)
            extensionExtra = Array(ext[4...])
            guard pointer >= fixedLength, pointer < length else {
                throw TDSDecodingError(field: "LOGIN7.FeatureExt", reason: "offset \(pointer) outside the variable part \(fixedLength)..<\(length)")
            }
            var blockBuffer = payload
            blockBuffer.moveReaderIndex(forwardBy: pointer)
            blockBuffer = try blockBuffer.tdsSlice("LOGIN7.FeatureExt", count: length - pointer)
            let before = blockBuffer.readableBytes
            features = try Login7Feature.readBlock(from: &blockBuffer, field: "LOGIN7.FeatureExt")
            block = (pointer, pointer + before - blockBuffer.readableBytes)
        } else {
            unusedExtension = ext
        }

        var trailingBuffer = payload
        trailingBuffer.moveReaderIndex(forwardBy: length)
        let trailing = trailingBuffer.tdsRest()

        // Claimed byte ranges of the variable part, in offset order.
        enum Claim { case field(Login7Field), featureExt }
        var claims: [(start: Int, end: Int, claim: Claim)] = []
        for field in fields where (raw[field]?.count ?? 0) > 0 {
            let start = offsets[field] ?? 0
            claims.append((start, start + (raw[field]?.count ?? 0), .field(field)))
        }
        if let block { claims.append((block.start, block.end, .featureExt)) }
        claims.sort { $0.start < $1.start }
        var overlapping = false
        for i in claims.indices.dropFirst() where claims[i].start < claims[i - 1].end {
            overlapping = true
        }

        if overlapping {
            // Shared or overlapping data: no driver does this; re-encode canonically.
            layout = nil
            return
        }

        var literalOffsets: [Login7Field: UInt16] = [:]
        var anchors: [Int: [Login7Field]] = [:]
        for field in fields where (raw[field]?.count ?? 0) == 0 {
            let offset = offsets[field] ?? 0
            let insideClaim = claims.contains { offset > $0.start && offset < $0.end }
            if offset < fixedLength || offset > length || insideClaim {
                literalOffsets[field] = UInt16(truncatingIfNeeded: offset)
            } else {
                anchors[offset, default: []].append(field)
            }
        }

        var cuts = Set([fixedLength, length])
        for c in claims {
            cuts.insert(c.start)
            cuts.insert(c.end)
        }
        for offset in anchors.keys { cuts.insert(offset) }
        let sortedCuts = cuts.sorted()
        var items: [Login7Layout.Item] = []
        for (i, cut) in sortedCuts.enumerated() {
            for field in anchors[cut] ?? [] { items.append(.field(field)) }
            guard i + 1 < sortedCuts.count else { break }
            let next = sortedCuts[i + 1]
            if let c = claims.first(where: { $0.start == cut }) {
                switch c.claim {
                case .field(let f): items.append(.field(f))
                case .featureExt: items.append(.featureExt)
                }
            } else if !claims.contains(where: { cut >= $0.start && cut < $0.end }) {
                var gap = payload
                gap.moveReaderIndex(forwardBy: cut)
                items.append(.gap(try gap.tdsBytes("LOGIN7.gap", count: next - cut)))
            }
        }

        layout = Login7Layout(
            fixedLength: fixedLength, items: items, literalOffsets: literalOffsets, rawText: rawText,
            sspiLong: sspiLong, sspiCount: sspi.count, hadFeatureBlock: block != nil,
            extensionExtra: extensionExtra, unusedExtension: unusedExtension, trailing: trailing)
    }

    /// Byte-identical to the parsed input when nothing was changed; otherwise the original
    /// arrangement with changed fields resized, or a canonical layout for a fresh value.
    public func write(into buffer: inout ByteBuffer) {
        let needBlock = !features.isEmpty || (layout?.hadFeatureBlock ?? hasFeatureExtension)
        var fixedLength = layout?.fixedLength ?? Login7.fixedLength
        if fixedLength < Login7.fixedLength, !changePassword.isEmpty || sspi.count >= 0xFFFF {
            fixedLength = Login7.fixedLength
        }
        let fields = Login7Field.fields(fixedLength: fixedLength)

        func textBytes(_ field: Login7Field, _ value: String) -> [UInt8] {
            if let raw = layout?.rawText[field], raw.text == value { return raw.bytes }
            let units = TDSString.encodeUTF16LE(value).prefix(0xFFFF * 2)
            let bytes = Array(units)
            return (field == .password || field == .changePassword) ? Login7.obfuscate(bytes: bytes) : bytes
        }
        var data: [Login7Field: [UInt8]] = [
            .hostName: textBytes(.hostName, hostName),
            .userName: textBytes(.userName, userName),
            .password: textBytes(.password, password),
            .appName: textBytes(.appName, appName),
            .serverName: textBytes(.serverName, serverName),
            .clientInterfaceName: textBytes(.clientInterfaceName, clientInterfaceName),
            .language: textBytes(.language, language),
            .database: textBytes(.database, database),
            .attachDBFile: textBytes(.attachDBFile, attachDBFile),
            .changePassword: textBytes(.changePassword, changePassword),
            .sspi: sspi,
        ]
        data[.featureExtPointer] = needBlock ? [0, 0, 0, 0] + (layout?.extensionExtra ?? []) : (layout?.unusedExtension ?? [])

        var items = layout?.items ?? Login7Layout.canonicalItems
        // Fields the original did not place (new data, or the 86-byte layout growing) go before FeatureExt.
        let placed = Set(items.compactMap { item -> Login7Field? in
            if case .field(let f) = item { return f }
            return nil
        })
        let insertAt = items.firstIndex(of: .featureExt) ?? items.endIndex
        let missing = fields.filter { !placed.contains($0) }.map { Login7Layout.Item.field($0) }
        items.insert(contentsOf: missing, at: insertAt)
        if needBlock, !items.contains(.featureExt) { items.append(.featureExt) }

        var body = ByteBuffer()
        var offsets: [Login7Field: Int] = [:]
        var blockOffset = 0
        for item in items {
            let position = fixedLength + body.readableBytes
            switch item {
            case .field(let f):
                guard fields.contains(f) else { continue }
                let bytes = data[f] ?? []
                if bytes.isEmpty, let literal = layout?.literalOffsets[f] {
                    offsets[f] = Int(literal)
                } else {
                    offsets[f] = position
                    body.writeBytes(bytes)
                }
            case .gap(let bytes):
                body.writeBytes(bytes)
            case .featureExt:
                guard needBlock else { continue }
                blockOffset = position
                Login7Feature.writeBlock(features, into: &body)
            }
        }
        if needBlock, var ext = data[.featureExtPointer], let i = offsets[.featureExtPointer] {
            ext[0] = UInt8(truncatingIfNeeded: blockOffset)
            ext[1] = UInt8(truncatingIfNeeded: blockOffset >> 8)
            ext[2] = UInt8(truncatingIfNeeded: blockOffset >> 16)
            ext[3] = UInt8(truncatingIfNeeded: blockOffset >> 24)
            body.setBytes(ext.prefix(4), at: body.readerIndex + i - fixedLength)
        }

        let start = buffer.writerIndex
        buffer.tdsWriteU32LE(UInt32(truncatingIfNeeded: fixedLength + body.readableBytes))
        buffer.tdsWriteU32LE(tdsVersion)
        buffer.tdsWriteU32LE(packetSize)
        buffer.tdsWriteU32LE(clientProgramVersion)
        buffer.tdsWriteU32LE(clientPID)
        buffer.tdsWriteU32LE(connectionID)
        buffer.writeInteger(optionFlags1)
        buffer.writeInteger(optionFlags2)
        buffer.writeInteger(typeFlags)
        buffer.writeInteger(needBlock ? optionFlags3 | Login7.optionFlags3Extension : optionFlags3)
        buffer.tdsWriteI32LE(clientTimeZone)
        buffer.tdsWriteU32LE(clientLCID)
        for field in fields {
            if field == .sspi {
                // ClientID sits between Database and SSPI in the table.
                var id = Array(clientID.prefix(6))
                while id.count < 6 { id.append(0) }
                buffer.writeBytes(id)
            }
            let count = data[field]?.count ?? 0
            let length: Int
            if field == .sspi {
                length = min(count, 0xFFFF)
            } else {
                length = field.isText ? count / 2 : count
            }
            buffer.tdsWriteU16LE(UInt16(truncatingIfNeeded: offsets[field] ?? 0))
            buffer.tdsWriteU16LE(UInt16(clamping: length))
        }
        if fixedLength >= Login7.fixedLength {
            let long: UInt32
            if sspi.count >= 0xFFFF {
                long = UInt32(truncatingIfNeeded: sspi.count)
            } else if let layout, layout.sspiCount == sspi.count {
                long = layout.sspiLong
            } else {
                long = 0
            }
            buffer.tdsWriteU32LE(long)
        }
        assert(buffer.writerIndex - start == fixedLength)
        buffer.writeImmutableBuffer(body)
        if let trailing = layout?.trailing { buffer.writeBytes(trailing) }
    }
}
