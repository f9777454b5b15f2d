import NIOCore
import TDS

/// One login to one backend endpoint: connect, PRELOGIN, TLS (or strict), LOGIN7 built by
/// the caller once the server's FEDAUTH echo and nonce are known, and the reply. Used by
/// client sessions and by probes alike.
struct BackendLoginAttempt {
    let context: GatewayContext
    let eventLoop: any EventLoop
    /// The client session's tap, so that dumps see the backend leg too (nil for probes).
    var tap: NIOLoopBound<SessionTap>? = nil

    typealias Login7Builder = @Sendable (_ fedAuthEcho: Bool, _ nonce: [UInt8]?) -> Login7

    func run(target: BackendTarget, login: Login7Builder, mars: Bool = false) async -> Result<(BackendLeg, BackendLoginReply, ByteBuffer), BackendError> {
        let leg: BackendLeg
        do {
            leg = try await context.metrics.timeBackendConnect { try await BackendLeg.connect(target, on: eventLoop, tls: context.backendTLS, tap: tap) }
        } catch let e as BackendError {
            return .failure(e)
        } catch {
            return .failure(BackendError(description: "\(error)"))
        }
        do {
            if !target.strict {
                let server = try await leg.prelogin(clientTraceID: nil, mars: mars)
                guard let enc = server.encryption?.mode, enc != .notSupported else {
                    throw BackendError(description: "\(target) does not offer encryption; tdsgate only logs in to Azure SQL over TLS")
                }
                try await leg.startTLS(context: context.backendTLS.context(caFile: target.caFile, strict: false), inPrelogin: true)
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
            return .success((leg, parsed, reply.payload))
        } catch let e as BackendError {
            leg.close()
            return .failure(e)
        } catch {
            leg.close()
            return .failure(BackendError(description: "login exchange with \(target) failed: \(error)"))
        }
    }
}
