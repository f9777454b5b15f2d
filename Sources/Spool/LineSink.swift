/// One output stream for line-oriented records (JSON lines): standard output or one file.
/// Keys are ignored. A file is capped at `maxBytes`: when a record would cross the cap the
/// file is renamed to `path.1` (replacing an older one) and a fresh file is started, so the
/// disk use stays below about twice `maxBytes`.
///
/// Used only on a `SpoolWriter`'s thread (not thread-safe).
public final class LineSink: SpoolSink {
    public enum Target: Sendable, Equatable {
        case standardOutput
        case file(path: String, maxBytes: Int)
    }

    public typealias GapMarker = (_ key: String, _ droppedRecords: Int, _ droppedBytes: Int) -> [UInt8]?

    public let target: Target
    private let gapMarker: GapMarker?
    private var fd: Int32 = -1
    private var size = 0

    /// Opens the file (mode 0600, append) right away so configuration errors show early.
    public init(_ target: Target, gapMarker: GapMarker? = nil) throws {
        self.target = target
        self.gapMarker = gapMarker
        if case .file(let path, _) = target {
            try openFile(path)
        }
    }

    public func write(key: String, bytes: [UInt8]) throws {
        switch target {
        case .standardOutput:
            let (_, error) = POSIXFile.writeAll(1, bytes)
            if let error { throw SpoolIOError(operation: "write", path: "<stdout>", errno: error) }
        case .file(let path, let maxBytes):
            if fd >= 0, size > 0, size + bytes.count > maxBytes {
                POSIXFile.closeFD(fd)
                fd = -1
                try POSIXFile.rename(path, path + ".1")
            }
            if fd < 0 { try openFile(path) }
            let (written, error) = POSIXFile.writeAll(fd, bytes)
            size += written
            if let error { throw SpoolIOError(operation: "write", path: path, errno: error) }
        }
    }

    public func close(key: String) throws {}

    public func gap(key: String, droppedRecords: Int, droppedBytes: Int) throws {
        if let marker = gapMarker?(key, droppedRecords, droppedBytes), !marker.isEmpty {
            try write(key: key, bytes: marker)
        }
    }

    public func shutdown() {
        if fd >= 0 { POSIXFile.closeFD(fd) }
        fd = -1
    }

    private func openFile(_ path: String) throws {
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            try POSIXFile.makeDirectory(String(path[..<slash]))
        }
        fd = try POSIXFile.openAppend(path)
        size = POSIXFile.size(ofFD: fd) ?? 0
    }
}
