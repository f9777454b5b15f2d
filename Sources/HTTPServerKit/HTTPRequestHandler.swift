import Foundation
import NIOCore
import NIOHTTP1

/// Collects one request at a time, hands it to the router and writes the reply; carries out
/// what `HTTPConnectionStateMachine` decides (limits, deadlines). Sits after NIO's HTTP
/// decoder and pipelining handler.
final class HTTPRequestHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    private let router: HTTPRouter
    private let isSecure: Bool
    private var machine: HTTPConnectionStateMachine
    private var timer: (deadline: NIODeadline, task: Scheduled<Void>)?
    /// Out of the pipeline (the connection closed): a route that answers late writes nothing.
    private var removed = false

    init(router: HTTPRouter, limits: HTTPServerLimits, isSecure: Bool, acceptedAt now: NIODeadline) {
        self.router = router
        self.isSecure = isSecure
        self.machine = HTTPConnectionStateMachine(limits: limits, acceptedAt: now)
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.syncTimer(context: context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.removed = true
        self.timer?.task.cancel()
        self.timer = nil
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let action: HTTPConnectionStateMachine.Action
        switch self.unwrapInboundIn(data) {
        case .head(let head):
            action = self.machine.headReceived(head, allocator: context.channel.allocator, now: context.eventLoop.now)
        case .body(var chunk):
            action = self.machine.bodyReceived(&chunk)
        case .end:
            action = self.machine.endReceived()
        }
        self.run(action, context: context)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is HTTPBytesArrived {
            self.machine.bytesArrived(now: context.eventLoop.now)
            self.syncTimer(context: context)
            return
        }
        context.fireUserInboundEventTriggered(event)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let parserError = error as? HTTPParserError {
            self.run(self.machine.parseFailed(parserError), context: context)
        } else {
            context.close(promise: nil)
        }
    }

    private func run(_ action: HTTPConnectionStateMachine.Action, context: ChannelHandlerContext) {
        switch action {
        case .none:
            break
        case .sendContinue(let version):
            let interim = HTTPResponseHead(version: version, status: .continue)
            context.writeAndFlush(self.wrapOutboundOut(.head(interim)), promise: nil)
        case .reject(let rejection, let version, let closeAfterwards):
            self.write(Self.response(for: rejection), context: context, version: version, keepAlive: false,
                       closeAfterwards: closeAfterwards)
        case .dispatch(let head, let body):
            self.dispatch(context: context, head: head, body: body)
        case .close:
            context.close(promise: nil)
        }
        self.syncTimer(context: context)
    }

    /// Keeps one scheduled task for the machine's deadline.
    private func syncTimer(context: ChannelHandlerContext) {
        let wanted = self.removed ? nil : self.machine.deadline
        if let timer, timer.deadline == wanted { return }
        self.timer?.task.cancel()
        self.timer = nil
        guard let wanted else { return }
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        let task = context.eventLoop.scheduleTask(deadline: wanted) {
            let (handler, context) = bound.value
            handler.timer = nil
            handler.run(handler.machine.deadlineFired(now: context.eventLoop.now), context: context)
        }
        self.timer = (wanted, task)
    }

    static func response(for rejection: HTTPConnectionStateMachine.Rejection) -> HTTPServerResponse {
        switch rejection {
        case .bodyTooLarge(let limit):
            return .error(.payloadTooLarge, code: "request_entity_too_large",
                          message: "request body larger than \(limit) bytes")
        case .headersTooLarge(let limit):
            return .error(.requestHeaderFieldsTooLarge, code: "request_header_fields_too_large",
                          message: "request line and headers larger than \(limit) bytes, or too many header fields")
        case .badRequest:
            return .error(.badRequest, code: "bad_request", message: "the request is not valid HTTP/1.1")
        case .bodyTimeout:
            return .error(.requestTimeout, code: "request_timeout", message: "the request body did not arrive in time")
        }
    }

    private func dispatch(context: ChannelHandlerContext, head: HTTPRequestHead, body: ByteBuffer) {
        let request = HTTPServerRequest(
            method: head.method,
            uri: head.uri,
            headers: head.headers,
            body: Array(body.readableBytesView),
            remoteAddress: context.channel.remoteAddress?.description,
            isSecure: self.isSecure
        )
        let keepAlive = head.isKeepAlive
        let version = head.version
        let isHead = head.method == .HEAD
        let router = self.router
        let bound = NIOLoopBound((handler: self, context: context), eventLoop: context.eventLoop)
        context.eventLoop.makeFutureWithTask {
            await router.respond(to: request)
        }.whenSuccess { response in
            let (handler, context) = bound.value
            guard !handler.removed else { return }
            let stays = handler.machine.responseWritten(now: context.eventLoop.now)
            handler.write(response, context: context, version: version, keepAlive: keepAlive && stays, omitBody: isHead)
            handler.syncTimer(context: context)
        }
    }

    private func write(
        _ response: HTTPServerResponse,
        context: ChannelHandlerContext,
        version: HTTPVersion,
        keepAlive: Bool,
        closeAfterwards: Bool = true,
        omitBody: Bool = false
    ) {
        var headers = response.headers
        headers.replaceOrAdd(name: "Content-Length", value: String(response.body.count))
        if !headers.contains(name: "date") {
            headers.add(name: "Date", value: Self.httpDate(Date()))
        }
        if keepAlive {
            if version.major == 1 && version.minor == 0 {
                headers.replaceOrAdd(name: "Connection", value: "keep-alive")
            }
        } else {
            headers.replaceOrAdd(name: "Connection", value: "close")
        }
        let head = HTTPResponseHead(version: version, status: response.status, headers: headers)
        context.write(self.wrapOutboundOut(.head(head)), promise: nil)
        if !response.body.isEmpty && !omitBody {
            var buffer = context.channel.allocator.buffer(capacity: response.body.count)
            buffer.writeBytes(response.body)
            context.write(self.wrapOutboundOut(.body(.byteBuffer(buffer))), promise: nil)
        }
        if keepAlive || !closeAfterwards {
            context.writeAndFlush(self.wrapOutboundOut(.end(nil)), promise: nil)
        } else {
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(.end(nil))).whenComplete { _ in
                channel.close(promise: nil)
            }
        }
    }

    /// RFC 7231 IMF-fixdate, e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
    static func httpDate(_ date: Date) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "GMT") ?? TimeZone(secondsFromGMT: 0)!
        let parts = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second, .weekday], from: date)
        let days = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
        let months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
        func two(_ value: Int?) -> String {
            let value = value ?? 0
            return value < 10 ? "0\(value)" : "\(value)"
        }
        let weekday = days[((parts.weekday ?? 1) - 1) % 7]
        let month = months[((parts.month ?? 1) - 1) % 12]
        return "\(weekday), \(two(parts.day)) \(month) \(parts.year ?? 1970) \(two(parts.hour)):\(two(parts.minute)):\(two(parts.second)) GMT"
    }
}

