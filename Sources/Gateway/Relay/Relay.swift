import Foundation
import NIOCore
import Routing
import TDS
import TDSNIO

/// Replaces the login-time handlers of both legs with a pair of relay handlers over one
/// `RelaySession`, moving TDS packets, or SMP packets when the session negotiated MARS.
enum Relay {
    static func start(client ctx: ChannelHandlerContext, backend: BackendLeg, info: SessionInfo, cluster: ClusterRuntime,
                      intent: SessionIntent, record: SessionRecord, tap: SessionTap? = nil,
                      pooled: PooledConnection? = nil) throws {
        let endpoint = info.endpoint
        ctx.eventLoop.assertInEventLoop()
        precondition(backend.channel.eventLoop === ctx.eventLoop, "both legs of a session share one event loop")
        // Drivers (ODBC Driver 18, SqlClient) start SMP once the login reply has arrived:
        // tdsgate logs in on both legs in plain TDS, and from here both legs carry SMP
        // packets end to end. tdsgate consumes and produces none itself, so SID 0 numbering
        // is the same on both legs (the identity translation).
        let mars = backend.serverPrelogin?.mars == true
        let session = RelaySession(framing: mars ? .smp(SMPSequenceTranslation(up: 0, down: 0)) : .tds, record: record)
        let toBackend = RelayHandler(reads: .client, session: session)
        let toClient = RelayHandler(reads: .server, session: session)
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
        let bound = NIOLoopBound(session, eventLoop: loop)
        let id = cluster.sessionOpened(on: endpoint, handle: .init(intent: intent, info: info, close: { afterRequest in
            loop.execute { bound.value.requestClose(.demoted, afterCurrentRequest: afterRequest) }
        }))
        let metrics = cluster.metrics
        let clusterName = cluster.config.name
        metrics?.session(cluster: clusterName, endpoint: endpoint, intent: intent.rawValue, delta: 1)
        let boundTap = tap.map { NIOLoopBound($0, eventLoop: loop) }
        ctx.channel.closeFuture.whenComplete { _ in
            boundTap?.value.closed()
            cluster.sessionClosed(on: endpoint, id: id)
            metrics?.session(cluster: clusterName, endpoint: endpoint, intent: intent.rawValue, delta: -1)
        }
        guard let pooled, let pool = cluster.pool else {
            // The backend leg closing on its own ends the session too (RelayHandler), but a
            // backend that never saw a read must not outlive its client.
            ctx.channel.closeFuture.whenComplete { _ in backend.close() }
            return
        }
        // Pooled: when the client leaves, the backend leg goes back to the pool, drained and
        // reset; a session that ends any other way closes it.
        session.onClientLeft = { requestInFlight in
            let ops = backend.channel.pipeline.syncOperations
            let clean = !toClient.holdsPartialUnit && backend.channel.isActive
            ops.removeHandler(toClient, promise: nil)
            do {
                try ops.addHandlers([framing, messages])
            } catch {
                pool.release(pooled, reusable: false)
                return
            }
            guard clean else {
                pool.release(pooled, reusable: false)
                return
            }
            // The client may have been slow to read: the relay then stopped reading this leg.
            backend.channel.setOption(ChannelOptions.autoRead, value: true).whenFailure { _ in }
            Task {
                let ok = await PoolReset.run(backend, requestInFlight: requestInFlight)
                pool.release(pooled, reusable: ok)
            }
        }
        ctx.channel.closeFuture.whenComplete { _ in
            if !bound.value.returnedToPool { pool.release(pooled, reusable: false) }
        }
    }
}
