#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

/// Small POSIX helpers shared by the file sinks (writer thread only).
enum POSIXFile {
    /// Writes all of `bytes`, retrying on EINTR and short writes. Returns how many bytes
    /// reached the file and the errno that stopped it, if any.
    static func writeAll(_ fd: Int32, _ bytes: [UInt8]) -> (written: Int, error: Int32?) {
        var offset = 0
        while offset < bytes.count {
            let result = bytes.withUnsafeBytes { raw -> Int in
                write(fd, raw.baseAddress! + offset, raw.count - offset)
            }
            if result < 0 {
                let code = errno
                if code == EINTR { continue }
                return (offset, code)
            }
            if result == 0 { return (offset, EIO) }
            offset += result
        }
        return (offset, nil)
    }

    static func openAppend(_ path: String) throws(SpoolIOError) -> Int32 {
        let flags = O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC
        let fd = open(path, flags, mode_t(0o600))
        if fd < 0 { throw SpoolIOError(operation: "open", path: path, errno: errno) }
        return fd
    }

    static func closeFD(_ fd: Int32) {
        _ = close(fd)
    }

    static func rename(_ from: String, _ to: String) throws(SpoolIOError) {
        #if canImport(Darwin)
        let rc = Darwin.rename(from, to)
        #elseif canImport(Glibc)
        let rc = Glibc.rename(from, to)
        #else
        let rc = Musl.rename(from, to)
        #endif
        if rc != 0 { throw SpoolIOError(operation: "rename", path: from, errno: errno) }
    }

    @discardableResult
    static func remove(_ path: String) -> Bool {
        unlink(path) == 0 || errno == ENOENT
    }

    /// Size of an open file, or nil.
    static func size(ofFD fd: Int32) -> Int? {
        var info = stat()
        guard fstat(fd, &info) == 0 else { return nil }
        return Int(info.st_size)
    }

    /// Creates `path` (and parents) with mode 0700 when missing.
    static func makeDirectory(_ path: String) throws(SpoolIOError) {
        var info = stat()
        if stat(path, &info) == 0 {
            if (info.st_mode & S_IFMT) == S_IFDIR { return }
            throw SpoolIOError(operation: "mkdir", path: path, errno: ENOTDIR)
        }
        let parent = path.split(separator: "/", omittingEmptySubsequences: false).dropLast().joined(separator: "/")
        if !parent.isEmpty, parent != path {
            try makeDirectory(parent)
        }
        if mkdir(path, mode_t(0o700)) != 0, errno != EEXIST {
            throw SpoolIOError(operation: "mkdir", path: path, errno: errno)
        }
        _ = chmod(path, mode_t(0o700))
    }

    struct Entry {
        var name: String
        var size: Int
        var modified: Double
    }

    /// Regular files directly inside `path`.
    static func listFiles(_ path: String) -> [Entry] {
        guard let dir = opendir(path) else { return [] }
        defer { closedir(dir) }
        var entries: [Entry] = []
        while let item = readdir(dir) {
            let name = withUnsafePointer(to: item.pointee.d_name) { pointer in
                pointer.withMemoryRebound(to: CChar.self, capacity: Int(NAME_MAX) + 1) { String(cString: $0) }
            }
            if name == "." || name == ".." { continue }
            var info = stat()
            guard stat(path + "/" + name, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG else { continue }
            #if canImport(Darwin)
            let modified = Double(info.st_mtimespec.tv_sec) + Double(info.st_mtimespec.tv_nsec) / 1e9
            #else
            let modified = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
            #endif
            entries.append(Entry(name: name, size: Int(info.st_size), modified: modified))
        }
        return entries
    }
}
