import Gateway
import Histogram
import NIOCore
import NIOPosix
import NIOSSL
import TDS
import TDSNIO

#if canImport(Glibc)
import Glibc
#endif

/// Why a bench connection failed.
struct BenchClientError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// The server's certificate did not pass the checks (chain to a trusted root, validity,
/// the name expected): retrying will not help, a trust setting or the name must change.
struct BenchCertificateError: Error, CustomStringConvertible {
    /// `host:port` dialled.
    var address: String
    /// The name the certificate had to carry.
    var tlsName: String
    var reason: String
    var description: String { "the TLS certificate of \(address) could not be verified for the name '\(tlsName)': \(reason)" }

    /// The certificate problem in `error` (from the TLS handshake), or nil when it is another failure.
    static func reason(_ error: any Error) -> String? {
        if let e = error as? NIOSSLExtraError, e == .failedToValidateHostname {
            return "it does not carry that name"
        }
        guard let e = error as? NIOSSLError else { return nil }
        switch e {
        case .handshakeFailed(let inner):
            let text = "\(inner)"
            guard text.contains("CERTIFICATE_VERIFY_FAILED") else { return nil }
            return "it is not signed by a trusted CA, or it has expired (CERTIFICATE_VERIFY_FAILED)"
        case .unableToValidateCertificate:
            return "it does not carry that name"
        case .noCertificateToValidate:
            return "the server sent no certificate"
        default:
            return nil
        }
    }
}

/// An ERROR token from the server: its number matters to the drill's report.
struct BenchServerError: Error, CustomStringConvertible {
    var number: Int32
    var message: String
    var description: String { "error \(number): \(message)" }
}

/// What the client kept of one reply: the whole message when asked to collect it, else only
/// its size and its last bytes (where the final DONE token sits).
struct BenchReply: Sendable {
    var payload: ByteBuffer?
    var payloadBytes: Int
    var packets: Int
    var tail: [UInt8]
}

/// The final DONE token of a reply, read from the reply's last 13 bytes.
struct FinalDone: Equatable, Sendable {
    var status: UInt16
    var rowCount: UInt64

    static let length = 13

    /// nil when the bytes do not end in a DONE token (0xFD).
    init?(tail: [UInt8]) {
        guard tail.count >= Self.length else { return nil }
        let t = Array(tail.suffix(Self.length))
        guard t[0] == TDSTokenType.done else { return nil }
        status = UInt16(t[1]) | UInt16(t[2]) << 8
        var n: UInt64 = 0
        for i in 0..<8 { n |= UInt64(t[5 + i]) << (8 * UInt64(i)) }
        rowCount = n
    }

    var isError: Bool { status & 0x0002 != 0 || status & 0x0100 != 0 }
    var hasMore: Bool { status & 0x0001 != 0 }
}

/// Keeps the last `FinalDone.length` bytes of a reply that arrives packet by packet.
struct ReplyTail: Sendable {
    private(set) var bytes: [UInt8] = []

    mutating func append(_ payload: ByteBuffer) {
        let n = payload.readableBytes
        if n >= FinalDone.length {
            bytes = payload.getBytes(at: payload.readerIndex + n - FinalDone.length, length: FinalDone.length) ?? []
        } else if n > 0 {
            bytes += payload.getBytes(at: payload.readerIndex, length: n) ?? []
            if bytes.count > FinalDone.length { bytes.removeFirst(bytes.count - FinalDone.length) }
        }
    }

    mutating func reset() { bytes.removeAll(keepingCapacity: true) }
}

