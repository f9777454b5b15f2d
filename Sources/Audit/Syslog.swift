import Foundation
import Spool

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Where and how audit events go to syslog.
public struct SyslogConfiguration: Sendable, Hashable {
    public enum Transport: String, Sendable, Hashable, CaseIterable { case udp, tcp }

    public enum Facility: Int, Sendable, Hashable, CaseIterable {
        case kern = 0, user = 1, daemon = 3, auth = 4, syslog = 5, authpriv = 10
        case local0 = 16, local1, local2, local3, local4, local5, local6, local7
    }

    public var host: String
    public var port: Int
    public var transport: Transport
    public var facility: Facility
    public var appName: String
    /// HOSTNAME in the header; nil uses the machine's host name.
    public var hostname: String?
    /// UDP messages longer than this are cut and end with `maxDatagramMarker`.
    public var maxDatagramBytes: Int
    /// TCP connect timeout and send timeout (on the writer thread, never the caller's).
    public var timeout: Duration
    /// Reconnect backoff: starts at `minBackoff`, doubles per failure up to `maxBackoff`.
    public var minBackoff: Duration
    public var maxBackoff: Duration

    public static let maxDatagramMarker = "...[truncated]"

    public init(
        host: String, port: Int = 514, transport: Transport = .udp, facility: Facility = .authpriv,
        appName: String = "tdsgate", hostname: String? = nil, maxDatagramBytes: Int = 8192,
        timeout: Duration = .seconds(2), minBackoff: Duration = .milliseconds(250), maxBackoff: Duration = .seconds(30)
    ) {
        self.host = host
        self.port = port
        self.transport = transport
        self.facility = facility
        self.appName = appName
        self.hostname = hostname
        self.maxDatagramBytes = maxDatagramBytes
        self.timeout = timeout
        self.minBackoff = minBackoff
        self.maxBackoff = maxBackoff
    }
}

/// RFC 5424 message: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID - JSON`
/// with PRI = facility * 8 + severity (notice 5 for denials/failures, info 6 otherwise) and
/// MSGID = the event name. No transport framing.
public struct SyslogFormatter: Sendable {
    public let facility: SyslogConfiguration.Facility
    public let hostname: String
    public let appName: String
    public let procID: String

    public init(facility: SyslogConfiguration.Facility, hostname: String?, appName: String, procID: String? = nil) {
        self.facility = facility
        self.hostname = Self.headerField(hostname ?? Self.localHostName(), maxLength: 255)
        self.appName = Self.headerField(appName, maxLength: 48)
        self.procID = Self.headerField(procID ?? String(getpid()), maxLength: 128)
    }

    public func format(_ event: AuditEvent) -> [UInt8] {
        let pri = facility.rawValue * 8 + event.severity.rawValue
        let msgID = Self.headerField(event.name, maxLength: 32)
        var out = Array("<\(pri)>1 \(RFC3339.string(from: event.time)) \(hostname) \(appName) \(procID) \(msgID) - ".utf8)
        out.append(contentsOf: event.jsonBytes())
        return out
    }

    /// Header fields are printable US-ASCII without spaces; "-" when empty.
    static func headerField(_ value: String, maxLength: Int) -> String {
        let cleaned = String(String.UnicodeScalarView(value.unicodeScalars.prefix(maxLength).map {
            (33...126).contains($0.value) ? $0 : "_"
        }))
        return cleaned.isEmpty ? "-" : cleaned
    }

