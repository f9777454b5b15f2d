/// Files in one directory, one per key, with a per-file size cap (rotation) and a total
/// cap for the directory (oldest closed or rotated files are deleted first; when nothing
/// is left to delete, writes are refused with `SpoolRejection(.diskCap)`).
///
/// - The directory is created with mode 0700, files with 0600.
/// - Files are opened lazily, in append mode; at most `maxOpenFiles` descriptors are held
///   (least recently used ones are closed and reopened on demand).
/// - Rotation: `name` -> `name.1`, `name.1` -> `name.2`, ... up to `keepRotated` files per
///   key; the new `name` starts with the key's header again (pcapng needs its section
///   header block in every file).
/// - Sizes are tracked from what this sink writes (one directory scan at start-up, no
///   `stat` per write). The directory total never exceeds `maxTotalBytes`, counting
///   files present at start-up.
/// - Keys must be plain file names: no `/`, not starting with `.`, no NUL.
///
/// Used only on a `SpoolWriter`'s thread (not thread-safe).
public final class RotatingFileSink: SpoolSink {
    public typealias HeaderProvider = (_ key: String) -> [UInt8]
    /// Bytes to append where records were dropped, or nil to write nothing.
    public typealias GapMarker = (_ key: String, _ droppedRecords: Int, _ droppedBytes: Int) -> [UInt8]?

    public let directory: String
    public let maxFileBytes: Int
    public let maxTotalBytes: Int
    public let keepRotated: Int
    public let maxOpenFiles: Int
    private let header: HeaderProvider?
    private let gapMarker: GapMarker?

    private struct FileInfo {
        var size: Int
        var order: UInt64       // sequence number of the last write (age for eviction)
        var generation: UInt64  // bumps whenever the file changes state; stale heap entries
        var active: Bool        // the current file of a key that is not closed
    }

    private struct KeyState {
        var headerSize = 0  // header bytes at the start of the current file
    }

    private var files: [String: FileInfo] = [:]
    private var keys: [String: KeyState] = [:]
    private var open: [String: (fd: Int32, lastUse: UInt64)] = [:]
    private var candidates = MinHeap()
    private var sequence: UInt64 = 0
    private var generation: UInt64 = 0

    /// Bytes currently in the directory (as tracked by this sink).
    public private(set) var totalBytes = 0
    /// Records refused because of the total cap.
    public private(set) var diskCapRejections = 0
    /// Files deleted to stay under the total cap.
    public private(set) var evictedFiles = 0

    public init(
        directory: String,
        maxFileBytes: Int,
        maxTotalBytes: Int,
        keepRotated: Int = 3,
        maxOpenFiles: Int = 64,
        header: HeaderProvider? = nil,
        gapMarker: GapMarker? = nil
    ) throws {
        precondition(maxFileBytes > 0 && maxTotalBytes > 0 && keepRotated >= 0 && maxOpenFiles > 0)
        self.directory = directory.hasSuffix("/") && directory.count > 1 ? String(directory.dropLast()) : directory
        self.maxFileBytes = maxFileBytes
        self.maxTotalBytes = maxTotalBytes
        self.keepRotated = keepRotated
        self.maxOpenFiles = maxOpenFiles
        self.header = header
        self.gapMarker = gapMarker
        try POSIXFile.makeDirectory(self.directory)
        // Files left from an earlier run count towards the cap and are deleted first.
        for entry in POSIXFile.listFiles(self.directory).sorted(by: { ($0.modified, $0.name) < ($1.modified, $1.name) }) {
            sequence += 1
            generation += 1
            files[entry.name] = FileInfo(size: entry.size, order: sequence, generation: generation, active: false)
            candidates.push(.init(order: sequence, generation: generation, name: entry.name))
            totalBytes += entry.size
        }
    }

    /// A gap marker for text dumps: `# N records (M bytes) dropped here`.
    /// Pass as `gapMarker: RotatingFileSink.textGapMarker`.
    public static func textGapMarker(key: String, droppedRecords: Int, droppedBytes: Int) -> [UInt8]? {
        Array("# spool: \(droppedRecords) record(s), \(droppedBytes) byte(s) dropped here (queue full)\n".utf8)
    }

    // MARK: SpoolSink

    public func write(key: String, bytes: [UInt8]) throws {
        guard Self.isValidKey(key) else { throw SpoolRejection(.invalidKey) }
        activate(key)
        var current = files[key]?.size ?? 0
        if current > keys[key]!.headerSize, current + bytes.count > maxFileBytes {
            try rotate(key)
            current = 0
        }
        let head: [UInt8] = current == 0 ? (header?(key) ?? []) : []
        let needed = head.count + bytes.count
        guard makeRoom(for: needed) else {
            diskCapRejections += 1
            throw SpoolRejection(.diskCap)
        }
        let fd = try descriptor(for: key)
        if !head.isEmpty {
            try append(head, to: key, fd: fd)
            keys[key]!.headerSize = head.count
        }
        try append(bytes, to: key, fd: fd)
    }

    public func close(key: String) throws {
        closeDescriptor(key)
        guard keys.removeValue(forKey: key) != nil else { return }
        if var info = files[key] {
            generation += 1
            info.generation = generation
            info.active = false
            files[key] = info
            pushCandidate(name: key, info)
        }
    }

