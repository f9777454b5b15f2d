import Foundation

/// One audit record. Encoded as one JSON object per line with a fixed field order:
/// `ts`, `event`, `session` (when there is one), then the event's own fields in the order
/// listed in `AuditEvent.schema`; fields whose value is nil are left out.
///
/// Events are made only through the typed constructors below; there is deliberately no
/// field that could carry a password, token or other secret.
public struct AuditEvent: Sendable, Equatable {
    public struct Field: Sendable, Equatable {
        public let name: String
        public let value: Value
    }

    public enum Value: Sendable, Equatable {
        case string(String)
        case int(Int)
        case bool(Bool)
        /// A list of objects (RPC parameters), each with its fields in order.
        case objects([[Field]])
    }

    public enum Severity: Int, Sendable {
        /// syslog severity 5: denials, failures, failovers, endpoints down, dropped audit.
        case notice = 5
        /// syslog severity 6: everything else.
        case info = 6
    }

    /// Stable event name (`event` in JSON, MSGID in syslog).
    public let name: String
    public let time: Date
    public let session: String?
    public let fields: [Field]
    public let severity: Severity

    init(name: String, time: Date, session: String?, severity: Severity = .info, fields: [Field]) {
        self.name = name
        self.time = time
        self.session = session
        self.severity = severity
        self.fields = fields
    }

    /// The value of an event field (not `ts`/`event`/`session`), if present.
    public subscript(field: String) -> Value? {
        fields.first { $0.name == field }?.value
    }
}

// MARK: - Value vocabularies

extension AuditEvent {
    public enum TLSMode: String, Sendable { case none, loginOnly = "login_only", full, strict }
    public enum AuthMethod: String, Sendable { case sqlLogin = "sql_login", entraToken = "entra_token", kerberos }
    public enum Intent: String, Sendable { case readOnly = "read_only", readWrite = "read_write" }
    public enum Decision: String, Sendable { case allowed, denied }
    public enum BackendRole: String, Sendable { case primary, secondary, geoSecondary = "geo_secondary" }
    public enum LoginOutcome: String, Sendable { case success, refused, failed }
    public enum EndReason: String, Sendable {
        case clientClosed = "client_closed", backendClosed = "backend_closed", demoted, drained, shutdown, error
    }
    public enum EndpointState: String, Sendable { case drained, enabled, disabled, down, up }
    public enum ChangedBy: String, Sendable { case admin, probe }
    public enum DrillOutcome: String, Sendable { case passed, failed, aborted }
    public enum DropReason: String, Sendable {
        case queueFull = "queue_full", disconnected, writeFailed = "write_failed"
    }

    public struct RPCParameter: Sendable, Equatable {
        public var name: String
        public var type: String
        /// Already masked by the caller when masking is on; nil leaves `value` out.
        public var value: String?

        public init(name: String, type: String, value: String?) {
            self.name = name
            self.type = type
            self.value = value
        }
    }
}

// MARK: - Schema (the documented, stable field order per event)

extension AuditEvent {
    /// Envelope fields, always first and in this order (`session` only when known).
    public static let envelope = ["ts", "event", "session"]

    /// Event name -> its fields in output order. Changing a name here is a breaking change
    /// for everyone parsing the trail.
    public static let schema: [String: [String]] = [
        "session_start": [
            "client_address", "client_port", "listener", "tls", "principal", "auth_method",
            "requested_database", "intent", "app_name", "host_name", "client_interface", "client_version",
        ],
        "policy_decision": [
            "decision", "rule", "principal", "cluster", "database", "write_allowed", "backend_identity", "reason",
        ],
        "backend_chosen": [
            "cluster", "endpoint", "role", "backend_identity", "redirect_hops", "retries", "route_reason",
        ],
        "login_outcome": ["outcome", "error_number", "error_message", "duration_ms"],
        "sql_batch": ["text", "text_length", "truncated"],
        "rpc": ["procedure", "parameters", "parameter_count"],
        "session_end": [
            "duration_ms", "bytes_client_to_server", "bytes_server_to_client", "end_reason", "error",
        ],
        "failover_detected": ["cluster", "old_primary", "new_primary"],
        "endpoint_state": ["cluster", "endpoint", "state", "by", "reason"],
        "drill_start": ["cluster", "mode", "drill_id", "target"],
        "drill_end": [
            "cluster", "mode", "drill_id", "outcome", "duration_ms", "old_primary", "new_primary",
            "sessions_affected", "failed_logins", "summary",
        ],
        "audit_dropped": ["dropped_events", "dropped_bytes", "reason"],
    ]

