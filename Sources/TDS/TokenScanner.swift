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
/// Tracks COLMETADATA so ROW/NBCROW bodies (PLP chunks included) can be skipped; a token split
/// across chunks stays in the caller's buffer until the rest arrives.
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

    public init() {}

    /// Starts a new reply; the result-set context is dropped.
    public mutating func reset() {
        let version = dataClassificationVersion
        self = TDSTokenScanner()
        dataClassificationVersion = version
    }

    /// Consumes every complete token at the front of `buffer` and returns what it saw; an
    /// incomplete token is left in `buffer`. Throws on malformed input.
    @discardableResult
    public mutating func scan(_ buffer: inout ByteBuffer) throws -> [TDSTokenSummary] {
        var out: [TDSTokenSummary] = []
        while buffer.readableBytes > 0 {
            let before = buffer.readableBytes
            let typeByte = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) ?? 0
            guard let item = try TokenStream.next(from: &buffer, columns: &columns, skipRows: true,
                                                  dataClassificationVersion: &dataClassificationVersion) else { break }
            tokenCount += 1
            let length = before - buffer.readableBytes
            switch item {
            case .skipped(let type):
                if type == TDSTokenType.row || type == TDSTokenType.nbcRow { rowsSeen += 1 }
                out.append(TDSTokenSummary(type: type, length: length, token: nil))
            case .token(let token):
                observe(token)
                out.append(TDSTokenSummary(type: typeByte, length: length, token: token))
            }
        }
        return out
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
