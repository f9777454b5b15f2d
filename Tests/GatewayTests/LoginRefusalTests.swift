@testable import Routing
import Testing

@testable import Gateway

/// The number a client gets tells it what to do: Azure SQL's transient numbers for what
/// passes by itself, 18456 for what needs a change (README, "Errors a client may retry").
@Suite struct LoginRefusalTests {
    let cluster = ClusterConfig(name: "orders", endpoints: [EndpointConfig(name: "east", host: "east.example")])

    func refusal(_ giveUp: LoginGiveUp) -> LoginRefusal {
        LoginRefusal(giveUp, cluster: cluster, database: "appdb", backendIdentity: "mi")
    }

    func stop(_ failure: LoginFailure, _ kind: LoginRetryStop.Kind = .attemptsExhausted, attempts: Int = 5) -> LoginGiveUp {
        .failed(LoginRetryStop(kind: kind, last: .init(endpoint: "east", failure: failure, at: .now), attempts: attempts,
                               errorClass: failure.errorClass(onReplica: false)))
    }

    @Test func noPrimaryIsNotCurrentlyAvailable() {
        let r = refusal(.unroutable(RouteRefusal(.noPrimary, "cluster 'orders' has no primary: last primary 'east' was disabled 3 s ago; waited 4 s")))
        #expect(r.number == 40613 && r.severity == 17)
        #expect(r.message == "Database 'appdb' on cluster 'orders' is not currently available: cluster 'orders' has no primary: last primary 'east' was disabled 3 s ago; waited 4 s. Please retry the connection later.")
    }

    @Test func aDatabaseTheClusterDoesNotServeIsNotRetried() {
        let r = refusal(.unroutable(RouteRefusal(.databaseNotServed, "cluster 'orders' does not serve database 'x'")))
        #expect(r.number == 18456 && r.message == "Login failed: cluster 'orders' does not serve database 'x'.")
    }

    @Test func anUnreachableEndpointIsNotCurrentlyAvailable() {
        let r = refusal(stop(.connect("cannot connect to east.example:1433: refused"), .deadline))
        #expect(r.number == 40613)
        #expect(r.message.contains("endpoint 'east' is unreachable (cannot connect to east.example:1433: refused) (5 attempts within login_timeout_ms 15000 ms)"))
        #expect(refusal(stop(.timedOut)).message.contains("endpoint 'east' did not complete the login in time (5 attempts)"))
        #expect(refusal(stop(.server(number: 40197, message: "reconfiguring"))).number == 40613)
    }

    @Test func busyAndResourceLimitsKeepTheirMeaning() {
        let busy = refusal(stop(.server(number: 40501, message: "The service is currently busy.")))
        #expect(busy.number == 40501 && busy.message.hasPrefix("The service is currently busy: cluster 'orders': endpoint 'east' answered error 40501"))
        let limit = refusal(stop(.server(number: 10929, message: "Resource ID : 1.")))
        #expect(limit.number == 10928 && limit.message.hasPrefix("Resource limit reached on cluster 'orders': endpoint 'east' answered error 10929"))
        #expect(refusal(stop(.server(number: 49918, message: ""))).number == 40501)
    }

    @Test func aPermanentBackendErrorIsPassedOnWithItsNumber() {
        let r = refusal(stop(.server(number: 18456, message: "Login failed for user '<token-identified principal>'."), .notTransient, attempts: 1))
        #expect(r.number == 18456)
        #expect(r.message == "Azure SQL (cluster 'orders', endpoint 'east') refused tdsgate's login with backend identity 'mi': Login failed for user '<token-identified principal>'.")
        #expect(refusal(stop(.server(number: 40615, message: "firewall"), .notTransient, attempts: 1)).number == 40615)
    }

    @Test func misconfiguredRedirectsAreNotRetried() {
        #expect(refusal(.tooManyRedirects(endpoint: "east", limit: 10)).number == 18456)
        let pinned = refusal(.redirectNotAllowed(endpoint: "east", to: LoginRedirect(host: "worker", port: 11_000)))
        #expect(pinned.number == 18456 && pinned.message.contains("pinned to the Proxy connection policy") && pinned.message.contains("redirected tdsgate to worker:11000"))
    }

    @Test func theDeadlineIsNotCurrentlyAvailableWithTheLastProblem() {
        let r = refusal(.deadlinePassed(last: .init(endpoint: "east", failure: .timedOut, at: .now)))
        #expect(r.number == 40613)
        #expect(r.message.contains("tdsgate could not complete the login within login_timeout_ms (15000 ms); last problem: login timed out from endpoint 'east'"))
    }
}