/// Told to `HTTPRequestHandler` when bytes arrive, before NIO's decoder sees them: the
/// header timeout of a kept-alive connection's next request starts at its first byte.
struct HTTPBytesArrived: Sendable {}

/// First in the plaintext part of the pipeline: raises ``HTTPBytesArrived`` for every read.
final class HTTPByteArrivalHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if self.unwrapInboundIn(data).readableBytes > 0 {
            context.fireUserInboundEventTriggered(HTTPBytesArrived())
        }
        context.fireChannelRead(data)
    }
}

/// For a connection beyond ``HTTPServerLimits/maxConnections``: a 503 and close, without
/// reading the request (so it holds nothing).
final class HTTPOverCapacityHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let limit: Int

    init(limit: Int) {
        self.limit = limit
    }

    func channelActive(context: ChannelHandlerContext) {
        let body = JSONValue.object([
            "error": "too_many_connections",
            "error_description": .string("this server has \(self.limit) connections open, its limit; retry later"),
        ]).serialized()
        let head = "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json; charset=utf-8\r\n"
            + "Content-Length: \(body.count)\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
        var buffer = context.channel.allocator.buffer(capacity: head.utf8.count + body.count)
        buffer.writeString(head)
        buffer.writeBytes(body)
        let channel = context.channel
        context.writeAndFlush(self.wrapOutboundOut(buffer)).whenComplete { _ in
            channel.close(promise: nil)
        }
        context.fireChannelActive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}