/// The top of a bench connection's pipeline: cuts the (decrypted) byte stream into TDS
/// packets and completes one reply per message (EOM). Small replies are collected whole;
/// large result sets are only counted, so the client reads as fast as the socket allows.
/// A query loop runs entirely on the event loop (no task hops between queries), which is
/// what makes latency figures comparable across targets.
final class BenchTDSHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private var context: ChannelHandlerContext?
    /// Kept after the handler leaves the pipeline, for failed futures.
    private var eventLoop: (any EventLoop)?
    private var cumulation: ByteBuffer?
    private var collect = true
    private var message = ByteBuffer()
    private var messageBytes = 0
    private var packets = 0
    private var tail = ReplyTail()
    private var waiter: EventLoopPromise<BenchReply>?
    private var timeout: Scheduled<Void>?
    private var failure: (any Error)?
    private var loop: QueryLoop?

    /// A run of identical requests on one connection, each sent when the previous reply ended.
    struct QueryLoop {
        var request: ByteBuffer
        var remaining: Int
        var deadline: NIODeadline
        var sentAt: NIODeadline
        var histogram: Histogram<UInt64>
        var promise: EventLoopPromise<Histogram<UInt64>>
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        self.eventLoop = context.eventLoop
    }
    func handlerRemoved(context: ChannelHandlerContext) { self.context = nil }

    /// Sends `request` and completes with the reply. Call on the event loop.
    func request(_ request: ByteBuffer, collect: Bool, timeout: TimeAmount) -> EventLoopFuture<BenchReply> {
        guard let context else { return failedFuture(BenchClientError("the connection is closed")) }
        if let failure { return context.eventLoop.makeFailedFuture(failure) }
        guard waiter == nil, loop == nil else {
            return context.eventLoop.makeFailedFuture(BenchClientError("a request is already outstanding"))
        }
        let p = context.eventLoop.makePromise(of: BenchReply.self)
        waiter = p
        startMessage(collect: collect)
        armTimeout(context, timeout)
        context.writeAndFlush(NIOAny(request), promise: nil)
        return p.futureResult
    }

    /// Runs `count` requests back to back (or until `deadline`), recording each round trip
    /// in nanoseconds. Call on the event loop.
    func queryLoop(_ request: ByteBuffer, count: Int, deadline: NIODeadline, replyTimeout: TimeAmount) -> EventLoopFuture<Histogram<UInt64>> {
        guard let context else { return failedFuture(BenchClientError("the connection is closed")) }
        if let failure { return context.eventLoop.makeFailedFuture(failure) }
        let p = context.eventLoop.makePromise(of: Histogram<UInt64>.self)
        var h = Histogram<UInt64>(highestTrackableValue: 120_000_000_000, numberOfSignificantValueDigits: .three)
        h.autoResize = true
        guard count > 0, waiter == nil, loop == nil else {
            p.succeed(h)
            return p.futureResult
        }
        loop = QueryLoop(request: request, remaining: count - 1, deadline: deadline, sentAt: .now(), histogram: h, promise: p)
        startMessage(collect: false)
        armTimeout(context, replyTimeout)
        loopTimeout = replyTimeout
        context.writeAndFlush(NIOAny(request), promise: nil)
        return p.futureResult
    }

    private var loopTimeout: TimeAmount = .seconds(30)

    private func failedFuture<T>(_ error: any Error) -> EventLoopFuture<T> {
        eventLoop!.makeFailedFuture(error)
    }

    private func startMessage(collect: Bool) {
        self.collect = collect
        message = ByteBuffer()
        messageBytes = 0
        packets = 0
        tail.reset()
    }

    private func armTimeout(_ context: ChannelHandlerContext, _ amount: TimeAmount) {
        timeout?.cancel()
        let bound = NIOLoopBound(self, eventLoop: context.eventLoop)
        timeout = context.eventLoop.scheduleTask(in: amount) {
            bound.value.fail(BenchClientError("no complete reply within \(amount.nanoseconds / 1_000_000) ms"), close: true)
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        if var c = cumulation {
            // Complete the pending packet with only the bytes it lacks, so that a large
            // result is not copied once more on every read.
            cumulation = nil
            if c.readableBytes < TDSPacketHeader.size {
                var head = buffer.readSlice(length: min(TDSPacketHeader.size - c.readableBytes, buffer.readableBytes))!
                c.writeBuffer(&head)
                guard c.readableBytes >= TDSPacketHeader.size else {
                    cumulation = c
                    return
                }
            }
            let length = Int(c.getInteger(at: c.readerIndex + 2, endianness: .big, as: UInt16.self)!)
            let missing = length - c.readableBytes
            guard missing <= buffer.readableBytes else {
                c.writeBuffer(&buffer)
                cumulation = c
                return
            }
            if missing > 0 {
                var rest = buffer.readSlice(length: missing)!
                c.writeBuffer(&rest)
            }
            guard readPackets(&c, context: context) else { return }
        }
        guard readPackets(&buffer, context: context) else { return }
        // Less than a packet is left: keep it (a slice, not a copy) for the next read.
        if buffer.readableBytes > 0 { cumulation = buffer }
    }

    /// Hands every whole packet at the front of `buffer` on; false after a fatal error.
    private func readPackets(_ buffer: inout ByteBuffer, context: ChannelHandlerContext) -> Bool {
        while buffer.readableBytes >= TDSPacketHeader.size {
            let at = buffer.readerIndex
            let length = Int(buffer.getInteger(at: at + 2, endianness: .big, as: UInt16.self)!)
            guard length >= TDSPacketHeader.size else {
                fail(BenchClientError("the server sent a TDS packet with length \(length)"), close: true)
                return false
            }
            guard buffer.readableBytes >= length else { break }
            let eom = buffer.getInteger(at: at + 1, as: UInt8.self)! & TDSPacketStatus.endOfMessage.rawValue != 0
            buffer.moveReaderIndex(forwardBy: TDSPacketHeader.size)
            let payload = buffer.readSlice(length: length - TDSPacketHeader.size)!
            packet(payload, eom: eom, context: context)
        }
        return true
    }

    private func packet(_ payload: ByteBuffer, eom: Bool, context: ChannelHandlerContext) {
        messageBytes += payload.readableBytes
        packets += 1
        if collect {
            message.writeImmutableBuffer(payload)
        }
        tail.append(payload)
        guard eom else { return }
        let reply = BenchReply(payload: collect ? message : nil, payloadBytes: messageBytes, packets: packets, tail: tail.bytes)
        startMessage(collect: collect)
        if var l = loop {
            let now = NIODeadline.now()
            guard let done = FinalDone(tail: reply.tail), !done.isError else {
                fail(BenchClientError("a query in the loop failed or did not end in DONE"), close: false)
                return
            }
            _ = l.histogram.record(UInt64(max(0, (now - l.sentAt).nanoseconds)))
            if l.remaining > 0 && now < l.deadline {
                l.remaining -= 1
                l.sentAt = now
                loop = l
                armTimeout(context, loopTimeout)
                context.writeAndFlush(NIOAny(l.request), promise: nil)
            } else {
                loop = nil
                timeout?.cancel()
                timeout = nil
                l.promise.succeed(l.histogram)
            }
            return
        }
        timeout?.cancel()
        timeout = nil
        if let w = waiter {
            waiter = nil
            w.succeed(reply)
        }
    }

    private func fail(_ error: any Error, close: Bool) {
        if failure == nil { failure = error }
        timeout?.cancel()
        timeout = nil
        if let w = waiter {
            waiter = nil
            w.fail(error)
        }
        if let l = loop {
            loop = nil
            l.promise.fail(error)
        }
        if close { context?.close(promise: nil) }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        fail(error, close: true)
    }

    func channelInactive(context: ChannelHandlerContext) {
        fail(BenchClientError("the server closed the connection"), close: false)
        context.fireChannelInactive()
    }
}

