import NIOCore
import TDS

/// Incremental decode of one server reply (a 0x04 message with a token stream). Bytes are fed
/// as packets arrive; TDSTokenScanner walks them and rows are only counted, so memory stays
/// bounded by the largest non-row token however large the reply is.
struct ReplyDecoder: Sendable {
    private var scanner: TDSTokenScanner
    private var pending = ByteBuffer()
    /// Bytes of a row still in progress that earlier calls consumed.
    private var pendingRowBytes = 0
    private var rowsInRun = 0
    private var rowTokenName = "ROW"
    private var offset = 0
    private var failed = false
    private var skippedAfterFailure = 0
    private var hexShown = 0
    private(set) var tokenCount = 0
    var sink: LineSink
    let options: DumpTextOptions

    init(scanner: TDSTokenScanner, options: DumpTextOptions) {
        self.scanner = scanner
        self.options = options
        self.sink = LineSink(limit: options.maxLinesPerMessage)
        self.scanner.reset()
    }

    var pendingByteCount: Int { pending.readableBytes }

    /// The scanner, to carry DATACLASSIFICATION layout into the next reply.
    var scannerState: TDSTokenScanner { scanner }

    mutating func feed(_ payload: ByteBuffer) {
        if failed {
            skippedAfterFailure += payload.readableBytes
            return
        }
        if pending.readableBytes == 0 {
            pending = payload
        } else {
            var p = payload
            pending.writeBuffer(&p)
        }
        let before = pending
        let startReadable = pending.readableBytes
        let wasInsideRow = scanner.isInsideRow
        let summaries: [TDSTokenSummary]
        do {
            summaries = try scanner.scan(&pending)
        } catch {
            fail("\(RequestText.failure) at reply byte \(offset): \(error)", bytes: pending)
            return
        }
        var position = 0
        for (k, s) in summaries.enumerated() {
            var length = s.length
            if k == 0, wasInsideRow {
                length -= pendingRowBytes
                pendingRowBytes = 0
            }
            length = max(0, min(length, startReadable - position))
            let bytes = before.getSlice(at: before.readerIndex + position, length: length) ?? ByteBuffer()
            handle(s, bytes: bytes)
            position += length
        }
        let consumed = startReadable - pending.readableBytes
        if scanner.isInsideRow {
            pendingRowBytes += consumed - position
        } else {
            pendingRowBytes = 0
        }
        offset += consumed
        // Keep only the incomplete token, not the storage of every packet fed so far.
        if pending.readableBytes > 0 {
            var fresh = ByteBuffer()
            fresh.reserveCapacity(pending.readableBytes)
            fresh.writeBuffer(&pending)
            pending = fresh
        } else {
            pending = ByteBuffer()
        }
    }

    /// The message ended (EOM): report what is left over and return the lines.
    mutating func finish() -> [String] {
        flushRows()
        if failed {
            if skippedAfterFailure > 0 { sink.append("(\(DumpText.grouped(skippedAfterFailure)) further bytes of this reply skipped)") }
        } else if scanner.isInsideRow {
            sink.append("\(RequestText.failure): the reply ended inside a row")
        } else if pending.readableBytes > 0 {
            fail("\(RequestText.failure): \(pending.readableBytes) bytes of an incomplete token at the end of the reply", bytes: pending)
        }
        return sink.all
    }

    private mutating func fail(_ message: String, bytes: ByteBuffer) {
        flushRows()
        failed = true
        sink.append(message)
        sink.append("hex (from the failing point):")
        let shown = bytes.getBytes(at: bytes.readerIndex, length: min(bytes.readableBytes, 256)) ?? []
        sink.append(contentsOf: DumpText.hexDump(shown, limit: 256))
        skippedAfterFailure = max(0, bytes.readableBytes - shown.count)
        pending = ByteBuffer()
    }

    private mutating func flushRows() {
        guard rowsInRun > 0 else { return }
        sink.append("  \(rowsInRun) rows (\(rowTokenName))")
        rowsInRun = 0
    }

