/// Thrown by every parser in this module when input is malformed or truncated.
public struct TDSDecodingError: Error, Hashable, Sendable, CustomStringConvertible {
    public var field: String
    public var reason: String
    /// Ran out of input (as opposed to contradicting itself): a stream reader asks for more bytes.
    var isTruncation = false

    public init(field: String, reason: String) {
        self.field = field
        self.reason = reason
    }

    init(truncated field: String, reason: String) {
        self.field = field
        self.reason = reason
        self.isTruncation = true
    }

    /// Inside a length-delimited structure that is complete, running out is corruption.
    static func bounded<T>(_ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch var e as TDSDecodingError {
            e.isTruncation = false
            throw e
        }
    }

    public var description: String { "\(field): \(reason)" }
}
