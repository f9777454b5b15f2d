import NIOCore

/// SQL batch (0x01): ALL_HEADERS then UTF-16LE text.
public struct SQLBatch: Sendable, Hashable {
    public var allHeaders: AllHeaders?
    public var text: String

    public init(allHeaders: AllHeaders? = AllHeaders(transactionDescriptor: 0), text: String) {
        self.allHeaders = allHeaders
        self.text = text
    }

    public init(parsing payload: ByteBuffer) throws {
        var b = payload
        allHeaders = AllHeaders.isPresent(in: payload) ? try AllHeaders.read(from: &b, field: "SQLBatch.ALL_HEADERS") : nil
        guard b.readableBytes % 2 == 0 else {
            throw TDSDecodingError(field: "SQLBatch.SQLText", reason: "odd UTF-16 byte length \(b.readableBytes)")
        }
        text = TDSString.decodeUTF16LE(b.tdsRest())
    }

    public func write(into buffer: inout ByteBuffer) {
        allHeaders?.write(into: &buffer)
        buffer.tdsWriteUTF16(text)
    }
}