/// Client settings shared by every connection of a run.
struct BenchClientSettings: Sendable {
    var packetSize: Int
    var connectTimeout: TimeAmount = .seconds(10)
    var replyTimeout: TimeAmount = .seconds(30)
}

/// Where a bench client connects and how it logs in.
struct BenchEndpoint: Sendable {
    var name: String
    var host: String
    var port: Int
    var tlsName: String
    var tls: NIOSSLContext
    var user: String
    var password: String
    var database: String
    var appName = "tdsgate-bench"
    var readOnlyIntent = false
}

/// A minimal TDS 7.4 client: PRELOGIN (encryption ON), TLS inside PRELOGIN (TLS 1.2),
/// LOGIN7 with a SQL login, then SQL batches. Just enough for the benchmark.
final class BenchConnection: @unchecked Sendable {
    let channel: any Channel
    /// The pipeline's handlers, touched only on the channel's event loop.
    private let transport: NIOLoopBound<TDSClientTransportHandler>
    private let handler: NIOLoopBound<BenchTDSHandler>
    private let settings: BenchClientSettings
    private(set) var negotiatedPacketSize = 4096

    private init(channel: any Channel, transport: NIOLoopBound<TDSClientTransportHandler>, handler: NIOLoopBound<BenchTDSHandler>,
                 settings: BenchClientSettings) {
        self.channel = channel
        self.transport = transport
        self.handler = handler
        self.settings = settings
    }

    /// Connect, PRELOGIN, TLS and LOGIN7: a logged-in session ready for queries.
    static func open(_ endpoint: BenchEndpoint, on loop: any EventLoop, settings: BenchClientSettings) async throws -> BenchConnection {
        let c = try await connect(endpoint, on: loop, settings: settings)
        do {
            try await c.prelogin()
            try await c.startTLS(context: endpoint.tls, serverName: endpoint.tlsName)
            try await c.login(user: endpoint.user, password: endpoint.password, database: endpoint.database, serverName: endpoint.tlsName,
                              appName: endpoint.appName, readOnlyIntent: endpoint.readOnlyIntent)
            return c
        } catch let e as BenchServerError {
            c.channel.close(promise: nil)
            throw e
        } catch let e as BenchCertificateError {
            c.channel.close(promise: nil)
            throw e
        } catch {
            c.channel.close(promise: nil)
            throw BenchClientError("\(endpoint.name) \(endpoint.host):\(endpoint.port): \(error)")
        }
    }

