/// One unit of work for a `SpoolWriter`: bytes for a destination, or the end of it.
public struct SpoolRecord: Sendable, Equatable {
    public enum Kind: Sendable, Equatable {
        /// Append `bytes` to the destination.
        case append
        /// Append `bytes` (may be empty), then close the destination (its file becomes
        /// eligible for deletion under a total-size cap).
        case close
    }

    /// Destination, e.g. a relative file name such as `"session-42.txt"`.
    public var key: String
    public var bytes: [UInt8]
    public var kind: Kind

    public init(key: String, bytes: [UInt8], kind: Kind = .append) {
        self.key = key
        self.bytes = bytes
        self.kind = kind
    }

    public static func close(key: String, bytes: [UInt8] = []) -> SpoolRecord {
        SpoolRecord(key: key, bytes: bytes, kind: .close)
    }
}

/// Thrown by a sink to say "this record was refused on purpose" (disk cap, peer down,
/// invalid key). The writer counts it as dropped (`rejected*` in the stats), not as an error.
public struct SpoolRejection: Error, Sendable, Equatable {
    public enum Reason: String, Sendable {
        case diskCap = "disk_cap"
        case invalidKey = "invalid_key"
        case disconnected = "disconnected"
    }

    public var reason: Reason

    public init(_ reason: Reason) {
        self.reason = reason
    }
}

/// An I/O failure inside a sink (disk full, permission denied, ...).
public struct SpoolIOError: Error, Sendable, Equatable, CustomStringConvertible {
    public var operation: String
    public var path: String
    public var errno: Int32

    public init(operation: String, path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String {
        "\(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif
