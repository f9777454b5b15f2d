import NIOCore
import NIOHTTP1

/// One HTTP/1.1 connection's progress through a request, as a value: which request may be
/// read, when the connection has taken too long, and what a request over the limits gets.
/// Holds no channel and does no I/O; time comes in with every input, and ``deadline`` says
/// when ``deadlineFired(now:)`` must be called. `HTTPRequestHandler` carries out the actions.
struct HTTPConnectionStateMachine {
    enum State {
        /// No byte of the next request yet. `first`: the connection's first request, whose
        /// headers must be complete within the header timeout of the accept.
        case awaitingRequest(first: Bool)
        /// Some bytes of a request, not all of its head.
        case readingHead
        case readingBody(HTTPRequestHead, ByteBuffer)
        /// Answered 413 while the body was still coming: the rest is read and dropped (so the
        /// client reads the answer, not a reset), then the connection is closed.
        case discarding(remaining: Int)
        /// The router has the request; no deadline (a route decides how long it takes).
        case responding(keepAlive: Bool)
        case closed
    }

    /// Why a request is refused before it reaches the router.
    enum Rejection: Equatable {
        case bodyTooLarge(limit: Int)
        case headersTooLarge(limit: Int)
        case badRequest
        case bodyTimeout
    }

    enum Action {
        case none
        /// `Expect: 100-continue` (curl sends it for larger bodies).
        case sendContinue(HTTPVersion)
        /// Answer with an error and close; for `.bodyTooLarge` first discard the rest of the
        /// body (`closeAfterwards` false: the close comes with the request's end or the deadline).
        case reject(Rejection, HTTPVersion, closeAfterwards: Bool)
        case dispatch(HTTPRequestHead, ByteBuffer)
        case close
    }

    /// How much of a refused body is read and dropped before giving up on a polite close.
    static let discardLimit = 16 << 20

    let limits: HTTPServerLimits
    private(set) var state: State
    /// When the connection must have moved on, or nil while a route is responding.
    private(set) var deadline: NIODeadline?

    init(limits: HTTPServerLimits, acceptedAt now: NIODeadline) {
        self.limits = limits
        self.state = .awaitingRequest(first: true)
        self.deadline = now + limits.headerTimeout
    }

    /// Bytes arrived from the client (before decoding).
    mutating func bytesArrived(now: NIODeadline) {
        guard case .awaitingRequest(let first) = state else { return }
        state = .readingHead
        // The first request keeps the deadline counted from the accept.
        if !first { deadline = now + limits.headerTimeout }
    }

    mutating func headReceived(_ head: HTTPRequestHead, allocator: ByteBufferAllocator, now: NIODeadline) -> Action {
        switch state {
        case .awaitingRequest, .readingHead:
            break
        case .readingBody, .discarding, .responding, .closed:
            // NIO's pipelining handler delivers one request at a time.
            return .none
        }
        deadline = now + limits.bodyTimeout
        if let length = head.headers.first(name: "content-length").flatMap(Int.init), length > limits.maxBodyBytes {
            // Refused from its Content-Length, without 100 Continue; a client that sends the
            // body anyway has it dropped until the request ends.
            state = .discarding(remaining: Self.discardLimit)
            return .reject(.bodyTooLarge(limit: limits.maxBodyBytes), head.version, closeAfterwards: false)
        }
        state = .readingBody(head, allocator.buffer(capacity: 0))
        if head.headers.first(name: "expect")?.lowercased() == "100-continue" {
            return .sendContinue(head.version)
        }
        return .none
    }

    mutating func bodyReceived(_ chunk: inout ByteBuffer) -> Action {
        switch state {
        case .discarding(let remaining):
            let left = remaining - chunk.readableBytes
            if left < 0 {
                state = .closed
                return .close
            }
            state = .discarding(remaining: left)
            return .none
        case .readingBody(let head, var body):
            if body.readableBytes + chunk.readableBytes > limits.maxBodyBytes {
                state = .discarding(remaining: Self.discardLimit)
                return .reject(.bodyTooLarge(limit: limits.maxBodyBytes), head.version, closeAfterwards: false)
            }
            state = .closed  // drops the state's reference, so the append does not copy
            body.writeBuffer(&chunk)
            state = .readingBody(head, body)
            return .none
        case .awaitingRequest, .readingHead, .responding, .closed:
            return .none
        }
    }

    mutating func endReceived() -> Action {
        switch state {
        case .discarding:
            state = .closed
            return .close
        case .readingBody(let head, let body):
            state = .responding(keepAlive: head.isKeepAlive)
            deadline = nil
            return .dispatch(head, body)
        case .awaitingRequest, .readingHead, .responding, .closed:
            return .none
        }
    }

    /// The router's response is written. Returns whether the connection stays open.
    mutating func responseWritten(now: NIODeadline) -> Bool {
        guard case .responding(let keepAlive) = state else { return false }
        guard keepAlive else {
            state = .closed
            return false
        }
        state = .awaitingRequest(first: false)
        deadline = now + limits.idleTimeout
        return true
    }

    /// The decoder refused the bytes (NIO's parser error).
    mutating func parseFailed(_ error: HTTPParserError) -> Action {
        let answerable: Bool
        switch state {
        case .awaitingRequest, .readingHead, .readingBody: answerable = true
        case .discarding, .responding, .closed: answerable = false
        }
        state = .closed
        guard answerable else { return .close }
        let rejection: Rejection = error == .headerOverflow ? .headersTooLarge(limit: limits.maxHeaderBytes) : .badRequest
        return .reject(rejection, .http1_1, closeAfterwards: true)
    }

    mutating func deadlineFired(now: NIODeadline) -> Action {
        guard let deadline, now >= deadline else { return .none }
        self.deadline = nil
        let previous = state
        state = .closed
        switch previous {
        case .readingBody(let head, _):
            return .reject(.bodyTimeout, head.version, closeAfterwards: true)
        case .awaitingRequest, .readingHead, .discarding:
            // Headers that never ended, or an idle keep-alive: closed without an answer, as
            // nginx does (there is no request to answer yet).
            return .close
        case .responding, .closed:
            state = previous
            return .none
        }
    }
}