    static func localHostName() -> String {
        var buffer = [CChar](repeating: 0, count: 256)
        guard gethostname(&buffer, buffer.count - 1) == 0 else { return "-" }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Sends formatted messages over UDP (one datagram each, cut at `maxDatagramBytes`) or TCP
/// (RFC 6587 octet counting: `LEN SP MSG`). Runs on the spool writer thread only. While
/// disconnected, records are refused (`SpoolRejection(.disconnected)`, counted as drops) and
/// reconnection is tried with exponential backoff; once a message gets through again, an
/// `audit_dropped` event tells the receiver how many were lost.
final class SyslogSink: SpoolSink {
    private let config: SyslogConfiguration
    private let formatter: SyslogFormatter
    private var fd: Int32 = -1
    private var nextAttempt = ContinuousClock.now
    private var backoff: Duration
    private var lostQueueFull = 0
    private var lostQueueFullBytes = 0
    private var lostDisconnected = 0

    init(config: SyslogConfiguration, formatter: SyslogFormatter) {
        self.config = config
        self.formatter = formatter
        self.backoff = config.minBackoff
    }

    func write(key: String, bytes: [UInt8]) throws {
        let connected: Bool
        do {
            connected = try connectIfDue()
        } catch {
            lostDisconnected += 1
            throw error
        }
        guard connected else {
            lostDisconnected += 1
            throw SpoolRejection(.disconnected)
        }
        do {
            try sendDropNotices()
            try send(bytes)
        } catch {
            lostDisconnected += 1
            disconnect()
            throw error
        }
    }

    func close(key: String) throws {}

    func gap(key: String, droppedRecords: Int, droppedBytes: Int) throws {
        lostQueueFull += droppedRecords
        lostQueueFullBytes += droppedBytes
        guard fd >= 0 else { return }  // told on reconnect
        do {
            try sendDropNotices()
        } catch {
            disconnect()
            throw error
        }
    }

    func shutdown() {
        if fd >= 0 { try? sendDropNotices() }
        disconnect()
    }

    // MARK: internals

    private func sendDropNotices() throws {
        if lostQueueFull > 0 {
            try send(formatter.format(.auditDropped(droppedEvents: lostQueueFull, droppedBytes: lostQueueFullBytes, reason: .queueFull)))
            lostQueueFull = 0
            lostQueueFullBytes = 0
        }
        if lostDisconnected > 0 {
            try send(formatter.format(.auditDropped(droppedEvents: lostDisconnected, droppedBytes: nil, reason: .disconnected)))
            lostDisconnected = 0
        }
    }

    private func disconnect() {
        if fd >= 0 { _ = Self.closeSocket(fd) }
        fd = -1
    }

    /// True when connected; false while waiting out the backoff; throws when an attempt
    /// fails (so the failure gets counted and logged).
    private func connectIfDue() throws -> Bool {
        if fd >= 0 {
            if config.transport == .tcp, peerClosed(fd) { disconnect() } else { return true }
        }
        let now = ContinuousClock.now
        guard now >= nextAttempt else { return false }
        do {
            fd = try openSocket()
            backoff = config.minBackoff
            return true
        } catch {
            nextAttempt = now + backoff
            backoff = min(backoff * 2, config.maxBackoff)
            throw error
        }
    }

    private func failure(_ operation: String, _ code: Int32 = errno) -> SpoolIOError {
        SpoolIOError(operation: operation, path: "syslog \(config.transport.rawValue)://\(config.host):\(config.port)", errno: code)
    }

    private func openSocket() throws -> Int32 {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        #if canImport(Darwin)
        hints.ai_socktype = config.transport == .udp ? SOCK_DGRAM : SOCK_STREAM
        #else
        hints.ai_socktype = Int32(config.transport == .udp ? SOCK_DGRAM.rawValue : SOCK_STREAM.rawValue)
        #endif
        var result: UnsafeMutablePointer<addrinfo>?
        let rc = getaddrinfo(config.host, String(config.port), &hints, &result)
        guard rc == 0, let first = result else {
            throw failure("resolve", rc == EAI_SYSTEM ? errno : EHOSTUNREACH)
        }
        defer { freeaddrinfo(first) }
        var lastError = failure("connect", ECONNREFUSED)
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            cursor = info.pointee.ai_next
            let sock = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
            if sock < 0 {
                lastError = failure("socket")
                continue
            }
            do {
                try configure(sock)
                try connect(sock, info.pointee.ai_addr, info.pointee.ai_addrlen)
                return sock
            } catch {
                lastError = error
                _ = Self.closeSocket(sock)
            }
        }
        throw lastError
    }

    private func configure(_ sock: Int32) throws(SpoolIOError) {
        var on: Int32 = 1
        #if canImport(Darwin)
        _ = setsockopt(sock, SOL_SOCKET, SO_NOSIGPIPE, &on, socklen_t(MemoryLayout<Int32>.size))
        #endif
        if config.transport == .tcp {
            _ = setsockopt(sock, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        }
        let parts = config.timeout.components
        var timeout = timeval(tv_sec: .init(parts.seconds), tv_usec: .init(parts.attoseconds / 1_000_000_000_000))
        _ = setsockopt(sock, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// connect(2) with a timeout (non-blocking connect + poll), then back to blocking mode
    /// with a send timeout.
    private func connect(_ sock: Int32, _ address: UnsafeMutablePointer<sockaddr>?, _ length: socklen_t) throws(SpoolIOError) {
        let flags = fcntl(sock, F_GETFL, 0)
        _ = fcntl(sock, F_SETFL, flags | O_NONBLOCK)
        #if canImport(Darwin)
        let rc = Darwin.connect(sock, address, length)
        #elseif canImport(Glibc)
        let rc = Glibc.connect(sock, address, length)
        #else
        let rc = Musl.connect(sock, address, length)
        #endif
        if rc != 0 {
            guard errno == EINPROGRESS else { throw failure("connect") }
            var pfd = pollfd(fd: sock, events: Int16(POLLOUT), revents: 0)
            let millis = Int32(config.timeout.components.seconds * 1000 + config.timeout.components.attoseconds / 1_000_000_000_000_000)
            let ready = poll(&pfd, 1, millis)
            if ready == 0 { throw failure("connect", ETIMEDOUT) }
            if ready < 0 { throw failure("poll") }
            var soError: Int32 = 0
            var size = socklen_t(MemoryLayout<Int32>.size)
            _ = getsockopt(sock, SOL_SOCKET, SO_ERROR, &soError, &size)
            if soError != 0 { throw failure("connect", soError) }
        }
        _ = fcntl(sock, F_SETFL, flags & ~O_NONBLOCK)
    }

    /// A TCP peer that closed or reset shows up as readable with 0 bytes (or an error).
    private func peerClosed(_ sock: Int32) -> Bool {
        var pfd = pollfd(fd: sock, events: Int16(POLLIN), revents: 0)
        guard poll(&pfd, 1, 0) > 0 else { return false }
        if pfd.revents & Int16(POLLERR | POLLHUP) != 0 { return true }
        var byte: UInt8 = 0
        let n = recv(sock, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT))
        if n == 0 { return true }
        if n < 0, errno != EAGAIN, errno != EWOULDBLOCK, errno != EINTR { return true }
        // Unexpected data from a syslog server: discard it.
        if n > 0 { var sink = [UInt8](repeating: 0, count: 4096); _ = recv(sock, &sink, sink.count, Int32(MSG_DONTWAIT)) }
        return false
    }

    private func send(_ message: [UInt8]) throws(SpoolIOError) {
        switch config.transport {
        case .udp:
            let datagram = Self.truncated(message, to: config.maxDatagramBytes)
            let n = datagram.withUnsafeBytes { raw in Self.sendBytes(fd, raw.baseAddress!, raw.count) }
            if n < 0 { throw failure("send") }
        case .tcp:
            var frame = Array("\(message.count) ".utf8)
            frame.append(contentsOf: message)
            var offset = 0
            while offset < frame.count {
                let n = frame.withUnsafeBytes { raw in Self.sendBytes(fd, raw.baseAddress! + offset, raw.count - offset) }
                if n < 0 {
                    if errno == EINTR { continue }
                    throw failure("send")
                }
                offset += n
            }
        }
    }

    /// Cut to `limit` bytes at a UTF-8 boundary, ending with the truncation marker.
    static func truncated(_ message: [UInt8], to limit: Int) -> [UInt8] {
        guard message.count > limit else { return message }
        let marker = Array(SyslogConfiguration.maxDatagramMarker.utf8)
        var cut = max(0, limit - marker.count)
        while cut > 0, cut < message.count, message[cut] & 0xC0 == 0x80 { cut -= 1 }
        return Array(message[..<cut]) + marker
    }

    private static func sendBytes(_ sock: Int32, _ pointer: UnsafeRawPointer, _ count: Int) -> Int {
        #if canImport(Darwin)
        return Darwin.send(sock, pointer, count, 0)
        #elseif canImport(Glibc)
        return Glibc.send(sock, pointer, count, Int32(MSG_NOSIGNAL))
        #else
        return Musl.send(sock, pointer, count, Int32(MSG_NOSIGNAL))
        #endif
    }

    private static func closeSocket(_ sock: Int32) -> Int32 {
        #if canImport(Darwin)
        return Darwin.close(sock)
        #elseif canImport(Glibc)
        return Glibc.close(sock)
        #else
        return Musl.close(sock)
        #endif
    }
}
