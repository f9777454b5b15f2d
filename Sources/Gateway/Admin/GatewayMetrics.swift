import Identity
import Prometheus

/// What tdsgate counts, in Prometheus form. Session and byte counters are updated as
/// things happen; endpoint and token-cache figures are refreshed when /metrics is read.
final class GatewayMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    func login(listener: String, outcome: String) {
        counter("tdsgate_logins_total", labels: [("listener", listener), ("outcome", outcome)]).increment()
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

    /// Text exposition, after refreshing the figures read at scrape time.
    func render(clusters: [ClusterSnapshot], tokenStats: (hits: Int, refreshes: Int, failures: Int)) -> String {
        gauge("tdsgate_token_cache_hits").set(to: Double(tokenStats.hits))
        gauge("tdsgate_token_cache_refreshes").set(to: Double(tokenStats.refreshes))
        gauge("tdsgate_token_cache_failures").set(to: Double(tokenStats.failures))
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

    private static let help: [String: String] = [
        "tdsgate_logins_total": "Client logins by listener and outcome",
        "tdsgate_relayed_bytes_total": "Bytes relayed after login, by direction",
        "tdsgate_failovers_total": "Primary changes from one endpoint to another",
        "tdsgate_connections_refused_total": "Client connections refused because their listener was at a connection limit",
        "tdsgate_dump_dropped_records_total": "Packet-dump records dropped because the dump queue was full",
        "tdsgate_sessions": "Relayed sessions open now",
        "tdsgate_token_cache_hits": "Backend token requests served from the cache",
        "tdsgate_token_cache_refreshes": "Backend tokens fetched from the identity endpoint",
        "tdsgate_token_cache_failures": "Backend token fetches that failed",
        "tdsgate_cluster_has_primary": "1 while the cluster has a confirmed primary",
        "tdsgate_endpoint_up": "1 while probes see the endpoint up",
        "tdsgate_endpoint_primary": "1 for the endpoint new write sessions go to",
        "tdsgate_endpoint_accepts_sessions": "1 unless an operator drained or disabled the endpoint",
        "tdsgate_endpoint_probe_latency_seconds": "Smoothed probe round trip",
    ]

    private func counter(_ name: String, labels: [(String, String)] = []) -> Counter {
        registry.makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: Self.help[name] ?? ""), labels: labels)
    }

    private func gauge(_ name: String, labels: [(String, String)] = []) -> Gauge {
        registry.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: Self.help[name] ?? ""), labels: labels)
    }
}
