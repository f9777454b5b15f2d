import Foundation
import Testing

@testable import Identity

@Suite struct PolicyTests {
    let policy = Policy(rules: [
        PolicyRule(name: "app-rw", match: [.login("app")], clusters: ["orders"], databases: ["appdb"], write: true, backendIdentity: "proxy-mi"),
        PolicyRule(name: "app-ro", match: [.login("app")], clusters: ["*"], databases: ["reports"], write: false, backendIdentity: "proxy-mi"),
        PolicyRule(
            name: "admins",
            match: [.group("sql-admins-group-id"), .upn("*@contoso.example")],
            clusters: ["*"],
            databases: ["*"],
            write: true,
            backendIdentity: "admin-mi",
            tagAppName: true
        ),
        PolicyRule(name: "writers", match: [.appRole("SQL.Writer")], clusters: ["orders"], databases: ["*"], write: true, backendIdentity: "ci-mi"),
        PolicyRule(name: "kerberos", match: [.realm("CORP.EXAMPLE")], clusters: ["legacy"], databases: ["*"], write: false, backendIdentity: "legacy-mi"),
        PolicyRule(name: "by-oid", match: [.objectID("OID-1")], clusters: ["*"], databases: ["oiddb"], backendIdentity: "x"),
        PolicyRule(name: "by-app", match: [.appID("app-id-1")], clusters: ["*"], databases: ["appiddb"], backendIdentity: "x"),
        PolicyRule(name: "nobody", match: [], clusters: ["*"], databases: ["*"], write: true, backendIdentity: "x"),
    ])

    let app = Principal(method: .sqlLogin, name: "app")

    @Test func firstMatchingRuleThatAllowsTheTargetWins() {
        guard case .allowed(let rule, let forceReadOnly) = policy.decide(principal: app, cluster: "orders", database: "AppDB", readOnlyIntent: false) else {
            Issue.record("denied")
            return
        }
        #expect(rule.name == "app-rw")
        #expect(!forceReadOnly)
        // The first rule matches the principal but not the database: the second one decides.
        guard case .allowed(let second, _) = policy.decide(principal: app, cluster: "orders", database: "reports", readOnlyIntent: true) else {
            Issue.record("denied")
            return
        }
        #expect(second.name == "app-ro")
    }

    @Test func readOnlyRulesForceReadOnlyRouting() {
        #expect(policy.decide(principal: app, cluster: "east", database: "reports", readOnlyIntent: false)
            == .allowed(rule: policy.rules[1], forceReadOnly: true))
        #expect(policy.decide(principal: app, cluster: "east", database: "reports", readOnlyIntent: true)
            == .allowed(rule: policy.rules[1], forceReadOnly: false))
    }

    @Test func denialsSayWhatWasRefused() {
        #expect(policy.decide(principal: app, cluster: "orders", database: "hr", readOnlyIntent: false)
            == .denied(reason: "no policy rule lets 'app' reach database 'hr' on cluster 'orders'"))
        #expect(policy.decide(principal: app, cluster: "orders", database: "", readOnlyIntent: false)
            == .denied(reason: "no policy rule lets 'app' reach the default database on cluster 'orders'"))
        let stranger = Principal(method: .sqlLogin, name: "mallory")
        #expect(policy.decide(principal: stranger, cluster: "orders", database: "appdb", readOnlyIntent: false)
            == .denied(reason: "no policy rule matches 'mallory' (sql_login)"))
        // A login rule does not match an Entra principal of the same name.
        let entraApp = Principal(method: .entraToken, name: "app")
        #expect(!policy.decide(principal: entraApp, cluster: "orders", database: "appdb", readOnlyIntent: false).isAllowed)
    }

    @Test func allConditionsMustHold() {
        let alice = Principal(method: .entraToken, name: "alice@contoso.example", objectID: "o", upn: "alice@contoso.example", groups: ["sql-admins-group-id"])
        guard case .allowed(let rule, let forceReadOnly) = policy.decide(principal: alice, cluster: "any", database: "hr", readOnlyIntent: false) else {
            Issue.record("denied")
            return
        }
        #expect(rule.name == "admins" && rule.tagAppName && !forceReadOnly)
        var outsider = alice
        outsider.upn = "alice@fabrikam.example"
        #expect(!policy.decide(principal: outsider, cluster: "any", database: "hr", readOnlyIntent: false).isAllowed)
        var notInGroup = alice
        notInGroup.groups = []
        #expect(!policy.decide(principal: notInGroup, cluster: "any", database: "hr", readOnlyIntent: false).isAllowed)
    }

    @Test func otherMatchKinds() {
        let ci = Principal(method: .entraToken, name: "ci", appID: "app-id-1", roles: ["SQL.Writer"])
        #expect(policy.decide(principal: ci, cluster: "orders", database: "x", readOnlyIntent: false).isAllowed)
        #expect(policy.decide(principal: ci, cluster: "any", database: "appiddb", readOnlyIntent: false).isAllowed)
        #expect(!policy.decide(principal: ci, cluster: "other", database: "x", readOnlyIntent: false).isAllowed)
        let byOID = Principal(method: .entraToken, name: "x", objectID: "oid-1")
        #expect(policy.decide(principal: byOID, cluster: "c", database: "oiddb", readOnlyIntent: true).isAllowed)
        let kerberos = Principal(method: .kerberos, name: "bob@CORP.EXAMPLE")
        #expect(policy.decide(principal: kerberos, cluster: "legacy", database: "x", readOnlyIntent: false)
            == .allowed(rule: policy.rules[4], forceReadOnly: true))
        let otherRealm = Principal(method: .kerberos, name: "bob@EVIL.EXAMPLE")
        #expect(!policy.decide(principal: otherRealm, cluster: "legacy", database: "x", readOnlyIntent: false).isAllowed)
        // `any` matches everyone; an empty match list nobody.
        #expect(PolicyMatch.any.holds(for: Principal(name: "whoever")))
        #expect(!PolicyRule(name: "empty", match: []).matches(Principal(name: "whoever")))
    }
}

