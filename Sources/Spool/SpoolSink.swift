/// Where a `SpoolWriter` puts its records. All methods are called only on the writer's
/// own background thread, one at a time, so an implementation needs no locking and may
/// block (file and socket I/O belongs here). Once handed to a writer, a sink must not be
/// used by anybody else.
public protocol SpoolSink: AnyObject {
    /// Append `bytes` to destination `key`. Throw `SpoolRejection` to refuse the record
    /// on purpose (counted as dropped), any other error for a failure (counted, logged).
    func write(key: String, bytes: [UInt8]) throws
    /// The destination is finished: release its resources.
    func close(key: String) throws
    /// `droppedRecords` records (`droppedBytes` bytes) for `key` were dropped at this point
    /// of the stream (queue full). Called before the next record for `key` is written.
    func gap(key: String, droppedRecords: Int, droppedBytes: Int) throws
    /// The queue is momentarily empty: push buffered data out.
    func flush() throws
    /// The writer stops: close everything. Called once, last.
    func shutdown()
}

extension SpoolSink {
    public func gap(key: String, droppedRecords: Int, droppedBytes: Int) throws {}
    public func flush() throws {}
}
