import Logging
import NIOCore
import Routing
import TDSNIO

/// Replaces the login-time handlers of both legs with a linked pair of relay handlers.
enum Relay {
    static func start(client ctx: ChannelHandlerContext, clientSession: ClientSessionHandler, backend: BackendLeg,
                      logger: Logger, info: SessionInfo, cluster: ClusterRuntime, intent: SessionIntent) throws {
        let sessionLabel = "session=\(info.id) principal=\(info.principal)"
        let endpoint = info.endpoint
        ctx.eventLoop.assertInEventLoop()
        precondition(backend.channel.eventLoop === ctx.eventLoop, "both legs of a session share one event loop")
        let ended: @Sendable (String) -> Void = { reason in
            logger.info("session ended", metadata: ["session": "\(sessionLabel)", "reason": "\(reason)"])
        }
        let toBackend = RelayHandler(label: "client", onClose: ended)
        let toClient = RelayHandler(label: "server", onClose: ended)
        toBackend.peer = toClient
        toClient.peer = toBackend

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
        ctx.channel.closeFuture.whenComplete { _ in
            cluster.sessionClosed(on: endpoint, id: id)
            metrics?.session(cluster: clusterName, endpoint: endpoint, intent: intent.rawValue, delta: -1)
            let (up, down) = counted.value
            metrics?.relayed(direction: "client_to_server", bytes: up.bytesIn)
            metrics?.relayed(direction: "server_to_client", bytes: down.bytesIn)
        }
    }
}