    /// Field names inside each `rpc` `parameters` element, in order.
    public static let rpcParameterFields = ["name", "type", "value"]
}

// MARK: - Typed constructors

/// Collects fields in order, leaving nils out.
private struct Fields {
    var list: [AuditEvent.Field] = []
    mutating func add(_ name: String, _ value: String?) { if let value { list.append(.init(name: name, value: .string(value))) } }
    mutating func add(_ name: String, _ value: Int?) { if let value { list.append(.init(name: name, value: .int(value))) } }
    mutating func add(_ name: String, _ value: Bool?) { if let value { list.append(.init(name: name, value: .bool(value))) } }
    mutating func add<R: RawRepresentable<String>>(_ name: String, _ value: R?) { add(name, value?.rawValue) }
}

extension AuditEvent {
    public static func sessionStart(
        session: String,
        clientAddress: String, clientPort: Int?, listener: String?, tls: TLSMode,
        principal: String? = nil, authMethod: AuthMethod? = nil, requestedDatabase: String? = nil,
        intent: Intent? = nil, appName: String? = nil, hostName: String? = nil,
        clientInterface: String? = nil, clientVersion: String? = nil,
        time: Date = Date()
    ) -> AuditEvent {
        var f = Fields()
        f.add("client_address", clientAddress)
        f.add("client_port", clientPort)
        f.add("listener", listener)
        f.add("tls", tls)
        f.add("principal", principal)
        f.add("auth_method", authMethod)
        f.add("requested_database", requestedDatabase)
        f.add("intent", intent)
        f.add("app_name", appName)
        f.add("host_name", hostName)
        f.add("client_interface", clientInterface)
        f.add("client_version", clientVersion)
        return AuditEvent(name: "session_start", time: time, session: session, fields: f.list)
    }

    /// `rule`: the deciding rule's name (or index), or `"default deny"`.
    public static func policyDecision(
        session: String?, decision: Decision, rule: String,
        principal: String? = nil, cluster: String? = nil, database: String? = nil,
        writeAllowed: Bool? = nil, backendIdentity: String? = nil, reason: String? = nil,
        time: Date = Date()
    ) -> AuditEvent {
        var f = Fields()
        f.add("decision", decision)
        f.add("rule", rule)
        f.add("principal", principal)
        f.add("cluster", cluster)
        f.add("database", database)
        f.add("write_allowed", writeAllowed)
        f.add("backend_identity", backendIdentity)
        f.add("reason", reason)
        return AuditEvent(
            name: "policy_decision", time: time, session: session,
            severity: decision == .denied ? .notice : .info, fields: f.list)
    }

    public static func backendChosen(
        session: String, cluster: String, endpoint: String, role: BackendRole?,
        backendIdentity: String? = nil, redirectHops: Int? = nil, retries: Int? = nil,
        routeReason: String? = nil, time: Date = Date()
    ) -> AuditEvent {
        var f = Fields()
        f.add("cluster", cluster)
        f.add("endpoint", endpoint)
        f.add("role", role)
        f.add("backend_identity", backendIdentity)
        f.add("redirect_hops", redirectHops)
        f.add("retries", retries)
        f.add("route_reason", routeReason)
        return AuditEvent(name: "backend_chosen", time: time, session: session, fields: f.list)
    }

