@testable import Audit
import Identity
import Routing
import Testing

@testable import Gateway

@Suite struct GatewayMetricsTests {
    private func value(_ name: String, in text: String) -> String? {
        text.split(separator: "\n").first { $0.hasPrefix(name + " ") }.map { String($0.dropFirst(name.count + 1)) }
    }

    @Test func totalsKeptElsewhereAreCountersThatFollowTheirTotal() {
        let metrics = GatewayMetrics()
        var audit = AuditLog.Stats()
        audit.dropped = 2
        audit.droppedBytes = 300
        _ = metrics.render(clusters: [], tokenStats: (hits: 3, refreshes: 1, failures: 0), audit: audit)
        audit.dropped = 5
        let text = metrics.render(clusters: [], tokenStats: (hits: 7, refreshes: 1, failures: 2), audit: audit)
        #expect(text.contains("# TYPE tdsgate_token_cache_hits_total counter"))
        #expect(value("tdsgate_token_cache_hits_total", in: text) == "7")
        #expect(value("tdsgate_token_cache_refreshes_total", in: text) == "1")
        #expect(value("tdsgate_token_cache_failures_total", in: text) == "2")
        #expect(value("tdsgate_audit_dropped_events_total", in: text) == "5")
        #expect(value("tdsgate_audit_dropped_bytes_total", in: text) == "300")
        // A scrape that sees the same totals adds nothing.
        let again = metrics.render(clusters: [], tokenStats: (hits: 7, refreshes: 1, failures: 2), audit: audit)
        #expect(value("tdsgate_token_cache_hits_total", in: again) == "7")
        #expect(!again.contains("tdsgate_token_cache_hits "), "the old gauge is gone")
    }

    @Test func durationsAreHistogramsInSeconds() async throws {
        let metrics = GatewayMetrics()
        metrics.loginFinished(listener: "main", after: .milliseconds(40))
        let probe = await metrics.timeProbe(cluster: "orders", endpoint: "east") { .failure(.timeout) }
        #expect(probe == .failure(.timeout))
        struct Refused: Error {}
        await #expect(throws: Refused.self) { try await metrics.timeBackendConnect { () async throws -> Int in throw Refused() } }
        #expect(try await metrics.timeBackendConnect { 42 } == 42)
        let text = metrics.render(clusters: [], tokenStats: (0, 0, 0), audit: nil)
        #expect(text.contains("# TYPE tdsgate_login_duration_seconds histogram"))
        #expect(text.contains(#"tdsgate_login_duration_seconds_bucket{listener="main",le="0.025"} 0"#))
        #expect(text.contains(#"tdsgate_login_duration_seconds_bucket{listener="main",le="0.05"} 1"#))
        #expect(text.contains(#"tdsgate_login_duration_seconds_sum{listener="main"} 0.04"#))
        #expect(text.contains(#"tdsgate_probe_duration_seconds_count{cluster="orders",endpoint="east",outcome="failure"} 1"#))
        #expect(text.contains(#"tdsgate_backend_connect_duration_seconds_count{outcome="failure"} 1"#))
        #expect(text.contains(#"tdsgate_backend_connect_duration_seconds_count{outcome="success"} 1"#))
        #expect(!text.contains("tdsgate_audit_"), "no audit figures without an audit trail")
    }

    @Test func tokenFetchesAreTimedByIdentityAndOutcome() async throws {
        struct Provider: AccessTokenProvider {
            var label: String { "test" }
            func fetchToken(resource: String) async throws -> AccessToken {
                throw TokenError(identity: "mi", reason: "identity endpoint unreachable")
            }
        }
        let metrics = GatewayMetrics()
        let measured = MeasuredTokenProvider(Provider(), identity: "mi", metrics: metrics)
        #expect(measured.label == "test")
        await #expect(throws: TokenError.self) { _ = try await measured.fetchToken(resource: "https://database.windows.net/") }
        let text = metrics.render(clusters: [], tokenStats: (0, 0, 1), audit: nil)
        #expect(text.contains(#"tdsgate_token_fetch_duration_seconds_count{identity="mi",outcome="failure"} 1"#))
    }
}
