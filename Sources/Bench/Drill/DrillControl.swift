import Foundation
import Routing
import Synchronization

/// The operator side of a drill: starts the failover (ARM or tdsgate's admin API) and
/// watches tdsgate's view of the primary, recording each change at the moment tdsgate made
/// it (from `primary_since`), not at the moment the poll happened to see it.
struct DrillControl: Sendable {
    let options: DrillOptions
    let admin: DrillAdminClient
    let http: DrillHTTP
    let initial: String
    let recorder: SharedRecorder
    let say: @Sendable (String) -> Void

    static let pollInterval: Duration = .milliseconds(25)

    /// Polls the admin API until the drill stops, recording primary changes.
    func watch(until deadline: ContinuousClock.Instant, stopped: @Sendable () -> Bool) async {
        var last: String? = initial
        while !stopped() && ContinuousClock.now < deadline {
            if let snapshot = try? await admin.cluster(options.cluster), snapshot.primary != last {
                let now = ContinuousClock.now
                var at = now
                if let since = snapshot.primarySince, snapshot.primary != nil {
                    let age = max(0, Date().timeIntervalSince(since))
                    at = now - .milliseconds(Int64(age * 1000))
                }
                let from = last
                recorder.withLock { r in
                    // Never before a change already recorded: the timeline stays ordered.
                    let floor = r.primaryChanges.last?.at ?? r.start
                    r.primaryChanged(from: from, to: snapshot.primary, at: max(at, floor))
                }
                say("tdsgate now sees primary: \(snapshot.primary ?? "none")")
                last = snapshot.primary
            }
            try? await Task.sleep(for: Self.pollInterval)
        }
    }

    /// Baseline traffic, the failover, then traffic until writes have resumed on the new
    /// primary for `settle` (or the deadline).
    func drive(deadline: ContinuousClock.Instant) async throws {
        try await Task.sleep(for: options.baseline)
        let t0 = ContinuousClock.now
        recorder.withLock { $0.failoverStarted(at: t0) }
        switch options.mode {
        case .planned, .forced:
            guard let group = options.failoverGroup, let token = options.armToken else { return }
            let arm = DrillARMClient(http: http, group: group, token: token)
            let target = try await arm.currentSecondary()
            say("asking ARM for a \(options.mode == .forced ? "forced failover (data loss allowed)" : "planned failover") of '\(group.name)' to '\(target)'")
            try await arm.failover(to: target, allowDataLoss: options.mode == .forced)
        case .simulate:
            say("disabling '\(initial)' in tdsgate for \(options.outage) (nothing changes in Azure)")
            try await admin.endpoint(options.cluster, initial, "disable")
            try await Task.sleep(for: options.outage)
            say("enabling '\(initial)' again")
            try await admin.endpoint(options.cluster, initial, "enable")
        }
        // Recovered: a primary other than the old one (or the old one back, when simulating)
        // confirmed after t0, and a write acknowledged after that.
        while ContinuousClock.now < deadline {
            let recovered: Bool = recorder.withLock { r in
                guard let change = r.primaryChanges.last(where: { $0.at >= t0 && $0.to != nil }),
                      options.mode == .simulate ? change.to == initial : change.to != initial else { return false }
                return r.observations.contains {
                    if case .writeAcknowledged(_, _, _, let acked) = $0 { return acked >= change.at }
                    return false
                }
            }
            if recovered {
                say("writes resumed on the primary; keeping traffic for \(options.settle)")
                try await Task.sleep(for: options.settle)
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        say("the drill's time limit was reached before writes resumed")
    }
}