    static func connect(_ endpoint: BenchEndpoint, on loop: any EventLoop, settings: BenchClientSettings) async throws -> BenchConnection {
        let channel = try await ClientBootstrap(group: loop)
            .connectTimeout(settings.connectTimeout)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { ch in
                ch.eventLoop.makeCompletedFuture {
                    try ch.pipeline.syncOperations.addHandlers([TDSClientTransportHandler(), BenchTDSHandler()])
                }
            }
            .connect(host: endpoint.host, port: endpoint.port).get()
        let loop = channel.eventLoop
        let (transport, handler) = try await loop.submit {
            (NIOLoopBound(try channel.pipeline.syncOperations.handler(type: TDSClientTransportHandler.self), eventLoop: loop),
             NIOLoopBound(try channel.pipeline.syncOperations.handler(type: BenchTDSHandler.self), eventLoop: loop))
        }.get()
        return BenchConnection(channel: channel, transport: transport, handler: handler, settings: settings)
    }

    private func send(_ message: TDSMessage, collect: Bool = true, packetSize: Int? = nil, timeout: TimeAmount? = nil) async throws -> BenchReply {
        var out = channel.allocator.buffer(capacity: message.payload.readableBytes + 64)
        message.writePackets(into: &out, packetSize: packetSize ?? negotiatedPacketSize)
        let handler = self.handler
        let t = timeout ?? settings.replyTimeout
        let request = out
        return try await channel.eventLoop.flatSubmit { handler.value.request(request, collect: collect, timeout: t) }.get()
    }

    func prelogin() async throws {
        var request = PreloginMessage()
        request.version = PreloginVersion(major: 16, minor: 0, build: 1000, subBuild: 0)
        request.encryption = .on
        request.instance = ""
        request.threadID = UInt32(truncatingIfNeeded: getpid())
        request.mars = false
        var payload = channel.allocator.buffer(capacity: 64)
        request.write(into: &payload)
        let reply = try await send(TDSMessage(type: .prelogin, payload: payload), packetSize: 4096)
        let response = try PreloginMessage(parsing: reply.payload ?? ByteBuffer())
        guard let mode = response.encryption?.mode, mode == .on || mode == .required else {
            throw BenchClientError("the server does not offer full encryption (PRELOGIN ENCRYPTION \(response.encryption?.rawValue ?? 0xFF))")
        }
    }

    func startTLS(context: NIOSSLContext, serverName: String) async throws {
        let channel = self.channel
        let transport = self.transport
        let address = Self.address(channel)
        let done = channel.eventLoop.makePromise(of: String?.self)
        // SNI cannot carry an IP address; without a host name NIOSSL checks the certificate
        // against the peer's address instead.
        let hostname = CertificateNames.isIPAddress(serverName) ? nil : serverName
        do {
            try await channel.eventLoop.submit {
                let ssl = try NIOSSLClientHandler(context: context, serverHostname: hostname)
                transport.value.beginHandshakeInPrelogin()
                try channel.pipeline.syncOperations.addHandler(ssl, position: .after(transport.value))
                try channel.pipeline.syncOperations.addHandler(TLSHandshakeObserver(completed: done), position: .after(ssl))
            }.get()
        } catch {
            // The observer never got the promise: complete it here, or NIO reports it leaked.
            done.fail(error)
            throw error
        }
        // Closing fails the handshake through the observer (which completes `done` once).
        let timeout = channel.eventLoop.scheduleTask(in: settings.replyTimeout) {
            channel.close(promise: nil)
        }
        defer { timeout.cancel() }
        do {
            // Records flow raw from here on: switch on the event loop, before any other write.
            try await done.futureResult.map { _ in transport.value.handshakeCompleted() }.get()
        } catch {
            if let reason = BenchCertificateError.reason(error) {
                throw BenchCertificateError(address: address, tlsName: serverName, reason: reason)
            }
            throw error
        }
        // NIOSSL also accepts a certificate whose IP address entry matches the peer, whatever
        // name was asked for: check the name as tdsgate does on its own backend leg.
        let certificate = try await channel.nioSSL_peerCertificate().get()
        guard let der = try certificate?.toDERBytes(), CertificateName.matches(serverName, certificateDER: der) else {
            throw BenchCertificateError(address: address, tlsName: serverName, reason: "it does not carry that name")
        }
    }

