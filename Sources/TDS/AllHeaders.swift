import NIOCore

/// ALL_HEADERS prefix of SQL batch, RPC and transaction manager requests.
public struct AllHeaders: Hashable, Sendable {
    public struct Entry: Hashable, Sendable {
        public var type: UInt16
        public var data: [UInt8]

        public init(type: UInt16, data: [UInt8]) {
            self.type = type
            self.data = data
        }
    }

    public static let queryNotifications: UInt16 = 1
    public static let transactionDescriptorType: UInt16 = 2
    public static let traceActivity: UInt16 = 3

    /// Entries in the order sent.
    public var entries: [Entry]

    public init(entries: [Entry] = []) {
        self.entries = entries
    }

    /// The usual header: transaction descriptor (0 outside a transaction) and outstanding request count.
    public init(transactionDescriptor: UInt64, outstandingRequestCount: UInt32 = 1) {
        self.entries = []
        self.transactionDescriptor = transactionDescriptor
        self.outstandingRequestCount = outstandingRequestCount
    }

    private var transactionEntry: [UInt8]? {
        entries.first { $0.type == AllHeaders.transactionDescriptorType }?.data
    }

    private mutating func updateTransactionEntry(_ body: (inout [UInt8]) -> Void) {
        if let i = entries.firstIndex(where: { $0.type == AllHeaders.transactionDescriptorType }) {
            var d = entries[i].data
            while d.count < 12 { d.append(0) }
            body(&d)
            entries[i].data = d
        } else {
            var d = [UInt8](repeating: 0, count: 12)
            d[8] = 1
            body(&d)
            entries.append(Entry(type: AllHeaders.transactionDescriptorType, data: d))
        }
    }

    public var transactionDescriptor: UInt64? {
        get {
            guard let d = transactionEntry, d.count >= 8 else { return nil }
            return d.prefix(8).enumerated().reduce(0) { $0 | UInt64($1.element) << (8 * UInt64($1.offset)) }
        }
        set {
            guard let v = newValue else {
                entries.removeAll { $0.type == AllHeaders.transactionDescriptorType }
                return
            }
            updateTransactionEntry { d in for i in 0..<8 { d[i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) } }
        }
    }

    public var outstandingRequestCount: UInt32? {
        get {
            guard let d = transactionEntry, d.count >= 12 else { return nil }
            return UInt32(d[8]) | UInt32(d[9]) << 8 | UInt32(d[10]) << 16 | UInt32(d[11]) << 24
        }
        set {
            let v = newValue ?? 1
            updateTransactionEntry { d in for i in 0..<4 { d[8 + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) } }
        }
    }

    public var byteCount: Int { 4 + entries.reduce(0) { $0 + 6 + $1.data.count } }

    public func write(into buffer: inout ByteBuffer) {
        buffer.tdsWriteU32LE(UInt32(truncatingIfNeeded: byteCount))
        for e in entries {
            buffer.tdsWriteU32LE(UInt32(truncatingIfNeeded: 6 + e.data.count))
            buffer.tdsWriteU16LE(e.type)
            buffer.writeBytes(e.data)
        }
    }

    /// Reads ALL_HEADERS from the front of `buffer`.
    public static func read(from buffer: inout ByteBuffer, field: String) throws -> AllHeaders {
        let total = Int(try buffer.tdsU32LE(field + ".TotalLength"))
        guard total >= 4 else {
            throw TDSDecodingError(field: field + ".TotalLength", reason: "total length \(total) is smaller than 4")
        }
        var body = try buffer.tdsSlice(field, count: total - 4)
        var entries: [Entry] = []
        while body.readableBytes > 0 {
            let length = Int(try body.tdsU32LE(field + ".HeaderLength"))
            guard length >= 6, length - 4 <= body.readableBytes else {
                throw TDSDecodingError(field: field + ".HeaderLength", reason: "header length \(length) does not fit the \(body.readableBytes + 4) bytes left")
            }
            let type = try body.tdsU16LE(field + ".HeaderType")
            entries.append(Entry(type: type, data: try body.tdsBytes(field + ".HeaderData", count: length - 6)))
        }
        return AllHeaders(entries: entries)
    }

    /// True when the payload starts with a self-consistent ALL_HEADERS block (TDS 7.2+ always
    /// sends one; older clients start straight with the request).
    static func isPresent(in payload: ByteBuffer) -> Bool {
        var b = payload
        guard let total = b.readInteger(endianness: .little, as: UInt32.self), total >= 4,
              Int(total) <= payload.readableBytes else { return false }
        var remaining = Int(total) - 4
        while remaining > 0 {
            guard remaining >= 6, let length = b.readInteger(endianness: .little, as: UInt32.self),
                  length >= 6, Int(length) <= remaining else { return false }
            b.moveReaderIndex(forwardBy: Int(length) - 4)
            remaining -= Int(length)
        }
        return true
    }
}
