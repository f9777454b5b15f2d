import Foundation
import Testing

@testable import Audit

/// One of every event, every optional field set.
let fullyPopulatedEvents: [AuditEvent] = [
    .sessionStart(
        session: "s-1", clientAddress: "10.0.0.7", clientPort: 50123, listener: "main", tls: .strict,
        principal: "alice@contoso.com", authMethod: .entraToken, requestedDatabase: "sales", intent: .readOnly,
        appName: "SSMS", hostName: "WS-1", clientInterface: "Microsoft SqlClient Data Provider", clientVersion: "5.2.0"),
    .policyDecision(
        session: "s-1", decision: .denied, rule: "default deny", principal: "alice", cluster: "prod",
        database: "sales", writeAllowed: false, backendIdentity: "mi-reader", reason: "no rule matched"),
    .backendChosen(
        session: "s-1", cluster: "prod", endpoint: "sql-b:1433", role: .geoSecondary, backendIdentity: "mi-reader",
        redirectHops: 1, retries: 2, routeReason: "read_only intent"),
    .loginOutcome(session: "s-1", outcome: .failed, errorNumber: 18456, errorMessage: "Login failed", durationMs: 42),
    .sqlBatch(session: "s-1", text: "SELECT 1"),
    .rpc(session: "s-1", procedure: "sp_executesql", parameters: [.init(name: "@p1", type: "int", value: "7")]),
    .sessionEnd(
        session: "s-1", durationMs: 1000, bytesClientToServer: 10, bytesServerToClient: 20, endReason: .error,
        error: "backend reset"),
    .failoverDetected(cluster: "prod", oldPrimary: "sql-a", newPrimary: "sql-b"),
    .endpointState(cluster: "prod", endpoint: "sql-a", state: .down, by: .probe, reason: "timeout"),
    .drillStart(cluster: "prod", mode: "planned", drillID: "d-1", target: "sql-b"),
    .drillEnd(
        cluster: "prod", mode: "planned", drillID: "d-1", outcome: .passed, durationMs: 5000, oldPrimary: "sql-a",
        newPrimary: "sql-b", sessionsAffected: 3, failedLogins: 0, summary: "ok"),
    .auditDropped(droppedEvents: 5, droppedBytes: 500, reason: .queueFull),
]

/// Keys of a JSON object in the order they appear in the text (top level only).
func topLevelKeys(_ json: String) -> [String] {
    var keys: [String] = []
    var depth = 0
    var inString = false
    var escaped = false
    var current = ""
    var expectKey = false
    for ch in json {
        if inString {
            if escaped { escaped = false; current.append(ch); continue }
            if ch == "\\" { escaped = true; current.append(ch); continue }
            if ch == "\"" {
                inString = false
                if expectKey && depth == 1 { keys.append(current) }
                expectKey = false
                continue
            }
            current.append(ch)
            continue
        }
        switch ch {
        case "\"": inString = true; current = ""
        case "{", "[": depth += 1; if ch == "{" && depth == 1 { expectKey = true }
        case "}", "]": depth -= 1
        case ",": if depth == 1 { expectKey = true }
        case ":": expectKey = false
        default: break
        }
    }
    return keys
}

@Suite struct AuditEventTests {
    @Test func everyEventRoundTripsWithFieldsInDocumentedOrder() throws {
        #expect(Set(fullyPopulatedEvents.map(\.name)) == Set(AuditEvent.schema.keys))
        for event in fullyPopulatedEvents {
            let line = event.jsonLine()
            #expect(line.last == 10)
            #expect(line.dropLast().contains(10) == false)
            let object = try #require(try JSONSerialization.jsonObject(with: Data(line)) as? [String: Any])
            let envelope = event.session == nil ? ["ts", "event"] : ["ts", "event", "session"]
            let expected = envelope + AuditEvent.schema[event.name]!
            #expect(topLevelKeys(event.json()) == expected, "\(event.name)")
            #expect(Set(object.keys) == Set(expected))
            #expect(object["event"] as? String == event.name)
        }
    }

    @Test func valuesAreTyped() throws {
        let start = fullyPopulatedEvents[0]
        let object = try #require(try JSONSerialization.jsonObject(with: Data(start.jsonBytes())) as? [String: Any])
        #expect(object["client_port"] as? Int == 50123)
        #expect(object["tls"] as? String == "strict")
        #expect(object["auth_method"] as? String == "entra_token")
        #expect(object["intent"] as? String == "read_only")
        let rpc = try #require(try JSONSerialization.jsonObject(with: Data(fullyPopulatedEvents[5].jsonBytes())) as? [String: Any])
        let parameters = try #require(rpc["parameters"] as? [[String: Any]])
        #expect(parameters.count == 1)
        #expect(parameters[0]["name"] as? String == "@p1")
        #expect(parameters[0]["value"] as? String == "7")
        #expect(topLevelKeys(#"{"name":"@p1","type":"int","value":"7"}"#) == AuditEvent.rpcParameterFields)
        #expect(fullyPopulatedEvents[5].json().contains(#"[{"name":"@p1","type":"int","value":"7"}]"#))
    }

