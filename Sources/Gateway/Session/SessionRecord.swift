import Audit
import Foundation
import Logging

/// What the audit trail, metrics and the log say about one session's end: the first reason
/// anyone gives (`end(_:)`), the bytes the relay moved, written exactly once when the
/// client's connection has closed (`write()`). Whoever ends the session only says why; the
/// record says it to everyone.
///
/// Lives on the session's event loop (the client channel's; both legs share it).
final class SessionRecord {
    let id: Int
    let listener: String
    let started: Date
    var clientAddress: String
    var clientPort: Int?
    /// Set at hand-over, for the log line.
    var principal: String?
    var bytesClientToServer = 0
    var bytesServerToClient = 0

    private let audit: AuditLog?
    private let metrics: GatewayMetrics?
    private let logger: Logger
    /// The audit trail has this session's `session_start` (written at LOGIN7).
    private var auditOpen = false
    private(set) var reason: SessionEndReason?
    private var written = false

    init(id: Int, listener: String, clientAddress: String, clientPort: Int?, audit: AuditLog?,
         metrics: GatewayMetrics?, logger: Logger, started: Date = Date()) {
        self.id = id
        self.listener = listener
        self.clientAddress = clientAddress
        self.clientPort = clientPort
        self.audit = audit
        self.metrics = metrics
        self.logger = logger
        self.started = started
    }

    var auditSession: String { String(id) }

    var elapsedMs: Int { Int(Date().timeIntervalSince(started) * 1000) }

    /// Records an audit event of this session when the trail is on.
    func record(_ event: @autoclosure () -> AuditEvent) {
        if let audit { _ = audit.record(event()) }
    }

    /// The session's `session_start`: from here its end is audited too.
    func opened(_ start: @autoclosure () -> AuditEvent) {
        guard let audit else { return }
        _ = audit.record(start())
        auditOpen = true
    }

    /// Why the session ends; the first reason given wins (the rest is the other leg
    /// following it down).
    func end(_ reason: SessionEndReason) {
        if self.reason == nil { self.reason = reason }
    }

    /// The client connection has closed: tell the trail, the metrics and the log, once.
    func write() {
        guard !written else { return }
        written = true
        let reason = self.reason ?? .clientClosed
        if bytesClientToServer > 0 || bytesServerToClient > 0 {
            metrics?.relayed(direction: "client_to_server", bytes: bytesClientToServer)
            metrics?.relayed(direction: "server_to_client", bytes: bytesServerToClient)
        }
        if auditOpen {
            record(.sessionEnd(session: auditSession, durationMs: elapsedMs,
                               bytesClientToServer: bytesClientToServer, bytesServerToClient: bytesServerToClient,
                               endReason: reason.audit, error: reason.errorText))
        }
        var metadata: Logger.Metadata = ["session": "\(id)", "client": "\(clientAddress)", "reason": "\(reason)"]
        if let principal { metadata["principal"] = "\(principal)" }
        if principal != nil || auditOpen {
            metadata["bytes_in"] = "\(bytesClientToServer)"
            metadata["bytes_out"] = "\(bytesServerToClient)"
            logger.info("session ended", metadata: metadata)
        } else {
            logger.debug("connection closed before login", metadata: metadata)
        }
    }
}
