/// `dump:` (or `tdsgate run --dump DIR`): the packet dump, decrypted and decoded, with
/// secrets redacted. Also the runtime settings that `POST /v1/dump` replaces.
public struct DumpConfig: Sendable, Hashable {
    /// Where the files go; nil: nothing on disk, only the admin API's follow stream.
    public var directory: String?
    /// Dump from start-up (false: only once `POST /v1/dump` switches it on).
    public var enabled: Bool
    public var settings: DumpSettings
    /// Per file, then it rotates (`name.1`, `name.2`, ...).
    public var maxFileBytes: Int
    /// The whole directory; the oldest closed or rotated files are deleted first.
    public var maxTotalBytes: Int
    public var keepRotated: Int
    /// Bytes waiting for the writer thread; more are dropped, counted and marked as a gap.
    public var queueBytes: Int
    /// Recent decoded lines the admin API keeps for `tdsgate dump --follow`.
    public var followLines: Int

    public init(directory: String? = nil, enabled: Bool = true, settings: DumpSettings = DumpSettings(),
                maxFileBytes: Int = 64 << 20, maxTotalBytes: Int = 1 << 30, keepRotated: Int = 3,
                queueBytes: Int = 16 << 20, followLines: Int = 10_000) {
        self.directory = directory
        self.enabled = enabled
        self.settings = settings
        self.maxFileBytes = maxFileBytes
        self.maxTotalBytes = maxTotalBytes
        self.keepRotated = keepRotated
        self.queueBytes = queueBytes
        self.followLines = followLines
    }
}

/// What is dumped and how; swapped at runtime by the admin API.
public struct DumpSettings: Sendable, Hashable, Codable {
    public enum Format: String, Sendable, Hashable, Codable, CaseIterable {
        case text, pcapng
    }

    /// One pcapng per session, or one for everything dumped while the dump is on.
    public enum PcapngFiles: String, Sendable, Hashable, Codable, CaseIterable {
        case session, dump
    }

    public var filter: DumpFilter
    public var formats: [Format]
    public var pcapngFiles: PcapngFiles
    /// Hex next to the decode (of redacted bytes).
    public var hex: Bool
    /// Literals in SQL text become `?`, RPC parameter values `<masked>`.
    public var maskLiterals: Bool

    public init(filter: DumpFilter = DumpFilter(), formats: [Format] = [.text], pcapngFiles: PcapngFiles = .session,
                hex: Bool = false, maskLiterals: Bool = false) {
        self.filter = filter
        self.formats = formats
        self.pcapngFiles = pcapngFiles
        self.hex = hex
        self.maskLiterals = maskLiterals
    }

    enum CodingKeys: String, CodingKey {
        case filter, formats = "format", pcapngFiles = "pcapng_files", hex, maskLiterals = "mask_literals"
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        filter = try c.decodeIfPresent(DumpFilter.self, forKey: .filter) ?? DumpFilter()
        formats = try c.decodeIfPresent([Format].self, forKey: .formats) ?? [.text]
        pcapngFiles = try c.decodeIfPresent(PcapngFiles.self, forKey: .pcapngFiles) ?? .session
        hex = try c.decodeIfPresent(Bool.self, forKey: .hex) ?? false
        maskLiterals = try c.decodeIfPresent(Bool.self, forKey: .maskLiterals) ?? false
    }
}

/// Which sessions are dumped: all of the given fields must match (none given: every session).
public struct DumpFilter: Sendable, Hashable, Codable {
    /// Login name, UPN or Kerberos principal (case-insensitive).
    public var principal: String?
    /// The client's IP address, or a network in CIDR form ("10.1.0.0/16").
    public var client: String?
    public var cluster: String?
    /// Case-insensitive.
    public var database: String?

    public init(principal: String? = nil, client: String? = nil, cluster: String? = nil, database: String? = nil) {
        self.principal = principal
        self.client = client
        self.cluster = cluster
        self.database = database
    }

    public var isEmpty: Bool { principal == nil && client == nil && cluster == nil && database == nil }
    /// Principal, cluster and database are known only after login.
    var needsLogin: Bool { principal != nil || cluster != nil || database != nil }

    /// A valid client filter (an address or CIDR network), or why not.
    public static func clientProblem(_ text: String) -> String? {
        DumpClientMatcher(text) == nil ? "expected an IP address or a CIDR network such as 10.1.0.0/16" : nil
    }

    func matches(clientAddress: String?) -> Bool {
        guard let client else { return true }
        guard let matcher = DumpClientMatcher(client), let clientAddress else { return false }
        return matcher.matches(clientAddress)
    }

    func matches(_ info: SessionInfo) -> Bool {
        if let principal, principal.lowercased() != info.principal.lowercased() { return false }
        if let cluster, cluster != info.cluster { return false }
        if let database, database.lowercased() != info.database.lowercased() { return false }
        return true
    }
}
