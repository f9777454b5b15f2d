import Synchronization

/// Whether this instance wants new connections, as `/readyz` tells a load balancer or a
/// kubelet. Once graceful shutdown starts the instance drains: `/readyz` answers 503 so the
/// balancer sends new sessions elsewhere while running ones finish, and `/healthz` stays
/// 200 (the process is alive; restarting it for this would cut the drain short).
final class InstanceReadiness: Sendable {
    enum Drain: Sendable, Hashable, CustomStringConvertible {
        /// SIGTERM (or the service group's graceful shutdown): the listeners are closed and
        /// running sessions have `graceSeconds` to finish.
        case shutdown(graceSeconds: Int64)

        var description: String {
            switch self {
            case .shutdown(let grace):
                return "draining: shutting down, running sessions have up to \(grace) s to finish; send new connections to another instance"
            }
        }
    }

    private let state = Mutex<Drain?>(nil)

    /// Nil while the instance takes new connections.
    var drain: Drain? { state.withLock { $0 } }

    /// Draining never ends in this process: the first reason stays.
    func startDraining(_ why: Drain) {
        state.withLock { if $0 == nil { $0 = why } }
    }
}
