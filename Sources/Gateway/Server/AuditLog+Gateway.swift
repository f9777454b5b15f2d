import Audit
import Routing

extension AuditEvent {
    /// The audit event a topology change is, if it is one worth a line: failovers, operator
    /// actions and endpoints going down or up.
    static func topology(_ event: TopologyEvent, cluster: String) -> AuditEvent? {
        switch event {
        case .primaryChanged(let from, let to, _):
            return .failoverDetected(cluster: cluster, oldPrimary: from, newPrimary: to)
        case .adminChanged(let endpoint, _, let to, _):
            let state: EndpointState = switch to {
            case .enabled: .enabled
            case .draining: .drained
            case .disabled: .disabled
            }
            return .endpointState(cluster: cluster, endpoint: endpoint, state: state, by: .admin)
        case .endpointDown(let endpoint, let reason, _):
            return .endpointState(cluster: cluster, endpoint: endpoint, state: .down, by: .probe, reason: "\(reason)")
        case .endpointUp(let endpoint, _):
            return .endpointState(cluster: cluster, endpoint: endpoint, state: .up, by: .probe)
        default:
            return nil
        }
    }
}
