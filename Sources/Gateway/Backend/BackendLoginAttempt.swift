import NIOCore
import Routing
import Synchronization
import TDS

/// One login to one backend endpoint: connect, PRELOGIN, TLS (or strict), LOGIN7 built by
/// the caller once the server's FEDAUTH echo and nonce are known, and the reply. Used by
/// client sessions and by probes alike.
///
/// The attempt is over by its deadline whatever stage it is in (a backend that answers
/// the LOGIN7 after 40 s does not hold a client whose login timeout is 15 s), and over at
/// once when its task is cancelled (the client left): in both cases the connection is
/// closed.
struct BackendLoginAttempt {
    let tls: BackendTLSContexts
    let eventLoop: any EventLoop
    /// The client session's tap, so that dumps see the backend leg too (nil for probes).
    var tap: NIOLoopBound<SessionTap>? = nil
    /// Where the connect time goes (`tdsgate_backend_connect_duration_seconds`).
    var metrics: GatewayMetrics? = nil

    typealias Login7Builder = @Sendable (_ fedAuthEcho: Bool, _ nonce: [UInt8]?) -> Login7

    /// Why an attempt did not produce a reply.
    enum Failure: Error, CustomStringConvertible {
        case failed(BackendError)
        case timedOut
        case cancelled

        var description: String {
            switch self {
            case .failed(let e): e.description
            case .timedOut: "the attempt ran out of time"
            case .cancelled: "the login was cancelled"
            }
        }

        /// In the terms of the login plan (nil: cancelled, which the plan never sees).
        var loginFailure: LoginFailure? {
            switch self {
            case .failed(let e): .connect(e.description)
            case .timedOut: .timedOut
            case .cancelled: nil
            }
        }
    }

    struct Reply {
        var leg: BackendLeg
        var parsed: BackendLoginReply
        var payload: ByteBuffer
    }

    func run(target: BackendTarget, deadline: ContinuousClock.Instant, login: Login7Builder, mars: Bool = false) async -> Result<Reply, Failure> {
        let left = deadline - ContinuousClock.now
        guard left > .zero else { return .failure(.timedOut) }
        let cutoff = AttemptCutoff()
        let timer = eventLoop.scheduleTask(in: TimeAmount(left)) { cutoff.fire(.deadline) }
        defer { timer.cancel() }
        let result = await withTaskCancellationHandler {
            await exchange(target: target, left: left, cutoff: cutoff, login: login, mars: mars)
        } onCancel: {
            cutoff.fire(.cancelled)
        }
        // A cutoff that fired after the reply arrived still ends the attempt: the caller
        // must not go on with a leg that is closed or that nobody will use.
        switch (result, cutoff.detach()) {
        case (.success, nil):
            return result
        case (.success(let reply), let reason?):
            reply.leg.close()
            return .failure(reason == .deadline ? .timedOut : .cancelled)
        case (.failure, let reason?):
            return .failure(reason == .deadline ? .timedOut : .cancelled)
        case (.failure, nil):
            return result
        }
    }

    private func exchange(target: BackendTarget, left: Duration, cutoff: AttemptCutoff, login: Login7Builder, mars: Bool) async -> Result<Reply, Failure> {
        let leg: BackendLeg
        do {
            let connect = { [tls, tap, eventLoop] in
                try await BackendLeg.connect(target, on: eventLoop, tls: tls, tap: tap, cutoff: cutoff,
                                             connectTimeout: min(target.connectTimeout, TimeAmount(left)))
            }
            if let metrics {
                leg = try await metrics.timeBackendConnect(connect)
            } else {
                leg = try await connect()
            }
        } catch let e as BackendError {
            return .failure(.failed(e))
        } catch {
            return .failure(.failed(BackendError(description: "\(error)")))
        }
        do {
            if !target.strict {
                let server = try await leg.prelogin(clientTraceID: nil, mars: mars)
                guard let enc = server.encryption?.mode, enc != .notSupported else {
                    throw BackendError(description: "\(target) does not offer encryption; tdsgate only logs in to Azure SQL over TLS")
                }
                try await leg.startTLS(context: tls.context(caFile: target.caFile, strict: false), inPrelogin: true)
            } else {
                _ = try await leg.prelogin(clientTraceID: nil, mars: mars)
            }
            // The client's session is MARS: this leg must be too (SMP starts after login).
            if mars && leg.serverPrelogin?.mars != true {
                throw BackendError(description: "\(target) does not offer MARS, which the client asked for")
            }
            let backendLogin = login(leg.serverPrelogin?.fedAuthRequired == 0x01, leg.serverPrelogin?.nonce)
            var payload = ByteBufferAllocator().buffer(capacity: 1024)
            backendLogin.write(into: &payload)
            try await leg.send(TDSMessage(type: .login7, payload: payload))
            let reply = try await leg.receive()
            let parsed = try BackendLoginReply(parsing: reply.payload)
            return .success(Reply(leg: leg, parsed: parsed, payload: reply.payload))
        } catch let e as BackendError {
            leg.close()
            return .failure(.failed(e))
        } catch {
            leg.close()
            return .failure(.failed(BackendError(description: "login exchange with \(target) failed: \(error)")))
        }
    }
}

/// Ends one attempt from outside, at its deadline or when its task is cancelled, by
/// closing its channel: whatever step awaits that channel (connect, PRELOGIN, TLS, the
/// LOGIN7 reply) then fails. Safe from any thread.
final class AttemptCutoff: Sendable {
    enum Reason: Sendable { case deadline, cancelled }

    private struct State {
        var channel: (any Channel)?
        var reason: Reason?
        var detached = false
    }

    private let state = Mutex(State())

    /// The attempt's channel, as soon as it exists; closed at once if the cutoff already fired.
    func attach(_ channel: any Channel) {
        let closeNow = state.withLock { s -> Bool in
            s.channel = channel
            return s.reason != nil
        }
        if closeNow { channel.close(promise: nil) }
    }

    func fire(_ reason: Reason) {
        let channel = state.withLock { s -> (any Channel)? in
            guard s.reason == nil, !s.detached else { return nil }
            s.reason = reason
            return s.channel
        }
        channel?.close(promise: nil)
    }

    /// The attempt is over: later firings do nothing. Returns why it was cut off, if it was.
    func detach() -> Reason? {
        state.withLock { s in
            s.detached = true
            s.channel = nil
            return s.reason
        }
    }
}
