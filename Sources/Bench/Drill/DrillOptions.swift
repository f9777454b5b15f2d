import Gateway

/// What `tdsgate drill failover` does and against what.
public struct DrillOptions: Sendable {
    public enum Mode: String, Sendable, CaseIterable {
        /// ARM's failover-group failover: no data loss, the partners swap roles.
        case planned
        /// ARM's forceFailoverAllowDataLoss.
        case forced
        /// Disable the primary inside tdsgate for `outage`, then enable it: nothing in Azure
        /// changes, applications see what a lost primary looks like.
        case simulate
    }

    public var cluster: String
    public var mode: Mode
    /// Fail back to the original primary afterwards (a second phase, its own report).
    public var failback = false

    /// The tdsgate listener the synthetic sessions use (TLS, SQL login held by tdsgate).
    public var proxyHost: String
    public var proxyPort: Int
    public var tlsName: String
    /// Which roots the listener's certificate must chain to.
    public enum Trust: Sendable, Hashable {
        /// The system's roots.
        case systemRoots
        /// Only the CA certificates in this PEM file (`--ca-file`).
        case only(caFile: String)
        /// The system's roots and those of this PEM file (the cluster's `ca_file`: a
        /// private CA often signs the listener's certificate as well).
        case systemRootsAnd(caFile: String)

        /// For messages: what was trusted.
        public var summary: String {
            switch self {
            case .systemRoots: "the system's trusted roots"
            case .only(let file): "the CA in \(file) (--ca-file)"
            case .systemRootsAnd(let file): "the system's trusted roots and the CA in \(file) (the cluster's ca_file)"
            }
        }
    }

    public var trust: Trust = .systemRoots
    public var user: String
    public var password: String
    public var database: String

    public var adminURL: String
    public var adminToken: String?
    /// Needed for `planned` and `forced`.
    public var failoverGroup: FailoverGroupConfig?
    /// A management token (resource https://management.azure.com/) for ARM calls.
    public var armToken: (@Sendable () async throws -> String)?

    public var writers = 2
    public var readers = 2
    /// Pause between one session's requests.
    public var requestInterval: Duration = .milliseconds(50)
    /// Traffic before the failover starts, so the report has a baseline.
    public var baseline: Duration = .seconds(2)
    /// Traffic kept going after the first write on the new primary.
    public var settle: Duration = .seconds(3)
    /// How long `simulate` keeps the primary disabled.
    public var outage: Duration = .seconds(5)
    /// Hard bound on one phase; the drill ends (with what it saw) when it is reached.
    public var timeout: Duration = .seconds(120)
    /// A request or login slower than this is reported as a stall.
    public var stallThreshold: Duration = .seconds(1)
    /// Progress lines for the terminal (stderr); nil = quiet.
    public var progress: (@Sendable (String) -> Void)?

    public init(cluster: String, mode: Mode, proxyHost: String, proxyPort: Int, tlsName: String, user: String, password: String,
                database: String, adminURL: String) {
        self.cluster = cluster
        self.mode = mode
        self.proxyHost = proxyHost
        self.proxyPort = proxyPort
        self.tlsName = tlsName
        self.user = user
        self.password = password
        self.database = database
        self.adminURL = adminURL
    }
}
