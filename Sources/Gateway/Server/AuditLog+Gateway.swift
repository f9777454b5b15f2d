import Audit
import Routing

extension SyslogConfiguration.Facility {
    /// The facility a configuration names (`AuditConfig.facilities`).
    init?(name: String) {
        switch name {
        case "kern": self = .kern
        case "user": self = .user
        case "daemon": self = .daemon
        case "auth": self = .auth
        case "syslog": self = .syslog
        case "authpriv": self = .authpriv
        case "local0": self = .local0
        case "local1": self = .local1
        case "local2": self = .local2
        case "local3": self = .local3
        case "local4": self = .local4
        case "local5": self = .local5
        case "local6": self = .local6
        case "local7": self = .local7
        default: return nil
        }
    }
}

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
