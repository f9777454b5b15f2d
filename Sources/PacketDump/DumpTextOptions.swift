/// How much a dump shows.
public struct DumpTextOptions: Hashable, Sendable {
    /// Hex of each message (requests) or token (replies) next to its decode.
    public var hex: Bool
    /// Literals in SQL text become `?` and RPC parameter values `<masked>`.
    public var maskLiterals: Bool
    /// Longest parameter or value shown before it is cut with its full length noted.
    public var maxValueCharacters: Int
    /// Longest SQL text shown.
    public var maxSQLCharacters: Int
    /// A request larger than this is decoded from its first bytes only (memory bound).
    public var maxBufferedRequestBytes: Int
    /// Lines per message; the rest are counted, not kept (memory bound for huge replies).
    public var maxLinesPerMessage: Int
    /// Hex bytes shown per message or token.
    public var maxHexBytes: Int

    public init(hex: Bool = false, maskLiterals: Bool = false, maxValueCharacters: Int = 200,
                maxSQLCharacters: Int = 8000, maxBufferedRequestBytes: Int = 1 << 20,
                maxLinesPerMessage: Int = 5000, maxHexBytes: Int = 4096) {
        self.hex = hex
        self.maskLiterals = maskLiterals
        self.maxValueCharacters = maxValueCharacters
        self.maxSQLCharacters = maxSQLCharacters
        self.maxBufferedRequestBytes = maxBufferedRequestBytes
        self.maxLinesPerMessage = maxLinesPerMessage
        self.maxHexBytes = maxHexBytes
    }
}
