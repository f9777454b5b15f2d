import NIOCore

/// What the scanner saw of one token.
public struct TDSTokenSummary: Hashable, Sendable {
    public var type: UInt8
    /// Bytes including the type byte.
    public var length: Int
    /// Decoded token, except rows and return values, which are passed over.
    public var token: TDSToken?

    public var name: String { TDSTokenType.name(type) }
}

/// Walks a reply (possibly delivered in pieces) to its final DONE without materialising rows.
///
/// Tracks COLMETADATA so ROW/NBCROW bodies can be skipped. Rows are consumed incrementally:
/// a PLP value (nvarchar(max), varbinary(max)) is skipped chunk by chunk as bytes arrive, so a
/// relay never has to hold a whole large row. Any other token split across chunks stays in the
/// caller's buffer until the rest arrives; the scanner never reads past the end.
public struct TDSTokenScanner: Sendable {
    public private(set) var columns: [TDSColumn]?
    /// A DONE or DONEPROC without MORE (or an attention ack) has been seen.
    public private(set) var isComplete = false
    /// A DONE carrying ATTN: the server acknowledged an attention.
    public private(set) var attentionAcknowledged = false
    /// Numbers of ERROR tokens, in order.
    public private(set) var errorNumbers: [Int32] = []
    /// ROW/NBCROW tokens seen.
    public private(set) var rowsSeen = 0
    /// Row count of the last DONE-family token carrying COUNT.
    public private(set) var lastDoneRowCount: UInt64?
    public private(set) var finalDone: Done?
    public private(set) var tokenCount = 0
    /// Layout of DATACLASSIFICATION tokens (from FEATUREEXTACK 0x09); survives `reset()`.
    public var dataClassificationVersion: UInt8 = 2

    /// A row whose bytes have partly been consumed.
    private struct PendingRow: Sendable {
        enum PLPState: Sendable {
            case chunkHeader
            case chunkBody(remaining: Int)
        }

        var type: UInt8
        var nulls: [Bool]
        var column = 0
        var consumed: Int
        var plp: PLPState?
    }

    private var pendingRow: PendingRow?

    public init() {}

    /// True while a row is partly consumed (its summary comes when it ends).
    public var isInsideRow: Bool { pendingRow != nil }

    /// Starts a new reply; the result-set context is dropped.
    public mutating func reset() {
        let version = dataClassificationVersion
        self = TDSTokenScanner()
        dataClassificationVersion = version
    }

    /// Consumes every complete token at the front of `buffer` (and as much of a row as is
    /// there) and returns what it saw; an incomplete non-row token is left in `buffer`.
    /// Throws on malformed input.
    @discardableResult
    public mutating func scan(_ buffer: inout ByteBuffer) throws -> [TDSTokenSummary] {
        var out: [TDSTokenSummary] = []
        while buffer.readableBytes > 0 || pendingRow != nil {
            if pendingRow != nil {
                guard try continueRow(&buffer, into: &out) else { break }
                continue
            }
            let typeByte = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) ?? 0
            if typeByte == TDSTokenType.row || typeByte == TDSTokenType.nbcRow {
                guard let cols = columns else {
                    throw TDSDecodingError(field: TDSTokenType.name(typeByte), reason: "row before any COLMETADATA")
                }
                var nulls = [Bool](repeating: false, count: cols.count)
                var consumed = 1
                if typeByte == TDSTokenType.nbcRow {
                    let bitmapLength = (cols.count + 7) / 8
                    guard buffer.readableBytes >= 1 + bitmapLength else { break }
                    let bitmap = buffer.getBytes(at: buffer.readerIndex + 1, length: bitmapLength) ?? []
                    for i in cols.indices { nulls[i] = bitmap[i / 8] & (1 << UInt8(i % 8)) != 0 }
                    consumed += bitmapLength
                }
                buffer.moveReaderIndex(forwardBy: consumed)
                pendingRow = PendingRow(type: typeByte, nulls: nulls, consumed: consumed, plp: nil)
                continue
            }
            let before = buffer.readableBytes
            guard let item = try TokenStream.next(from: &buffer, columns: &columns, skipRows: true,
                                                  dataClassificationVersion: &dataClassificationVersion) else { break }
            tokenCount += 1
            let length = before - buffer.readableBytes
            switch item {
            case .skipped(let type):
                out.append(TDSTokenSummary(type: type, length: length, token: nil))
            case .token(let token):
                observe(token)
                out.append(TDSTokenSummary(type: typeByte, length: length, token: token))
            }
        }
        return out
    }

    /// Advances the pending row; false when more bytes are needed.
    private mutating func continueRow(_ buffer: inout ByteBuffer, into out: inout [TDSTokenSummary]) throws -> Bool {
        guard var row = pendingRow, let cols = columns else { return false }
        defer { pendingRow = row.column >= row.nulls.count ? nil : row }
        while row.column < cols.count {
            let i = row.column
            let type = cols[i].type
            let field = "\(TDSTokenType.name(row.type))[\(i)]"
            if row.nulls[i] {
                row.column += 1
                continue
            }
            if type.isPLP {
                switch row.plp {
                case nil:
                    guard let total = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt64.self) else { return false }
                    buffer.moveReaderIndex(forwardBy: 8)
                    row.consumed += 8
                    if total == UInt64.max {
                        row.column += 1
                    } else {
                        row.plp = .chunkHeader
                    }
                case .chunkHeader:
                    guard let chunk = buffer.getInteger(at: buffer.readerIndex, endianness: .little, as: UInt32.self) else { return false }
                    buffer.moveReaderIndex(forwardBy: 4)
                    row.consumed += 4
                    if chunk == 0 {
                        row.plp = nil
                        row.column += 1
                    } else {
                        row.plp = .chunkBody(remaining: Int(chunk))
                    }
                case .chunkBody(let remaining):
                    let n = min(remaining, buffer.readableBytes)
                    guard n > 0 else { return false }
                    buffer.moveReaderIndex(forwardBy: n)
                    row.consumed += n
                    row.plp = remaining - n == 0 ? .chunkHeader : .chunkBody(remaining: remaining - n)
                }
                continue
            }
            // Non-PLP values are at most 64 KiB: wait for the whole value.
            var peek = buffer
            do {
                try TDSValue.skip(type, from: &peek, field: field)
            } catch let e as TDSDecodingError where e.isTruncation {
                return false
            }
            let n = peek.readerIndex - buffer.readerIndex
            buffer.moveReaderIndex(forwardBy: n)
            row.consumed += n
            row.column += 1
        }
        tokenCount += 1
        rowsSeen += 1
        out.append(TDSTokenSummary(type: row.type, length: row.consumed, token: nil))
        return true
    }

    private mutating func observe(_ token: TDSToken) {
        switch token {
        case .error(let m):
            errorNumbers.append(m.number)
        case .done(let d), .doneProc(let d):
            if d.status.contains(.count) { lastDoneRowCount = d.rowCount }
            if d.status.contains(.attention) { attentionAcknowledged = true }
            if !d.status.contains(.more) || d.status.contains(.attention) {
                isComplete = true
                finalDone = d
            }
        case .doneInProc(let d):
            if d.status.contains(.count) { lastDoneRowCount = d.rowCount }
        default:
            break
        }
    }
}
