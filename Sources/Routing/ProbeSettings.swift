/// HAProxy-style check settings for one endpoint (`inter`, `timeout check`, `rise`, `fall`,
/// `fastinter`, `downinter`).
public struct ProbeSettings: Sendable, Hashable {
    /// Time between probes while the endpoint is steadily up.
    public var interval: Duration
    /// Longest a probe (connect, TLS, login, role query) may take before it counts as failed.
    public var timeout: Duration
    /// Consecutive successes that bring a down endpoint up.
    public var rise: Int
    /// Consecutive failures (probes or passive) that take an up endpoint down.
    public var fall: Int
    /// Interval while the state is in doubt (going up or down, or never checked), so a
    /// failover is confirmed in `fall` quick probes rather than `fall` slow ones.
    public var fastInterval: Duration?
    /// Interval while down, to spare an endpoint that is away for a long time.
    public var downInterval: Duration?
    /// Weight of the newest latency sample in the moving average (0 < w <= 1).
    public var latencyWeight: Double

    public static let defaultInterval: Duration = .seconds(2)
    public static let defaultTimeout: Duration = .seconds(2)
    public static let defaultRise = 2
    public static let defaultFall = 3

    public init(
        interval: Duration = ProbeSettings.defaultInterval,
        timeout: Duration = ProbeSettings.defaultTimeout,
        rise: Int = ProbeSettings.defaultRise,
        fall: Int = ProbeSettings.defaultFall,
        fastInterval: Duration? = nil,
        downInterval: Duration? = nil,
        latencyWeight: Double = 0.3
    ) {
        self.interval = interval
        self.timeout = timeout
        // A counter of zero would mean "change state without evidence"; one is the least.
        self.rise = max(1, rise)
        self.fall = max(1, fall)
        self.fastInterval = fastInterval
        self.downInterval = downInterval
        self.latencyWeight = min(1, max(0.01, latencyWeight))
    }
}
