#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
import Logging
import Synchronization

/// One assignment of the systemd notification protocol (sd_notify(3)); a datagram carries
/// several, one per line.
public enum SystemdNotification: Sendable, Equatable {
    /// Start-up finished (listeners and the admin API are bound), or a reload finished.
    case ready
    /// A reload started; systemd wants `MONOTONIC_USEC` in the same datagram (systemd 253+
    /// `Type=notify-reload` refuses a RELOADING=1 without it).
    case reloading(monotonicMicroseconds: UInt64)
    /// Shutdown started.
    case stopping
    /// Free text `systemctl status` shows.
    case status(String)

    /// The datagram's text: `NAME=value` lines. A status never contains a newline (it would
    /// start another assignment, such as a forged READY=1).
    public static func datagram(_ notifications: [SystemdNotification]) -> String {
        var lines: [String] = []
        for n in notifications {
            switch n {
            case .ready: lines.append("READY=1")
            case .reloading(let usec): lines += ["RELOADING=1", "MONOTONIC_USEC=\(usec)"]
            case .stopping: lines.append("STOPPING=1")
            case .status(let text):
                let flat = String(text.map { $0.isNewline || $0 == "\0" ? " " : $0 })
                lines.append("STATUS=\(flat)")
            }
        }
        return lines.map { $0 + "\n" }.joined()
    }
}

/// Where `NOTIFY_SOCKET` points: an absolute path, or a name in Linux's abstract socket
/// namespace written `@name`.
public enum NotifySocketAddress: Sendable, Equatable {
    case path(String)
    case abstract(String)

    /// sun_path's size on Linux (and the BSDs' is smaller, 104): longer names cannot be sent to.
    static let maxPathBytes = 108

    /// nil for what sd_notify ignores or refuses: empty, relative, too long, or a transport
    /// we do not speak (`vsock:`).
    public init?(environmentValue value: String) {
        if value.hasPrefix("@") {
            let name = String(value.dropFirst())
            guard !name.isEmpty, name.utf8.count + 1 <= Self.maxPathBytes else { return nil }
            self = .abstract(name)
        } else if value.hasPrefix("/") {
            guard value.utf8.count < Self.maxPathBytes else { return nil }
            self = .path(value)
        } else {
            return nil
        }
    }

    /// The bytes of `sun_path` and how many of them the address uses: an abstract name
    /// starts with a NUL and has no terminator (its length is part of the name).
    var sunPath: [UInt8] {
        switch self {
        case .path(let p): Array(p.utf8) + [0]
        case .abstract(let name): [0] + Array(name.utf8)
        }
    }
}

/// Sends notifications to systemd without libsystemd: one AF_UNIX datagram socket, one
/// `sendto` per message. Best effort, like sd_notify: a failure is logged once and never
/// stops tdsgate.
public final class SystemdNotifier: Sendable {
    public let address: NotifySocketAddress
    private let fd: Int32
    private let logger: Logger
    private let failed = Mutex(false)

    /// nil when `NOTIFY_SOCKET` is unset (not started by systemd with `Type=notify`).
    public static func fromEnvironment(_ environment: [String: String], logger: Logger) -> SystemdNotifier? {
        guard let value = environment["NOTIFY_SOCKET"] else { return nil }
        guard let address = NotifySocketAddress(environmentValue: value) else {
            logger.warning("NOTIFY_SOCKET is not an absolute path or @abstract name; not notifying systemd",
                           metadata: ["notify_socket": "\(value)"])
            return nil
        }
        return SystemdNotifier(address: address, logger: logger)
    }

    public init?(address: NotifySocketAddress, logger: Logger) {
        #if os(Linux)
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        #else
        let fd = socket(AF_UNIX, SOCK_DGRAM, 0)
        #endif
        guard fd >= 0 else {
            logger.warning("cannot open a socket for systemd notifications", metadata: ["errno": "\(errno)"])
            return nil
        }
        self.fd = fd
        self.address = address
        self.logger = logger
    }

    deinit { close(fd) }

    public func send(_ notifications: SystemdNotification...) {
        send(notifications)
    }

    public func send(_ notifications: [SystemdNotification]) {
        let bytes = Array(SystemdNotification.datagram(notifications).utf8)
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        let path = address.sunPath
        let pathOffset = MemoryLayout<sockaddr_un>.offset(of: \.sun_path)!
        let used = withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: path.prefix(raw.count))
            return min(path.count, raw.count)
        }
        // A path's length includes its NUL; an abstract name's is exactly its bytes.
        let length = socklen_t(pathOffset + used)
        #if os(Linux)
        let flags = Int32(MSG_NOSIGNAL)
        #else
        let flags: Int32 = 0
        #endif
        let sent = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa in
                bytes.withUnsafeBytes { sendto(fd, $0.baseAddress, $0.count, flags, sa, length) }
            }
        }
        if sent < 0 {
            let code = errno
            if failed.withLock({ f in defer { f = true }; return !f }) {
                logger.warning("cannot notify systemd", metadata: ["notify_socket": "\(address)", "errno": "\(code)"])
            }
        }
    }

    /// CLOCK_MONOTONIC in microseconds: the clock systemd compares `MONOTONIC_USEC` with.
    public static func monotonicMicroseconds() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000 + UInt64(ts.tv_nsec) / 1_000
    }
}
