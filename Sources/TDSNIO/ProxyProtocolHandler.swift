import NIOCore

/// Why a connection was refused at its PROXY header. Descriptions are for the log and for
/// a TDS error a handler further up may send before the connection closes.
public enum ProxyProtocolRejection: Sendable, Hashable, CustomStringConvertible {
    /// A peer that is not a trusted balancer sent a PROXY header: it would choose its own
    /// client address.
    case untrustedSourceSentHeader(peer: String, version: ProxyProtocolVersion)
    /// A trusted balancer's connection did not start with a PROXY header.
    case headerMissing(peer: String)
    /// A trusted balancer sent a header tdsgate cannot use.
    case malformed(peer: String, ProxyProtocolError)
    /// The connection closed in the middle of the header.
    case truncated(peer: String, received: Int)

    public var description: String {
        switch self {
        case .untrustedSourceSentHeader(let peer, let version):
            return "\(peer) sent a PROXY protocol \(version.rawValue) header but is not a trusted source (proxy_protocol.trusted_sources)"
        case .headerMissing(let peer):
            return "\(peer) is a trusted PROXY protocol source but its connection did not start with a PROXY header"
        case .malformed(let peer, let error):
            return "\(peer): \(error)"
        case .truncated(let peer, let received):
            return "\(peer) closed the connection after \(received) byte(s) of a PROXY protocol header"
        }
    }
}

/// What ``ProxyProtocolHandler`` tells the handlers after it.
public enum ProxyProtocolEvent: Sendable, Hashable {
    /// The header of a trusted balancer; the bytes after it follow as ordinary reads.
    case received(ProxyHeader)
    /// The connection is refused and is being closed: a handler that wants to answer
    /// (a TDS error) writes and flushes while handling this event.
    case rejected(ProxyProtocolRejection)
}

/// The decisions for one connection's first bytes, without I/O: a trusted peer must send a
/// header (in one of the allowed versions), an untrusted one must not.
public struct ProxyProtocolReceiver: Sendable {
    public enum Action: Sendable, Hashable {
        /// Hold the bytes and wait for more.
        case wait
        /// A trusted peer's header; `remainder` (possibly empty) goes up the pipeline.
        case accept(ProxyHeader, remainder: ByteBuffer)
        /// An untrusted peer that sent no header: its bytes go up unchanged.
        case passThrough(ByteBuffer)
        case reject(ProxyProtocolRejection)
        /// The connection was already decided (rejected): drop the bytes.
        case ignore
    }

    private enum State: Sendable {
        case awaiting(ByteBuffer?)
        case decided
    }

    public let trusted: Bool
    public let versions: Set<ProxyProtocolVersion>
    public let maxV2Length: Int
    /// The socket peer, for messages.
    public let peer: String
    private var state = State.awaiting(nil)

    public init(trusted: Bool, versions: Set<ProxyProtocolVersion>, peer: String,
                maxV2Length: Int = ProxyHeaderParser.defaultMaxV2Length) {
        self.trusted = trusted
        self.versions = versions
        self.peer = peer
        self.maxV2Length = maxV2Length
    }

    public mutating func receive(_ bytes: ByteBuffer) -> Action {
        guard case .awaiting(let held) = state else { return .ignore }
        var buffer = bytes
        if var held {
            held.writeImmutableBuffer(bytes)
            buffer = held
        }
        let action = decide(&buffer)
        state = action == .wait ? .awaiting(buffer) : .decided
        return action
    }

    /// The peer closed (or half-closed) its side: a header begun and not finished is
    /// refused; a connection that sent nothing (a plain TCP check) is not.
    public mutating func inputClosed() -> Action {
        guard case .awaiting(let held) = state else { return .ignore }
        state = .decided
        guard let held, held.readableBytes > 0 else { return .ignore }
        if !trusted, ProxyHeaderParser.detect(held) == .notProxyProtocol { return .passThrough(held) }
        return .reject(.truncated(peer: peer, received: held.readableBytes))
    }

    private func decide(_ buffer: inout ByteBuffer) -> Action {
        guard trusted else {
            switch ProxyHeaderParser.detect(buffer) {
            case .needMore: return .wait
            case .notProxyProtocol: return .passThrough(buffer)
            case .signature(let version): return .reject(.untrustedSourceSentHeader(peer: peer, version: version))
            }
        }
        do {
            switch try ProxyHeaderParser.parse(&buffer, versions: versions, maxV2Length: maxV2Length) {
            case .needMore:
                return .wait
            case .header(let header, _):
                return .accept(header, remainder: buffer)
            }
        } catch ProxyProtocolError.notProxyProtocol {
            return .reject(.headerMissing(peer: peer))
        } catch {
            return .reject(.malformed(peer: peer, error))
        }
    }
}

/// First handler of a listener's pipeline when `proxy_protocol:` is configured. For a
/// trusted peer it reads the PROXY header, fires ``ProxyProtocolEvent/received(_:)`` and
/// passes the bytes after the header on; for an untrusted peer without a header it passes
/// everything on untouched. Either way it then leaves the pipeline. Anything else fires
/// ``ProxyProtocolEvent/rejected(_:)`` and closes the connection.
public final class ProxyProtocolHandler: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer

    private let versions: Set<ProxyProtocolVersion>
    private let isTrusted: @Sendable (SocketAddress) -> Bool
    private let maxV2Length: Int
    private var receiver: ProxyProtocolReceiver?

    /// - Parameters:
    ///   - versions: the header versions a trusted peer may send.
    ///   - isTrusted: whether a socket peer is a balancer whose headers count
    ///     (`proxy_protocol.trusted_sources`). A connection without a peer address is untrusted.
    public init(versions: Set<ProxyProtocolVersion>, maxV2Length: Int = ProxyHeaderParser.defaultMaxV2Length,
                isTrusted: @escaping @Sendable (SocketAddress) -> Bool) {
        self.versions = versions
        self.maxV2Length = maxV2Length
        self.isTrusted = isTrusted
    }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let bytes = unwrapInboundIn(data)
        var machine = receiver ?? makeReceiver(context)
        let action = machine.receive(bytes)
        receiver = machine
        run(action, context)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        if var machine = receiver {
            let action = machine.inputClosed()
            receiver = machine
            run(action, context)
        }
        context.fireChannelInactive()
    }

    private func makeReceiver(_ context: ChannelHandlerContext) -> ProxyProtocolReceiver {
        let peer = context.channel.remoteAddress
        return ProxyProtocolReceiver(trusted: peer.map(isTrusted) ?? false, versions: versions,
                                     peer: peer.map { "\($0)" } ?? "unknown peer", maxV2Length: maxV2Length)
    }

    private func run(_ action: ProxyProtocolReceiver.Action, _ context: ChannelHandlerContext) {
        switch action {
        case .wait, .ignore:
            break
        case .accept(let header, let remainder):
            context.fireUserInboundEventTriggered(ProxyProtocolEvent.received(header))
            leave(context, passing: remainder)
        case .passThrough(let bytes):
            leave(context, passing: bytes)
        case .reject(let rejection):
            context.fireUserInboundEventTriggered(ProxyProtocolEvent.rejected(rejection))
            context.close(promise: nil)
        }
    }

    private func leave(_ context: ChannelHandlerContext, passing bytes: ByteBuffer) {
        if bytes.readableBytes > 0 {
            context.fireChannelRead(wrapInboundOut(bytes))
        }
        context.pipeline.syncOperations.removeHandler(context: context, promise: nil)
    }
}

@available(*, unavailable)
extension ProxyProtocolHandler: Sendable {}
