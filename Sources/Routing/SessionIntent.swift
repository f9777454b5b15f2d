import TDS

/// Where a session must go: the primary, or a readable replica.
public enum SessionIntent: String, Sendable, Hashable, Codable, CustomStringConvertible {
    case readWrite = "read_write"
    case readOnly = "read_only"

    /// A session is read-only when the client asks (ApplicationIntent=ReadOnly) or when its
    /// policy rule forbids writes (`write: false`): either way it has no business on the primary
    /// unless a rule lets reads fall back there.
    public init(readOnlyIntent: Bool, writeAllowed: Bool) {
        self = readOnlyIntent || !writeAllowed ? .readOnly : .readWrite
    }

    /// The intent of a client's LOGIN7 (TypeFlags 0x20) under its policy.
    public init(login: Login7, writeAllowed: Bool) {
        self.init(readOnlyIntent: login.readOnlyIntent, writeAllowed: writeAllowed)
    }

    public var description: String { rawValue }
}
