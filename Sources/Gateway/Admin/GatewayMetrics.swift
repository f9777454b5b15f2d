import Audit
import Identity
import Prometheus
import Routing
import Synchronization

/// What tdsgate counts, in Prometheus form and by Prometheus's conventions: counters end in
/// `_total`, durations are histograms in seconds, gauges are things that go up and down.
/// Session and byte counters are updated as things happen; endpoint state and the totals
/// other components keep (token cache, audit writer) are brought up to date when /metrics
/// is read.
final class GatewayMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()
    /// The last total exported for each counter that mirrors another component's own count.
    private let mirrored = Mutex<[String: Int]>([:])

    enum Outcome: String, Sendable {
        case success, failure
    }

    func login(listener: String, outcome: String) {
        counter("tdsgate_logins_total", labels: [("listener", listener), ("outcome", outcome)]).increment()
    }

    /// From LOGIN7 received to a logged-in backend leg or a refusal (PRELOGIN and TLS excluded).
    func loginFinished(listener: String, after elapsed: Duration) {
        histogram("tdsgate_login_duration_seconds", labels: [("listener", listener)], buckets: Self.loginBuckets).record(elapsed)
    }

    /// A login refused without a look at its credentials because its client address is blocked.
    func loginThrottled(listener: String) {
        counter("tdsgate_logins_throttled_total", labels: [("listener", listener)]).increment()
    }

    func session(cluster: String, endpoint: String, intent: String, delta: Double) {
        gauge("tdsgate_sessions", labels: [("cluster", cluster), ("endpoint", endpoint), ("intent", intent)])
            .increment(by: delta)
    }

    func relayed(direction: String, bytes: Int) {
        counter("tdsgate_relayed_bytes_total", labels: [("direction", direction)]).increment(by: Int64(bytes))
    }

    /// Connections refused because their listener was at a limit (`max_connections`, ...).
    func connectionRefused(listener: String, limit: String) {
        counter("tdsgate_connections_refused_total", labels: [("listener", listener), ("limit", limit)]).increment()
    }

    /// Dump records dropped because the dump's queue was full (the relay never waits).
    func dumpDropped(records: Int) {
        counter("tdsgate_dump_dropped_records_total").increment(by: Int64(records))
    }

    func failover(cluster: String) {
        counter("tdsgate_failovers_total", labels: [("cluster", cluster)]).increment()
    }

    /// One probe of an endpoint, timed from start to verdict (timeouts included).
    func timeProbe(cluster: String, endpoint: String, _ probe: () async -> ProbeResult) async -> ProbeResult {
        let started = ContinuousClock.now
        let result = await probe()
        let outcome: Outcome
        if case .success = result { outcome = .success } else { outcome = .failure }
        histogram("tdsgate_probe_duration_seconds", labels: [("cluster", cluster), ("endpoint", endpoint), ("outcome", outcome.rawValue)],
                  buckets: Self.loginBuckets).record(ContinuousClock.now - started)
        return result
    }

    /// TCP connect to a backend endpoint (and the TLS handshake in strict mode).
    func timeBackendConnect<T>(_ connect: () async throws -> T) async throws -> T {
        let started = ContinuousClock.now
        do {
            let leg = try await connect()
            backendConnect(.success, after: ContinuousClock.now - started)
            return leg
        } catch {
            backendConnect(.failure, after: ContinuousClock.now - started)
            throw error
        }
    }

    private func backendConnect(_ outcome: Outcome, after elapsed: Duration) {
        histogram("tdsgate_backend_connect_duration_seconds", labels: [("outcome", outcome.rawValue)], buckets: Self.connectBuckets)
            .record(elapsed)
    }

    /// One token fetch from an identity endpoint (the cache's misses and refreshes).
    func tokenFetched(identity: String, _ outcome: Outcome, after elapsed: Duration) {
        histogram("tdsgate_token_fetch_duration_seconds", labels: [("identity", identity), ("outcome", outcome.rawValue)],
                  buckets: Self.tokenBuckets).record(elapsed)
    }

    /// Text exposition, after refreshing the figures read at scrape time.
    func render(clusters: [ClusterSnapshot], tokenStats: (hits: Int, refreshes: Int, failures: Int), audit: AuditLog.Stats?) -> String {
        mirror("tdsgate_token_cache_hits_total", total: tokenStats.hits)
        mirror("tdsgate_token_cache_refreshes_total", total: tokenStats.refreshes)
        mirror("tdsgate_token_cache_failures_total", total: tokenStats.failures)
        if let audit {
            mirror("tdsgate_audit_dropped_events_total", total: audit.dropped)
            mirror("tdsgate_audit_dropped_bytes_total", total: audit.droppedBytes)
            gauge("tdsgate_audit_queued_events").set(to: Double(audit.queued))
        }
        for c in clusters {
            gauge("tdsgate_cluster_has_primary", labels: [("cluster", c.name)]).set(to: c.primary == nil ? 0 : 1)
            for e in c.endpoints {
                let labels = [("cluster", c.name), ("endpoint", e.name)]
                gauge("tdsgate_endpoint_up", labels: labels).set(to: e.up ? 1 : 0)
                gauge("tdsgate_endpoint_primary", labels: labels).set(to: e.primary ? 1 : 0)
                gauge("tdsgate_endpoint_accepts_sessions", labels: labels).set(to: e.admin == "enabled" ? 1 : 0)
                if let ms = e.probeLatencyMs {
                    gauge("tdsgate_endpoint_probe_latency_seconds", labels: labels).set(to: ms / 1000)
                }
            }
        }
        return registry.emitToString()
    }

    // Logins and probes: a redirect and a token fetch can take a second; the login timeout
    // is tens of seconds.
    private static let loginBuckets: [Duration] = [
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250),
        .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30),
    ]
    private static let connectBuckets: [Duration] = [
        .milliseconds(1), .microseconds(2500), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5),
    ]
    // IMDS retries can take a minute.
    private static let tokenBuckets: [Duration] = [
        .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .milliseconds(500),
        .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10), .seconds(30), .seconds(60),
    ]

    private static let help: [String: String] = [
        "tdsgate_logins_total": "Client logins by listener and outcome",
        "tdsgate_login_duration_seconds": "Time from a client's LOGIN7 to its backend login or refusal",
        "tdsgate_logins_throttled_total": "Logins refused because the client address had too many failed logins (throttle)",
        "tdsgate_relayed_bytes_total": "Bytes relayed after login, by direction",
        "tdsgate_failovers_total": "Primary changes from one endpoint to another",
        "tdsgate_connections_refused_total": "Client connections refused because their listener was at a connection limit",
        "tdsgate_dump_dropped_records_total": "Packet-dump records dropped because the dump queue was full",
        "tdsgate_audit_dropped_events_total": "Audit events lost (queue full, destination disconnected or failing)",
        "tdsgate_audit_dropped_bytes_total": "Bytes of audit events lost",
        "tdsgate_audit_queued_events": "Audit events waiting to be written",
        "tdsgate_sessions": "Relayed sessions open now",
        "tdsgate_token_cache_hits_total": "Backend token requests served from the cache",
        "tdsgate_token_cache_refreshes_total": "Backend tokens fetched from the identity endpoint",
        "tdsgate_token_cache_failures_total": "Backend token fetches that failed",
        "tdsgate_token_fetch_duration_seconds": "Time to fetch a backend token from the identity endpoint",
        "tdsgate_backend_connect_duration_seconds": "Time to connect to a backend endpoint (TCP, and TLS in strict mode)",
        "tdsgate_probe_duration_seconds": "Time from a probe's start to its verdict, by outcome",
        "tdsgate_cluster_has_primary": "1 while the cluster has a confirmed primary",
        "tdsgate_endpoint_up": "1 while probes see the endpoint up",
        "tdsgate_endpoint_primary": "1 for the endpoint new write sessions go to",
        "tdsgate_endpoint_accepts_sessions": "1 unless an operator drained or disabled the endpoint",
        "tdsgate_endpoint_probe_latency_seconds": "Smoothed probe round trip",
    ]

    /// Brings a counter up to a total another component keeps; concurrent scrapes add each
    /// increase once.
    private func mirror(_ name: String, total: Int) {
        let increase = mirrored.withLock { exported -> Int in
            let increase = max(0, total - (exported[name] ?? 0))
            exported[name, default: 0] += increase
            return increase
        }
        counter(name).increment(by: Int64(increase))
    }

    private func descriptor(_ name: String) -> MetricNameDescriptor {
        MetricNameDescriptor(metricName: name, unitName: "", helpText: Self.help[name] ?? "")
    }

    private func counter(_ name: String, labels: [(String, String)] = []) -> Counter {
        registry.makeCounter(descriptor: descriptor(name), labels: labels)
    }

    private func gauge(_ name: String, labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(descriptor: descriptor(name), labels: labels)
    }

    private func histogram(_ name: String, labels: [(String, String)], buckets: [Duration]) -> DurationHistogram {
        registry.makeDurationHistogram(descriptor: descriptor(name), labels: labels, buckets: buckets)
    }
}

/// A backend identity's token provider with its fetches timed into
/// `tdsgate_token_fetch_duration_seconds` (the cache calls it on misses and refreshes only).
struct MeasuredTokenProvider: AccessTokenProvider {
    let provider: any AccessTokenProvider
    let identity: String
    let metrics: GatewayMetrics

    init(_ provider: any AccessTokenProvider, identity: String, metrics: GatewayMetrics) {
        self.provider = provider
        self.identity = identity
        self.metrics = metrics
    }

    var label: String { provider.label }

    func fetchToken(resource: String) async throws -> AccessToken {
        let started = ContinuousClock.now
        do {
            let token = try await provider.fetchToken(resource: resource)
            metrics.tokenFetched(identity: identity, .success, after: ContinuousClock.now - started)
            return token
        } catch {
            metrics.tokenFetched(identity: identity, .failure, after: ContinuousClock.now - started)
            throw error
        }
    }
}
