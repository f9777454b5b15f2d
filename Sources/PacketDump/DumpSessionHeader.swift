/// Who and what a dumped session was, written at the top of its text dump so the file stands
/// on its own when it is handed to someone else.
public struct DumpSessionHeader: Hashable, Sendable {
    public var sessionID: String
    public var clientAddress: DumpSocketAddress?
    public var principal: String?
    public var authMethod: String?
    public var cluster: String?
    public var endpoint: String?
    public var intent: String?
    public var backendIdentity: String?
    public var database: String?
    public var startTime: DumpTimestamp?

    public init(sessionID: String, clientAddress: DumpSocketAddress? = nil, principal: String? = nil,
                authMethod: String? = nil, cluster: String? = nil, endpoint: String? = nil, intent: String? = nil,
                backendIdentity: String? = nil, database: String? = nil, startTime: DumpTimestamp? = nil) {
        self.sessionID = sessionID
        self.clientAddress = clientAddress
        self.principal = principal
        self.authMethod = authMethod
        self.cluster = cluster
        self.endpoint = endpoint
        self.intent = intent
        self.backendIdentity = backendIdentity
        self.database = database
        self.startTime = startTime
    }

    /// "# key: value" lines; absent values print as "-".
    public func rendered() -> String {
        let rows: [(String, String?)] = [
            ("session", sessionID), ("client", clientAddress?.description), ("principal", principal),
            ("auth method", authMethod), ("cluster", cluster), ("endpoint", endpoint), ("intent", intent),
            ("backend identity", backendIdentity), ("database", database), ("start", startTime?.description),
        ]
        var out = "# tdsgate session dump (secrets redacted in place)\n"
        for (k, v) in rows { out += "# \(k): \(v.map(DumpText.printable) ?? "-")\n" }
        return out + "\n"
    }
}