    private static func address(_ channel: any Channel) -> String {
        guard let remote = channel.remoteAddress else { return "the server" }
        let host = remote.ipAddress ?? "?"
        return (host.contains(":") ? "[\(host)]" : host) + ":\(remote.port ?? 0)"
    }

    func login(user: String, password: String, database: String, serverName: String,
               appName: String = "tdsgate-bench", readOnlyIntent: Bool = false) async throws {
        var login = Login7(
            tdsVersion: 0x7400_0004, packetSize: UInt32(settings.packetSize), clientProgramVersion: 0x1000_0000,
            clientPID: UInt32(truncatingIfNeeded: getpid()), hostName: "tdsgate-bench", userName: user, password: password,
            appName: appName, serverName: serverName, clientInterfaceName: "tdsgate-bench", database: database)
        login.readOnlyIntent = readOnlyIntent
        var payload = channel.allocator.buffer(capacity: 512)
        login.write(into: &payload)
        let reply = try await send(TDSMessage(type: .login7, payload: payload), packetSize: 4096)
        var body = reply.payload ?? ByteBuffer()
        var scanner = TDSTokenScanner()
        let tokens = try scanner.scan(&body)
        var loggedIn = false
        for t in tokens {
            switch t.token {
            case .loginAck?: loggedIn = true
            case .envChange(.packetSize(let new, _))?: negotiatedPacketSize = Int(new) ?? negotiatedPacketSize
            case .error(let m)?: throw BenchServerError(number: m.number, message: m.message)
            default: break
            }
        }
        guard loggedIn else { throw BenchClientError("the login reply has no LOGINACK") }
    }

    /// A SQL batch request, packetised for this connection.
    func batchRequest(_ sql: String) -> ByteBuffer {
        var payload = channel.allocator.buffer(capacity: 64 + sql.utf16.count * 2)
        SQLBatch(text: sql).write(into: &payload)
        var out = channel.allocator.buffer(capacity: payload.readableBytes + 16)
        TDSMessage(type: .sqlBatch, payload: payload).writePackets(into: &out, packetSize: negotiatedPacketSize)
        return out
    }

    /// One SQL batch; the reply is collected and must end in a DONE without ERROR.
    func query(_ sql: String) async throws -> BenchReply {
        let request = batchRequest(sql)
        let handler = self.handler
        let t = settings.replyTimeout
        let reply = try await channel.eventLoop.flatSubmit { handler.value.request(request, collect: true, timeout: t) }.get()
        guard let done = FinalDone(tail: reply.tail), !done.isError else {
            throw BenchClientError("'\(sql)' failed or its reply did not end in DONE")
        }
        return reply
    }

    /// One SQL batch with its reply decoded: rows of the last result set, and every error.
    func execute(_ sql: String) async throws -> (rows: [[TDSValue]], errors: [ServerMessage]) {
        let request = batchRequest(sql)
        let handler = self.handler
        let t = settings.replyTimeout
        let reply = try await channel.eventLoop.flatSubmit { handler.value.request(request, collect: true, timeout: t) }.get()
        var rows: [[TDSValue]] = []
        var errors: [ServerMessage] = []
        for token in try TDSTokenParser.parseAll(reply.payload ?? ByteBuffer()) {
            switch token {
            case .colMetadata: rows = []
            case .row(let values), .nbcRow(let values): rows.append(values)
            case .error(let m): errors.append(m)
            default: break
            }
        }
        return (rows, errors)
    }

    /// Streams a large result without keeping it: payload bytes and the final row count.
    func stream(_ sql: String, timeout: TimeAmount) async throws -> (payloadBytes: Int, packets: Int, rows: UInt64) {
        let request = batchRequest(sql)
        let handler = self.handler
        let reply = try await channel.eventLoop.flatSubmit { handler.value.request(request, collect: false, timeout: timeout) }.get()
        guard let done = FinalDone(tail: reply.tail), !done.isError else {
            throw BenchClientError("'\(sql)' failed or its reply did not end in DONE")
        }
        return (reply.payloadBytes, reply.packets, done.rowCount)
    }

    /// `count` round trips of `sql` back to back on the event loop (bounded by `deadline`).
    func queryLoop(_ sql: String, count: Int, deadline: NIODeadline) async throws -> Histogram<UInt64> {
        let request = batchRequest(sql)
        let handler = self.handler
        let t = settings.replyTimeout
        return try await channel.eventLoop.flatSubmit { handler.value.queryLoop(request, count: count, deadline: deadline, replyTimeout: t) }.get()
    }

    func close() async {
        try? await channel.close()
    }
}