@Suite struct LoginThrottleTests {
    @Test func blocksAfterTooManyFailuresInTheWindow() {
        let throttle = LoginThrottle(maxFailures: 3, window: 60, blockFor: 30)
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        #expect(!throttle.isBlocked("10.0.0.1", now: t0))
        throttle.recordFailure("10.0.0.1", now: t0)
        throttle.recordFailure("10.0.0.1", now: t0 + 1)
        #expect(!throttle.isBlocked("10.0.0.1", now: t0 + 2))
        throttle.recordFailure("10.0.0.1", now: t0 + 2)
        #expect(throttle.isBlocked("10.0.0.1", now: t0 + 3))
        #expect(!throttle.isBlocked("10.0.0.2", now: t0 + 3))
        #expect(!throttle.isBlocked("10.0.0.1", now: t0 + 33))
    }

    @Test func oldFailuresAgeOut() {
        let throttle = LoginThrottle(maxFailures: 3, window: 10, blockFor: 30)
        let t0 = Date(timeIntervalSince1970: 1_000_000)
        throttle.recordFailure("a", now: t0)
        throttle.recordFailure("a", now: t0 + 1)
        throttle.recordFailure("a", now: t0 + 20)
        #expect(!throttle.isBlocked("a", now: t0 + 20))
    }

    @Test func successClears() {
        let throttle = LoginThrottle(maxFailures: 2, window: 60, blockFor: 30)
        let t0 = Date()
        throttle.recordFailure("a", now: t0)
        throttle.recordSuccess("a")
        throttle.recordFailure("a", now: t0)
        #expect(!throttle.isBlocked("a", now: t0))
    }

    @Test func memoryIsBounded() {
        let throttle = LoginThrottle(maxFailures: 5, window: 60, blockFor: 60, capacity: 100)
        let t0 = Date(timeIntervalSince1970: 2_000_000)
        // A blocked address seen early...
        for i in 0..<5 { throttle.recordFailure("attacker", now: t0 + Double(i) * 0.001) }
        #expect(throttle.isBlocked("attacker", now: t0 + 1))
        for i in 0..<1_000 {
            throttle.recordFailure("10.1.\(i / 256).\(i % 256)", now: t0 + 1 + Double(i) * 0.001)
            #expect(throttle.trackedCount <= 100)
        }
        // Stale entries go first: one seen long ago is dropped when room is needed.
        let later = t0 + 600
        throttle.recordFailure("late", now: later)
        #expect(throttle.trackedCount <= 100)
    }
}
