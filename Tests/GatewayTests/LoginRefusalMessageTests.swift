import Foundation
import Identity
import Logging
import NIOPosix
import TDS
import Testing

@testable import Gateway

/// Refusals tdsgate decides itself say what happened and what to do (issue 16): the
/// limit or setting behind them, and whether waiting or retrying helps.
@Suite(.timeLimit(.minutes(1)))
struct LoginRefusalMessageTests {
    let loop = MultiThreadedEventLoopGroup.singleton.next()

    func refusal(_ login: SessionLogin, _ client: Login7 = LoginHarness.clientLogin) async -> LoginRefusal? {
        do throws(LoginRefusal) {
            let result = try await login.run(client)
            result.backend.close()
            return nil
        } catch {
            return error
        }
    }

    /// The same harness with a changed configuration (nothing here reaches a backend).
    func changedContext(_ harness: LoginHarness, _ change: (inout GatewayConfig) -> Void) throws -> GatewayContext {
        var config = harness.context.config
        change(&config)
        return try GatewayContext(config: config, httpClient: harness.http, logger: Logger(label: "test"))
    }

    @Test func theThrottleSaysItsLimitAndWhenTheAddressMayTryAgain() async throws {
        let harness = try LoginHarness.make(backendPort: 1)
        let context = try changedContext(harness) { $0.throttle = ThrottleConfig(maxFailures: 2, windowSeconds: 60, blockSeconds: 300) }
        let login = SessionLogin(context: context, listener: context.config.listeners[0], clientAddress: "198.51.100.9", eventLoop: loop)
        var wrong = LoginHarness.clientLogin
        wrong.password = "wrong"
        for _ in 0..<2 {
            #expect(await refusal(login, wrong)?.message == "Login failed for user 'app'.")
        }
        let throttled = try #require(await refusal(login))
        #expect(throttled.number == 18456)
        #expect(throttled.message.hasPrefix("Login failed: too many failed logins from 198.51.100.9: 2 failed login(s) within 60 s block an address (throttle.max_failures and throttle.window_seconds"))
        let match = try #require(throttled.message.firstMatch(of: #/may try again in (\d+) s; logins before then are refused/#))
        let seconds = try #require(Int(match.1))
        #expect((1...300).contains(seconds))
        try await harness.shutdown()
    }

    @Test func blockRemainingCountsDownFromTheBlock() async throws {
        let throttle = LoginThrottle(maxFailures: 1, window: 60, blockFor: 30)
        let start = Date(timeIntervalSince1970: 1_000_000)
        let ticket = try #require(await throttle.admit("a", now: { start }))
        #expect(throttle.blockRemaining("a", now: start) == nil)
        ticket.settle(.failed, now: start)
        #expect(throttle.blockRemaining("a", now: start.addingTimeInterval(12)) == 18)
        #expect(throttle.blockRemaining("a", now: start.addingTimeInterval(30)) == nil)
        #expect(throttle.blockRemaining("b", now: start) == nil)
    }

    @Test func aListenerWithoutAClusterNamesTheKeyToSet() async throws {
        let harness = try LoginHarness.make(backendPort: 1)
        let context = try changedContext(harness) { config in
            config.listeners[0].cluster = nil
            var billing = config.clusters[0]
            billing.name = "billing"
            config.clusters.append(billing)
        }
        let login = SessionLogin(context: context, listener: context.config.listeners[0], clientAddress: "198.51.100.9", eventLoop: loop)
        let r = try #require(await refusal(login))
        #expect(r.message == "Login failed: listener 'main' has no cluster to send sessions to: the proxy's configuration defines 2 clusters "
            + "(billing, orders) and the listener does not name one. Set cluster: on listener 'main' (listeners[].cluster) to one of them. "
            + "Retrying will not help until the proxy's configuration is fixed; tell its operator.")
        try await harness.shutdown()
    }

    @Test func aMissingClusterAndAnEmptyConfigurationSayWhatToAdd() {
        #expect(LoginRefusal.noCluster(listener: "main", named: "gone", clusters: ["orders"]).message
            .hasPrefix("Login failed: listener 'main' sends sessions to cluster 'gone', which the proxy's configuration does not define (listeners[].cluster); set it to one of: orders."))
        #expect(LoginRefusal.noCluster(listener: "main", named: nil, clusters: []).message
            .contains("defines no cluster. Add one under clusters: and name it in the listener's cluster: key."))
    }

    @Test func aDatabaseTheClusterDoesNotServeListsTheOnesItDoes() async throws {
        let harness = try LoginHarness.make(backendPort: 1)
        let login = harness.login(on: loop)
        var client = LoginHarness.clientLogin
        client.database = "payroll\nINFO forged"
        let r = try #require(await refusal(login, client))
        #expect(r.number == 18456)
        #expect(r.message == "Login failed: database 'payroll\\nINFO forged' is not served by cluster 'orders', which serves: appdb. "
            + "Connect to one of those (Database / Initial Catalog in the connection string), or ask the proxy's operator "
            + "to add the database to the cluster's databases: list.")
        try await harness.shutdown()
    }

    @Test func longListsAreCut() {
        let names = (1...25).map { "db\($0)" }
        let r = LoginRefusal.databaseNotServed(database: String(repeating: "x", count: 500), cluster: "orders", served: names)
        #expect(r.message.contains("which serves: db1, db2, db3, db4, db5, db6, db7, db8, db9, db10 and 15 more."))
        #expect(r.message.contains(String(repeating: "x", count: 128) + "…'"))
        #expect(!r.message.contains(String(repeating: "x", count: 129)))
    }

    @Test func theKerberosRefusalSaysRetryingDoesNotHelpAndWhatToUseInstead() {
        let m = LoginRefusal.kerberosNeedsAnotherStep.message
        #expect(m.contains("Retrying will not help") && m.contains("SQL login or an Entra access token"))
    }
}
