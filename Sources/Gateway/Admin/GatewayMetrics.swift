import Identity
import Prometheus

/// What tdsgate counts, in Prometheus form. Session and byte counters are updated as
/// things happen; endpoint and token-cache figures are refreshed when /metrics is read.
final class GatewayMetrics: Sendable {
    let registry = PrometheusCollectorRegistry()

    func login(listener: String, outcome: String) {
        registry.makeCounter(name: "tdsgate_logins_total", labels: [("listener", listener), ("outcome", outcome)]).increment()
    }

    func session(cluster: String, endpoint: String, intent: String, delta: Double) {
        registry.makeGauge(name: "tdsgate_sessions", labels: [("cluster", cluster), ("endpoint", endpoint), ("intent", intent)])
            .increment(by: delta)
    }

    func relayed(direction: String, bytes: Int) {
        registry.makeCounter(name: "tdsgate_relayed_bytes_total", labels: [("direction", direction)]).increment(by: Int64(bytes))
    }

    func failover(cluster: String) {
        registry.makeCounter(name: "tdsgate_failovers_total", labels: [("cluster", cluster)]).increment()
    }

    /// Text exposition, after refreshing the figures read at scrape time.
    func render(clusters: [ClusterSnapshot], tokenStats: (hits: Int, refreshes: Int, failures: Int)) -> String {
        registry.makeGauge(name: "tdsgate_token_cache_hits").set(to: Double(tokenStats.hits))
        registry.makeGauge(name: "tdsgate_token_cache_refreshes").set(to: Double(tokenStats.refreshes))
        registry.makeGauge(name: "tdsgate_token_cache_failures").set(to: Double(tokenStats.failures))
        for c in clusters {
            registry.makeGauge(name: "tdsgate_cluster_has_primary", labels: [("cluster", c.name)]).set(to: c.primary == nil ? 0 : 1)
            for e in c.endpoints {
                let labels = [("cluster", c.name), ("endpoint", e.name)]
                registry.makeGauge(name: "tdsgate_endpoint_up", labels: labels).set(to: e.up ? 1 : 0)
                registry.makeGauge(name: "tdsgate_endpoint_primary", labels: labels).set(to: e.primary ? 1 : 0)
                registry.makeGauge(name: "tdsgate_endpoint_accepts_sessions", labels: labels).set(to: e.admin == "enabled" ? 1 : 0)
                if let ms = e.probeLatencyMs {
                    registry.makeGauge(name: "tdsgate_endpoint_probe_latency_seconds", labels: labels).set(to: ms / 1000)
                }
            }
        }
        return registry.emitToString()
    }
}