    public func gap(key: String, droppedRecords: Int, droppedBytes: Int) throws {
        guard let marker = gapMarker?(key, droppedRecords, droppedBytes), !marker.isEmpty else { return }
        let wasActive = keys[key] != nil
        try write(key: key, bytes: marker)
        if !wasActive { try close(key: key) }
    }

    public func shutdown() {
        for (_, entry) in open { POSIXFile.closeFD(entry.fd) }
        open.removeAll()
    }

    // MARK: internals

    static func isValidKey(_ key: String) -> Bool {
        !key.isEmpty && key.utf8.count <= 240 && !key.hasPrefix(".")
            && !key.utf8.contains(UInt8(ascii: "/")) && !key.utf8.contains(0)
    }

    private func path(_ name: String) -> String { directory + "/" + name }

    private func activate(_ key: String) {
        guard keys[key] == nil else { return }
        keys[key] = KeyState()
        if var info = files[key] {
            generation += 1
            info.generation = generation
            info.active = true
            files[key] = info
        }
    }

    private func descriptor(for key: String) throws -> Int32 {
        sequence += 1
        if let entry = open[key] {
            open[key] = (entry.fd, sequence)
            return entry.fd
        }
        if open.count >= maxOpenFiles, let victim = open.min(by: { $0.value.lastUse < $1.value.lastUse })?.key {
            closeDescriptor(victim)
        }
        let fd = try POSIXFile.openAppend(path(key))
        open[key] = (fd, sequence)
        if files[key] == nil {
            files[key] = FileInfo(size: 0, order: sequence, generation: generation, active: true)
        }
        return fd
    }

    private func closeDescriptor(_ key: String) {
        if let entry = open.removeValue(forKey: key) { POSIXFile.closeFD(entry.fd) }
    }

    private func append(_ bytes: [UInt8], to key: String, fd: Int32) throws {
        let (written, error) = POSIXFile.writeAll(fd, bytes)
        sequence += 1
        files[key]!.size += written
        files[key]!.order = sequence
        totalBytes += written
        if let error {
            throw SpoolIOError(operation: "write", path: path(key), errno: error)
        }
    }

    /// Deletes the oldest inactive files until `bytes` more fit under the total cap.
    private func makeRoom(for bytes: Int) -> Bool {
        while totalBytes + bytes > maxTotalBytes {
            guard let oldest = candidates.pop() else { return false }
            guard let info = files[oldest.name], info.generation == oldest.generation, !info.active else { continue }
            if POSIXFile.remove(path(oldest.name)) {
                files.removeValue(forKey: oldest.name)
                totalBytes -= info.size
                evictedFiles += 1
            }
        }
        return true
    }

    private func pushCandidate(name: String, _ info: FileInfo) {
        candidates.push(.init(order: info.order, generation: info.generation, name: name))
        // Stale entries are skipped lazily; rebuild when they dominate so memory stays
        // proportional to the files that exist.
        if candidates.count > 2 * files.count + 1024 {
            var fresh = MinHeap()
            for (name, info) in files where !info.active {
                fresh.push(.init(order: info.order, generation: info.generation, name: name))
            }
            candidates = fresh
        }
    }

    private func rotate(_ key: String) throws {
        closeDescriptor(key)
        keys[key]!.headerSize = 0
        func rotated(_ index: Int) -> String { index == 0 ? key : "\(key).\(index)" }
        // The oldest generation falls off the end.
        if let info = files[rotated(keepRotated)] {
            POSIXFile.remove(path(rotated(keepRotated)))
            files.removeValue(forKey: rotated(keepRotated))
            totalBytes -= info.size
        }
        var index = keepRotated - 1
        while index >= 0 {
            let from = rotated(index)
            let to = rotated(index + 1)
            if var info = files[from] {
                try POSIXFile.rename(path(from), path(to))
                files.removeValue(forKey: from)
                generation += 1
                info.generation = generation
                info.active = false
                files[to] = info
                pushCandidate(name: to, info)
            }
            index -= 1
        }
    }
}

/// Binary min-heap on `order` (eviction candidates, oldest first).
struct MinHeap {
    struct Item {
        var order: UInt64
        var generation: UInt64
        var name: String
    }

    private var items: [Item] = []

    var count: Int { items.count }

    mutating func push(_ item: Item) {
        items.append(item)
        var child = items.count - 1
        while child > 0 {
            let parent = (child - 1) / 2
            guard items[child].order < items[parent].order else { break }
            items.swapAt(child, parent)
            child = parent
        }
    }

    mutating func pop() -> Item? {
        guard !items.isEmpty else { return nil }
        items.swapAt(0, items.count - 1)
        let top = items.removeLast()
        var parent = 0
        while true {
            let left = 2 * parent + 1
            let right = left + 1
            var smallest = parent
            if left < items.count, items[left].order < items[smallest].order { smallest = left }
            if right < items.count, items[right].order < items[smallest].order { smallest = right }
            if smallest == parent { break }
            items.swapAt(parent, smallest)
            parent = smallest
        }
        return top
    }
}
