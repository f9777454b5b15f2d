/// One output stream for line-oriented records (JSON lines): standard output or one file.
/// Keys are ignored. A file is capped at `maxBytes`: when a record would cross the cap the
/// file is renamed to `path.1` (replacing an older one) and a fresh file is started, so the
/// disk use stays below about twice `maxBytes`.
///
/// Records are gathered and written with one `write` per batch (`flush`), or when 64 KiB
/// are waiting.
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
    /// Bytes in the file, written or buffered.
    private var size = 0
    private var buffer: [UInt8] = []
    static let bufferLimit = 64 << 10

    /// Opens the file (mode 0600, append) right away so configuration errors show early.
    public init(_ target: Target, gapMarker: GapMarker? = nil) throws {
        self.target = target
        self.gapMarker = gapMarker
        if case .file(let path, _) = target {
            try openFile(path)
        }
    }

    /// Records and bytes gathered but not yet written: lost if the next write fails.
    public private(set) var bufferedRecords = 0
    public var bufferedBytes: Int { buffer.count }

    /// Gathers `bytes`; may first write out what was gathered (file cap, 64 KiB). When that
    /// throws, `bytes` was not taken and the gathered records are lost.
    public func write(key: String, bytes: [UInt8]) throws {
        if !buffer.isEmpty, buffer.count + bytes.count > Self.bufferLimit { try flush() }
        if case .file(let path, let maxBytes) = target {
            if fd >= 0, size > 0, size + bytes.count > maxBytes {
                try flush()
                POSIXFile.closeFD(fd)
                fd = -1
                try POSIXFile.rename(path, path + ".1")
            }
            if fd < 0 { try openFile(path) }
        }
        buffer.append(contentsOf: bytes)
        bufferedRecords += 1
        size += bytes.count
    }

    public func flush() throws {
        guard !buffer.isEmpty else { return }
        defer {
            buffer.removeAll(keepingCapacity: buffer.count <= Self.bufferLimit * 2)
            bufferedRecords = 0
        }
        switch target {
        case .standardOutput:
            let (_, error) = POSIXFile.writeAll(1, buffer)
            if let error { throw SpoolIOError(operation: "write", path: "<stdout>", errno: error) }
        case .file(let path, _):
            let (written, error) = POSIXFile.writeAll(fd, buffer)
            size -= buffer.count - written
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
        try? flush()
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