    @Test func nilFieldsAreOmitted() {
        let event = AuditEvent.sessionStart(session: "s-2", clientAddress: "::1", clientPort: nil, listener: nil, tls: .none)
        #expect(topLevelKeys(event.json()) == ["ts", "event", "session", "client_address", "tls"])
        let cluster = AuditEvent.failoverDetected(cluster: "c", oldPrimary: nil, newPrimary: "b")
        #expect(topLevelKeys(cluster.json()) == ["ts", "event", "cluster", "new_primary"])
    }

    /// The UTF-8 fast path must escape exactly what the scalar path does, U+2028/U+2029 and
    /// their near neighbours (U+2027, U+202A) included.
    @Test func utf8FastPathMatchesScalarEscaping() throws {
        for text in ["\u{2027}\u{2028}\u{2029}\u{202A}", "a\u{2028}", "\u{2029}", "é€😀\u{7F}\u{80}\u{FFFF}", "tab\tend"] {
            let event = AuditEvent.sqlBatch(session: "1", text: text, time: Date(timeIntervalSince1970: 0))
            let json = event.json()
            let decoded = try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any]
            #expect(decoded?["text"] as? String == text)
            #expect(!json.contains("\u{2028}") && !json.contains("\u{2029}"))
        }
        #expect(RFC3339.string(from: Date(timeIntervalSince1970: 1_700_000_000.123)) == "2023-11-14T22:13:20.123Z")
        #expect(RFC3339.string(from: Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
    }

    @Test func escapingOfQuotesControlCharactersAndNonBMP() throws {
        let nasty = "say \"hi\"\\ \n\r\t\u{08}\u{0C}\u{01}\u{1F}\u{7F} é 😀 \u{2028}"
        let event = AuditEvent.sqlBatch(session: "s", text: nasty, time: Date(timeIntervalSince1970: 0))
        let json = event.json()
        #expect(json.contains(#""text":"say \"hi\"\\ \n\r\t\b\f\u0001\u001f\u007f é 😀 \u2028""#))
        let ascii = event.json(asciiOnly: true)
        #expect(ascii.contains(#"\u00e9 \ud83d\ude00 \u2028"#))
        #expect(ascii.unicodeScalars.allSatisfy { $0.isASCII })
        for variant in [json, ascii] {
            let object = try #require(try JSONSerialization.jsonObject(with: Data(variant.utf8)) as? [String: Any])
            #expect(object["text"] as? String == nasty)
            #expect(object["text_length"] as? Int == nasty.count)
        }
    }

    @Test func longStatementsAreTruncated() {
        let event = AuditEvent.sqlBatch(session: "s", text: String(repeating: "a", count: 10), maxLength: 4)
        #expect(event["text"] == .string("aaaa"))
        #expect(event["text_length"] == .int(10))
        #expect(event["truncated"] == .bool(true))
    }

    @Test func timestampsAreRFC3339MillisecondsUTC() {
        #expect(RFC3339.string(from: Date(timeIntervalSince1970: 0)) == "1970-01-01T00:00:00.000Z")
        #expect(RFC3339.string(from: Date(timeIntervalSince1970: 1_700_000_000.123)) == "2023-11-14T22:13:20.123Z")
        #expect(RFC3339.string(from: Date(timeIntervalSince1970: 1_709_251_199.999)) == "2024-02-29T23:59:59.999Z")
        #expect(RFC3339.string(from: Date(timeIntervalSince1970: -1)) == "1969-12-31T23:59:59.000Z")
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        for seconds in stride(from: 0.0, to: 4_000_000_000, by: 123_456_789.25) {
            let date = Date(timeIntervalSince1970: seconds)
            #expect(RFC3339.string(from: date) == formatter.string(from: date))
        }
        let event = AuditEvent.drillStart(cluster: "c", mode: "m", time: Date(timeIntervalSince1970: 0))
        #expect(event.json().hasPrefix(#"{"ts":"1970-01-01T00:00:00.000Z","event":"drill_start","cluster":"c""#))
    }

    @Test func noFieldCanCarryASecret() {
        var names = Set(AuditEvent.envelope + AuditEvent.rpcParameterFields)
        for fields in AuditEvent.schema.values { names.formUnion(fields) }
        for event in fullyPopulatedEvents {
            names.formUnion(topLevelKeys(event.json()))
        }
        #expect(names.count > 40)
        for name in names {
            for forbidden in ["password", "passwd", "pwd", "token", "secret", "credential", "key"] {
                #expect(!name.lowercased().contains(forbidden), "field \(name) looks like it could hold a secret")
            }
            #expect(name == name.lowercased() && !name.contains(" ") && !name.contains("-"), "\(name) is not snake_case")
        }
    }

    @Test func severityMarksDenialsAndFailures() {
        #expect(fullyPopulatedEvents[1].severity == .notice)  // denied
        #expect(AuditEvent.policyDecision(session: nil, decision: .allowed, rule: "r1").severity == .info)
        #expect(fullyPopulatedEvents[3].severity == .notice)  // login failed
        #expect(AuditEvent.loginOutcome(session: "s", outcome: .success).severity == .info)
        #expect(fullyPopulatedEvents[0].severity == .info)
    }
}
