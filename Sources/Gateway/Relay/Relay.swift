import Audit
import Foundation
import Logging
import NIOCore
import Routing
import TDS
import TDSNIO

/// Replaces the login-time handlers of both legs with a linked pair of relay handlers,
/// moving TDS packets, or SMP packets when the session negotiated MARS.
enum Relay {
    static func start(client ctx: ChannelHandlerContext, clientSession: ClientSessionHandler, backend: BackendLeg,
                      logger: Logger, info: SessionInfo, cluster: ClusterRuntime, intent: SessionIntent,
                      audit: AuditLog? = nil, started: Date = Date(), tap: SessionTap? = nil) throws {
        let sessionLabel = "session=\(info.id) principal=\(info.principal)"
        let endpoint = info.endpoint
        ctx.eventLoop.assertInEventLoop()
        precondition(backend.channel.eventLoop === ctx.eventLoop, "both legs of a session share one event loop")
        // The first reason wins: it is why the session ended; the rest is the other leg
        // following it down.
        let endReason = NIOLoopBound(Box<String?>(nil), eventLoop: ctx.eventLoop)
        let ended: @Sendable (String) -> Void = { reason in
            logger.info("session ended", metadata: ["session": "\(sessionLabel)", "reason": "\(reason)"])
            if endReason.value.value == nil { endReason.value.value = reason }
        }
        // Drivers (ODBC Driver 18, SqlClient) start SMP once the login reply has arrived:
        // tdsgate logs in on both legs in plain TDS, and from here both legs carry SMP
        // packets end to end. tdsgate consumes and produces none itself, so SID 0 numbering
        // is the same on both legs (the identity translation).
        let mars = backend.serverPrelogin?.mars == true
        let unitFraming: RelayFraming = mars ? .smp(SMPSequenceTranslation(up: 0, down: 0)) : .tds
        let toBackend = RelayHandler(label: "client", framing: unitFraming, onClose: ended)
        let toClient = RelayHandler(label: "server", framing: unitFraming, onClose: ended)
        toBackend.peer = toClient
        toClient.peer = toBackend
        if mars { logger.debug("MARS relay", metadata: ["session": "\(sessionLabel)"]) }

        if let tap {
            toBackend.tapPoint = RelayTapPoint(tap: tap, towardsServer: true)
            toClient.tapPoint = RelayTapPoint(tap: tap, towardsServer: false)
        }

        let clientOps = ctx.pipeline.syncOperations
        let clientFraming = try clientOps.handler(type: TDSMessageFramingHandler.self)
        clientOps.removeHandler(context: ctx, promise: nil)
        try clientOps.addHandler(toBackend)
        clientOps.removeHandler(clientFraming, promise: nil)

        let backendOps = backend.channel.pipeline.syncOperations
        let (framing, messages) = backend.loginHandlers
        backendOps.removeHandler(messages, promise: nil)
        try backendOps.addHandler(toClient)
        backendOps.removeHandler(framing, promise: nil)
        // From here the relay reports to the tap itself (RelayTapPoint).
        for ops in [clientOps, backendOps] {
            if let t = try? ops.handler(type: PacketTapHandler.self) { ops.removeHandler(t, promise: nil) }
        }
        // With TLS in place for good (or none), the transport handlers only pass bytes on:
        // one handler fewer each way on every read and write.
        if let t = try? clientOps.handler(type: TDSServerTransportHandler.self), t.isPassThrough {
            clientOps.removeHandler(t, promise: nil)
        }
        if let t = try? backendOps.handler(type: TDSClientTransportHandler.self), t.isPassThrough {
            backendOps.removeHandler(t, promise: nil)
        }

        // Registered with the cluster so that a demoted primary's sessions can be closed.
        let loop = ctx.eventLoop
        let bound = NIOLoopBound(toClient, eventLoop: loop)
        let id = cluster.sessionOpened(on: endpoint, handle: .init(intent: intent, info: info, close: { afterRequest in
            loop.execute { bound.value.requestClose(afterCurrentRequest: afterRequest) }
        }))
        let metrics = cluster.metrics
        let clusterName = cluster.config.name
        metrics?.session(cluster: clusterName, endpoint: endpoint, intent: intent.rawValue, delta: 1)
        let counted = NIOLoopBound((toBackend, toClient), eventLoop: loop)
        let boundTap = tap.map { NIOLoopBound($0, eventLoop: loop) }
        ctx.channel.closeFuture.whenComplete { _ in
            boundTap?.value.closed()
            cluster.sessionClosed(on: endpoint, id: id)
            metrics?.session(cluster: clusterName, endpoint: endpoint, intent: intent.rawValue, delta: -1)
            let (up, down) = counted.value
            metrics?.relayed(direction: "client_to_server", bytes: up.bytesIn)
            metrics?.relayed(direction: "server_to_client", bytes: down.bytesIn)
            if let audit {
                let reason = endReason.value.value ?? "client closed the connection"
                _ = audit.record(.sessionEnd(
                    session: String(info.id), durationMs: Int(Date().timeIntervalSince(started) * 1000),
                    bytesClientToServer: up.bytesIn, bytesServerToClient: down.bytesIn,
                    endReason: Self.endReason(reason), error: Self.endReason(reason) == .error ? reason : nil))
            }
        }
    }

    /// The audit trail's name for why a relayed session ended (RelayHandler's reasons).
    static func endReason(_ reason: String) -> AuditEvent.EndReason {
        if reason.contains("demoted") { return .demoted }
        if reason.contains("shutting down") || reason.contains("shutdown") { return .shutdown }
        if reason.hasPrefix("client closed") { return .clientClosed }
        if reason.hasPrefix("server closed") { return .backendClosed }
        return .error
    }
}

/// A mutable cell for state a closure shares on one event loop (wrap it in NIOLoopBound).
final class Box<T> {
    var value: T
    init(_ value: T) { self.value = value }
}