    public static func loginOutcome(
        session: String, outcome: LoginOutcome, errorNumber: Int? = nil, errorMessage: String? = nil,
        durationMs: Int? = nil, time: Date = Date()
    ) -> AuditEvent {
        var f = Fields()
        f.add("outcome", outcome)
        f.add("error_number", errorNumber)
        f.add("error_message", errorMessage)
        f.add("duration_ms", durationMs)
        return AuditEvent(
            name: "login_outcome", time: time, session: session,
            severity: outcome == .success ? .info : .notice, fields: f.list)
    }

    /// `text` must already be masked when masking is on. Text longer than `maxLength`
    /// characters is cut; `text_length` keeps the original length (characters) and
    /// `truncated` is set.
    public static func sqlBatch(session: String, text: String, maxLength: Int = 4096, time: Date = Date()) -> AuditEvent {
        let length = text.count
        let truncated = length > maxLength
        var f = Fields()
        f.add("text", truncated ? String(text.prefix(maxLength)) : text)
        f.add("text_length", length)
        f.add("truncated", truncated)
        return AuditEvent(name: "sql_batch", time: time, session: session, fields: f.list)
    }

    /// Parameter values must already be masked when masking is on. At most
    /// `maxParameters` are listed; `parameter_count` is the real number.
    public static func rpc(
        session: String, procedure: String, parameters: [RPCParameter], maxParameters: Int = 64,
        time: Date = Date()
    ) -> AuditEvent {
        var f = Fields()
        f.add("procedure", procedure)
        let listed = parameters.prefix(maxParameters).map { parameter -> [Field] in
            var p = Fields()
            p.add("name", parameter.name)
            p.add("type", parameter.type)
            p.add("value", parameter.value)
            return p.list
        }
        f.list.append(Field(name: "parameters", value: .objects(listed)))
        f.add("parameter_count", parameters.count)
        return AuditEvent(name: "rpc", time: time, session: session, fields: f.list)
    }

    public static func sessionEnd(
        session: String, durationMs: Int, bytesClientToServer: Int, bytesServerToClient: Int,
        endReason: EndReason, error: String? = nil, time: Date = Date()
    ) -> AuditEvent {
        var f = Fields()
        f.add("duration_ms", durationMs)
        f.add("bytes_client_to_server", bytesClientToServer)
        f.add("bytes_server_to_client", bytesServerToClient)
        f.add("end_reason", endReason)
        f.add("error", error)
        return AuditEvent(
            name: "session_end", time: time, session: session,
            severity: endReason == .error ? .notice : .info, fields: f.list)
    }

    public static func failoverDetected(
        cluster: String, oldPrimary: String?, newPrimary: String?, time: Date = Date()
    ) -> AuditEvent {
        var f = Fields()
        f.add("cluster", cluster)
        f.add("old_primary", oldPrimary)
        f.add("new_primary", newPrimary)
        return AuditEvent(name: "failover_detected", time: time, session: nil, severity: .notice, fields: f.list)
    }

    public static func endpointState(
        cluster: String, endpoint: String, state: EndpointState, by: ChangedBy, reason: String? = nil,
        time: Date = Date()
    ) -> AuditEvent {
        var f = Fields()
        f.add("cluster", cluster)
        f.add("endpoint", endpoint)
        f.add("state", state)
        f.add("by", by)
        f.add("reason", reason)
        return AuditEvent(
            name: "endpoint_state", time: time, session: nil,
            severity: state == .down ? .notice : .info, fields: f.list)
    }

    public static func drillStart(
        cluster: String, mode: String, drillID: String? = nil, target: String? = nil, time: Date = Date()
    ) -> AuditEvent {
        var f = Fields()
        f.add("cluster", cluster)
        f.add("mode", mode)
        f.add("drill_id", drillID)
        f.add("target", target)
        return AuditEvent(name: "drill_start", time: time, session: nil, fields: f.list)
    }