    private mutating func handle(_ s: TDSTokenSummary, bytes: ByteBuffer) {
        tokenCount += 1
        if s.type == TDSTokenType.row || s.type == TDSTokenType.nbcRow {
            rowTokenName = rowsInRun == 0 ? s.name : (rowTokenName == s.name ? rowTokenName : "ROW/NBCROW")
            rowsInRun += 1
            return
        }
        flushRows()
        let lines = ReplyDecoder.render(s, bytes: bytes, options: options)
        sink.append(contentsOf: lines)
        if options.hex, s.type != TDSTokenType.sspi, hexShown < options.maxHexBytes {
            let n = min(bytes.readableBytes, options.maxHexBytes - hexShown)
            hexShown += n
            sink.append(contentsOf: DumpText.hexDump(bytes.getBytes(at: bytes.readerIndex, length: n) ?? [], indent: "      ", limit: n))
        }
    }

    static let doneFlags: [(UInt16, String)] = [
        (0x01, "MORE"), (0x02, "ERROR"), (0x04, "IN_XACT"), (0x10, "COUNT"), (0x20, "ATTN"), (0x100, "SRVERROR"),
    ]

    static func render(_ s: TDSTokenSummary, bytes: ByteBuffer, options: DumpTextOptions) -> [String] {
        let limit = options.maxValueCharacters
        func q(_ t: String) -> String { DumpText.quoted(t, limit: limit) }
        guard let token = s.token else {
            if s.type == TDSTokenType.returnValue {
                var parser = TDSTokenParser()
                var b = bytes
                if let tokens = try? parser.parse(&b), case .returnValue(let rv)? = tokens.first {
                    let value = options.maskLiterals ? "<masked>" : ValueText.render(rv.value, type: rv.type, limit: limit)
                    let kind = rv.status == 0x02 ? "UDF result" : "output"
                    return ["  RETURNVALUE #\(rv.ordinal) \(rv.name.isEmpty ? "(unnamed)" : DumpText.printable(rv.name)) \(rv.type.sqlName) (\(kind)) = \(value)"]
                }
            }
            return ["  \(s.name) (\(s.length) bytes, not decoded)"]
        }
        switch token {
        case .colMetadata(let cols):
            if cols.isEmpty { return ["  COLMETADATA (no metadata)"] }
            var lines = ["  COLMETADATA \(cols.count) columns"]
            for (i, c) in cols.prefix(200).enumerated() {
                lines.append("    [\(i)] \(c.name.isEmpty ? "(no name)" : DumpText.printable(c.name)) \(c.type.sqlName) \(c.isNullable ? "NULL" : "NOT NULL")")
            }
            if cols.count > 200 { lines.append("    … \(cols.count - 200) more columns") }
            return lines
        case .done(let d), .doneProc(let d), .doneInProc(let d):
            let count = d.status.contains(.count) ? ", row count \(d.rowCount)" : ""
            return ["  \(s.name) status \(DumpText.hex16(d.status.rawValue)) \(DumpText.flags(d.status.rawValue, doneFlags)), command \(d.currentCommand)\(count)"]
        case .error(let m), .info(let m):
            var line = "  \(s.name) \(m.number) state \(m.state) class \(m.class_): \(q(m.message))"
            line += " server \(q(m.serverName))"
            if !m.procedureName.isEmpty { line += " procedure \(q(m.procedureName))" }
            line += " line \(m.lineNumber)"
            return [line]
        case .envChange(let e):
            return ["  ENVCHANGE " + envChange(e, limit: limit)]
        case .loginAck(let a):
            let v = a.programVersion
            let version = v.count >= 4 ? "\(v[0]).\(v[1]).\(UInt16(v[2]) << 8 | UInt16(v[3]))" : "0x" + DumpText.hex(v)
            let interface = a.interface == 1 ? "SQL_TSQL" : (a.interface == 0 ? "SQL_DFLT" : "unknown")
            return ["  LOGINACK interface \(a.interface) \(interface), TDS \(DumpText.hex32(a.tdsVersion)) (\(RequestText.tdsVersionName(a.tdsVersion))), program \(q(a.programName)) \(version)"]
        case .featureExtAck(let acks):
            var lines = ["  FEATUREEXTACK \(acks.count) features"]
            for a in acks {
                var line = "    \(a.name) (\(DumpText.hex8(a.id))) \(a.data.count) bytes"
                if a.id == Login7Feature.azureSQLSupport, let f = a.data.first {
                    line += f & 0x01 != 0 ? ": read-only failover partner" : ": flags \(DumpText.hex8(f))"
                } else if a.id == Login7Feature.fedAuth, !a.data.isEmpty {
                    line += ": nonce/signature data (\(a.data.count) bytes)"
                } else if !a.data.isEmpty {
                    line += ": 0x" + DumpText.hex(a.data.prefix(32)) + (a.data.count > 32 ? "…" : "")
                }
                lines.append(line)
            }
            return lines
        case .fedAuthInfo(let info):
            return ["  FEDAUTHINFO STS URL \(q(info.stsURL)), SPN \(q(info.spn))"]
        case .returnStatus(let v):
            return ["  RETURNSTATUS \(v)"]
        case .order(let cols):
            return ["  ORDER by columns \(cols.map(String.init).joined(separator: ", "))"]
        case .sspi(let data):
            return ["  SSPI <redacted, \(data.count) bytes>"]
        case .returnValue(let rv):
            let value = options.maskLiterals ? "<masked>" : ValueText.render(rv.value, type: rv.type, limit: limit)
            return ["  RETURNVALUE #\(rv.ordinal) \(DumpText.printable(rv.name)) \(rv.type.sqlName) = \(value)"]
        case .row, .nbcRow:
            return []
        case .other(let type, let data):
            return ["  \(TDSTokenType.name(type)) \(data.count) bytes"]
        }
    }

