import NIOCore
import NIOSSL
import NIOTLS
import TDS

/// The socket-side handler of a TDS client connection (tdsgate to Azure SQL). In TDS 7.x the
/// client's TLS handshake records go out inside PRELOGIN packets and the server's come back
/// the same way; once the handshake completes, records flow raw. In strict mode TLS starts
/// first and this handler only passes bytes through.
public final class TDSClientTransportHandler: ChannelDuplexHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    public typealias InboundOut = ByteBuffer
    public typealias OutboundIn = ByteBuffer
    public typealias OutboundOut = ByteBuffer

    private enum Mode { case plain, handshake, tls }
    private var mode: Mode = .plain
    private var pending: ByteBuffer?
    private var packetID: UInt8 = 1

    public init() {}

    /// Called before the TLS handler is added: wrap its records from now on.
    public func beginHandshakeInPrelogin() { mode = .handshake }

    /// Called when the TLS handshake completed: records flow raw both ways.
    public func handshakeCompleted() { mode = .tls }

    /// Nothing left to do but pass bytes through: the handler can leave the pipeline.
    public var isPassThrough: Bool { mode != .handshake && pending == nil }

    public func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard mode == .handshake else {
            context.fireChannelRead(data)
            return
        }
        var buffer = unwrapInboundIn(data)
        if var p = pending {
            p.writeBuffer(&buffer)
            buffer = p
            pending = nil
        }
        while buffer.readableBytes > 0 {
            let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self)!
            if (0x14...0x17).contains(first) {
                // Raw records already: hand over everything that is left.
                context.fireChannelRead(wrapInboundOut(buffer.readSlice(length: buffer.readableBytes)!))
                return
            }
            guard buffer.readableBytes >= TDSPacketHeader.size,
                  let length = buffer.getInteger(at: buffer.readerIndex + 2, endianness: .big, as: UInt16.self)
            else { break }
            guard length >= 8 else {
                context.fireErrorCaught(TransportError.badHandshakePacket(length: Int(length)))
                context.close(promise: nil)
                return
            }
            guard buffer.readableBytes >= Int(length) else { break }
            buffer.moveReaderIndex(forwardBy: TDSPacketHeader.size)
            let payload = buffer.readSlice(length: Int(length) - TDSPacketHeader.size)!
            if payload.readableBytes > 0 { context.fireChannelRead(wrapInboundOut(payload)) }
        }
        if buffer.readableBytes > 0 { pending = buffer }
    }

    public func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        guard mode == .handshake else {
            context.write(data, promise: promise)
            return
        }
        let out = HandshakeFraming.wrap(unwrapOutboundIn(data), packetID: &packetID, allocator: context.channel.allocator)
        context.write(wrapOutboundOut(out), promise: promise)
    }
}

/// Sits above the TLS handler and reports the end of the handshake (or its failure).
public final class TLSHandshakeObserver: ChannelInboundHandler, RemovableChannelHandler {
    public typealias InboundIn = ByteBuffer
    private let completed: EventLoopPromise<String?>
    private var done = false

    public init(completed: EventLoopPromise<String?>) {
        self.completed = completed
    }

    private func finish(_ result: Result<String?, any Error>) {
        guard !done else { return }
        done = true
        completed.completeWith(result)
    }

    public func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if case .handshakeCompleted(let alpn)? = event as? TLSUserEvent {
            finish(.success(alpn))
        }
        context.fireUserInboundEventTriggered(event)
    }

    public func errorCaught(context: ChannelHandlerContext, error: any Error) {
        finish(.failure(error))
        context.fireErrorCaught(error)
    }

    public func channelInactive(context: ChannelHandlerContext) {
        finish(.failure(ChannelError.ioOnClosedChannel))
        context.fireChannelInactive()
    }

    public func handlerRemoved(context: ChannelHandlerContext) {
        finish(.failure(ChannelError.ioOnClosedChannel))
    }
}