    public static func drillEnd(
        cluster: String, mode: String, drillID: String? = nil, outcome: DrillOutcome,
        durationMs: Int? = nil, oldPrimary: String? = nil, newPrimary: String? = nil,
        sessionsAffected: Int? = nil, failedLogins: Int? = nil, summary: String? = nil,
        time: Date = Date()
    ) -> AuditEvent {
        var f = Fields()
        f.add("cluster", cluster)
        f.add("mode", mode)
        f.add("drill_id", drillID)
        f.add("outcome", outcome)
        f.add("duration_ms", durationMs)
        f.add("old_primary", oldPrimary)
        f.add("new_primary", newPrimary)
        f.add("sessions_affected", sessionsAffected)
        f.add("failed_logins", failedLogins)
        f.add("summary", summary)
        return AuditEvent(
            name: "drill_end", time: time, session: nil,
            severity: outcome == .passed ? .info : .notice, fields: f.list)
    }

    /// Written by the audit log itself where its own records were lost.
    public static func auditDropped(
        droppedEvents: Int, droppedBytes: Int?, reason: DropReason, time: Date = Date()
    ) -> AuditEvent {
        var f = Fields()
        f.add("dropped_events", droppedEvents)
        f.add("dropped_bytes", droppedBytes)
        f.add("reason", reason)
        return AuditEvent(name: "audit_dropped", time: time, session: nil, severity: .notice, fields: f.list)
    }
}

// MARK: - JSON

extension AuditEvent {
    /// The JSON object, without a newline. `asciiOnly` escapes everything outside ASCII.
    public func jsonBytes(asciiOnly: Bool = false) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(160)
        out.append(contentsOf: "{\"ts\":\"".utf8)
        RFC3339.append(time, to: &out)
        out.append(contentsOf: "\",\"event\":".utf8)
        JSONText.appendString(name, to: &out, asciiOnly: asciiOnly)
        if let session {
            out.append(contentsOf: ",\"session\":".utf8)
            JSONText.appendString(session, to: &out, asciiOnly: asciiOnly)
        }
        for field in fields {
            out.append(UInt8(ascii: ","))
            Self.append(field, to: &out, asciiOnly: asciiOnly)
        }
        out.append(UInt8(ascii: "}"))
        return out
    }

    /// The JSON object followed by `\n` (JSON lines).
    public func jsonLine(asciiOnly: Bool = false) -> [UInt8] {
        var out = jsonBytes(asciiOnly: asciiOnly)
        out.append(UInt8(ascii: "\n"))
        return out
    }

    public func json(asciiOnly: Bool = false) -> String {
        String(decoding: jsonBytes(asciiOnly: asciiOnly), as: UTF8.self)
    }

    private static func append(_ field: Field, to out: inout [UInt8], asciiOnly: Bool) {
        JSONText.appendString(field.name, to: &out, asciiOnly: asciiOnly)
        out.append(UInt8(ascii: ":"))
        switch field.value {
        case .string(let text):
            JSONText.appendString(text, to: &out, asciiOnly: asciiOnly)
        case .int(let number):
            JSONText.appendInt(number, to: &out)
        case .bool(let flag):
            out.append(contentsOf: (flag ? "true" : "false").utf8)
        case .objects(let objects):
            out.append(UInt8(ascii: "["))
            for (index, object) in objects.enumerated() {
                if index > 0 { out.append(UInt8(ascii: ",")) }
                out.append(UInt8(ascii: "{"))
                for (position, inner) in object.enumerated() {
                    if position > 0 { out.append(UInt8(ascii: ",")) }
                    append(inner, to: &out, asciiOnly: asciiOnly)
                }
                out.append(UInt8(ascii: "}"))
            }
            out.append(UInt8(ascii: "]"))
        }
    }
}