    static func envChange(_ e: EnvChange, limit: Int) -> String {
        func q(_ t: String) -> String { DumpText.quoted(t, limit: limit) }
        func tx(_ b: [UInt8]) -> String { b.isEmpty ? "none" : "0x" + DumpText.hex(b) }
        switch e {
        case let .database(new, old): return "1 DATABASE \(q(old)) -> \(q(new))"
        case let .language(new, old): return "2 LANGUAGE \(q(old)) -> \(q(new))"
        case let .charset(new, old): return "3 CHARSET \(q(old)) -> \(q(new))"
        case let .packetSize(new, old): return "4 PACKETSIZE \(q(old)) -> \(q(new))"
        case let .unicodeSortLocale(new, old): return "5 UNICODE_SORT_LOCALE \(q(old)) -> \(q(new))"
        case let .unicodeComparisonFlags(new, old): return "6 UNICODE_COMPARISON_FLAGS \(q(old)) -> \(q(new))"
        case let .collation(new, old): return "7 COLLATION \(tx(old)) -> \(tx(new))"
        case let .beginTransaction(new, old): return "8 BEGIN_TRANSACTION \(tx(old)) -> \(tx(new))"
        case let .commitTransaction(new, old): return "9 COMMIT_TRANSACTION \(tx(old)) -> \(tx(new))"
        case let .rollbackTransaction(new, old): return "10 ROLLBACK_TRANSACTION \(tx(old)) -> \(tx(new))"
        case let .enlistDTCTransaction(new, old): return "11 ENLIST_DTC_TRANSACTION \(tx(old)) -> \(tx(new))"
        case let .defectTransaction(new, old): return "12 DEFECT_TRANSACTION \(tx(old)) -> \(tx(new))"
        case let .mirroringPartner(new, old): return "13 MIRRORING_PARTNER \(q(old)) -> \(q(new))"
        case let .promoteTransaction(new, old): return "15 PROMOTE_TRANSACTION \(old.count) -> \(new.count) bytes"
        case let .transactionManagerAddress(new, old): return "16 TRANSACTION_MANAGER_ADDRESS \(tx(old)) -> \(tx(new))"
        case let .transactionEnded(new, old): return "17 TRANSACTION_ENDED \(tx(old)) -> \(tx(new))"
        case .resetConnectionAck: return "18 RESET_CONNECTION_ACK"
        case let .userInstance(new, old): return "19 USER_INSTANCE \(q(old)) -> \(q(new))"
        case let .routing(proto, port, server):
            return "20 ROUTING protocol \(proto)\(proto == 0 ? " (TCP)" : "") host \(q(server)) port \(port)"
        case let .enhancedRouting(proto, port, server, database):
            return "21 ENHANCED_ROUTING protocol \(proto) host \(q(server)) port \(port) database \(q(database))"
        case let .other(type, data):
            return "\(type) (unknown type) \(data.count) bytes"
        }
    }
}
