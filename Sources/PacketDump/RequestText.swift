import NIOCore
import TDS

/// Decodes of whole messages (requests, and PRELOGIN in either direction) as text lines.
/// Every decoder catches its own failures: a broken message yields a "failed to decode" line
/// and hex, never a trap.
enum RequestText {
    static let failure = "failed to decode"

    static func render(type: TDSPacketType, payload: ByteBuffer, totalBytes: Int, options: DumpTextOptions) -> [String] {
        var lines: [String] = []
        if totalBytes > payload.readableBytes {
            lines.append("(message of \(DumpText.grouped(totalBytes)) bytes; only the first \(DumpText.grouped(payload.readableBytes)) were kept for decoding)")
        }
        var showHex = options.hex
        switch type {
        case .prelogin:
            lines += prelogin(payload)
        case .login7:
            lines += login7(payload, options: options, showHex: &showHex)
        case .sqlBatch:
            lines += sqlBatch(payload, options: options)
        case .rpc:
            lines += rpc(payload, options: options)
        case .transactionManager:
            lines += transactionManager(payload)
        case .attention:
            lines.append("ATTENTION (cancel the running request)\(payload.readableBytes > 0 ? ", \(payload.readableBytes) unexpected payload bytes" : "")")
        case .federatedAuthToken:
            lines += fedAuthToken(payload)
        case .sspi:
            lines.append("SSPI: <redacted, \(payload.readableBytes) bytes>")
            showHex = false
        case .bulkLoad:
            lines.append("BULK LOAD data: \(DumpText.grouped(totalBytes)) bytes (not decoded)")
        case .preTDS7Login:
            lines.append("pre-TDS7 LOGIN: not decoded; \(payload.readableBytes) bytes redacted (it may carry a password)")
            showHex = false
        default:
            lines.append("\(failure): no decoder for packet type \(DumpText.hex8(type.rawValue)); hex follows")
            showHex = true
        }
        if !showHex, lines.contains(where: { $0.contains(failure) }), type != .login7, type != .preTDS7Login, type != .sspi {
            showHex = true
        }
        if showHex {
            lines.append("hex:")
            lines += DumpText.hexDump(payload.dumpBytes, limit: options.maxHexBytes)
        }
        return lines
    }

    // MARK: PRELOGIN

    static func isTLSRecord(_ payload: ByteBuffer) -> Bool {
        guard let b0 = payload.getInteger(at: payload.readerIndex, as: UInt8.self),
              let b1 = payload.getInteger(at: payload.readerIndex + 1, as: UInt8.self) else { return false }
        return (0x14...0x17).contains(b0) && b1 == 0x03
    }

    static func prelogin(_ payload: ByteBuffer) -> [String] {
        if isTLSRecord(payload) {
            return ["TLS record inside PRELOGIN (\(payload.readableBytes) bytes): a TLS handshake; what follows it on this connection is encrypted"]
        }
        let message: PreloginMessage
        do {
            message = try PreloginMessage(parsing: payload)
        } catch {
            return ["PRELOGIN: \(failure): \(error)"]
        }
        var lines = ["PRELOGIN (\(message.options.count) options)"]
        for option in message.options {
            let d = option.data
            func u32le() -> UInt32 { d.count >= 4 ? UInt32(d[0]) | UInt32(d[1]) << 8 | UInt32(d[2]) << 16 | UInt32(d[3]) << 24 : 0 }
            switch option.token {
            case PreloginOption.versionToken:
                if d.count >= 6 {
                    let build = UInt16(d[2]) << 8 | UInt16(d[3])
                    let sub = UInt16(d[4]) << 8 | UInt16(d[5])
                    lines.append("  VERSION \(d[0]).\(d[1]).\(build).\(sub)")
                } else {
                    lines.append("  VERSION (short: \(d.count) bytes) 0x\(DumpText.hex(d))")
                }
            case PreloginOption.encryptionToken:
                if let v = d.first {
                    let mode: String
                    switch v & 0x7F {
                    case 0: mode = "OFF"
                    case 1: mode = "ON"
                    case 2: mode = "NOT_SUP"
                    case 3: mode = "REQ"
                    case 4: mode = "STRICT"
                    default: mode = "unknown"
                    }
                    lines.append("  ENCRYPTION \(DumpText.hex8(v)) \(mode)\(v & 0x80 != 0 ? "+CLIENT_CERT" : "")")
                } else {
                    lines.append("  ENCRYPTION (empty)")
                }
            case PreloginOption.instanceToken:
                lines.append("  INSTOPT \(DumpText.quoted(String(decoding: d.prefix { $0 != 0 }, as: UTF8.self), limit: 200))")
            case PreloginOption.threadIDToken:
                lines.append(d.count >= 4 ? "  THREADID \(u32le())" : "  THREADID (empty)")
            case PreloginOption.marsToken:
                lines.append("  MARS \(d.first.map { $0 == 0 ? "off" : "on (\(DumpText.hex8($0)))" } ?? "(empty)")")
            case PreloginOption.traceIDToken:
                if d.count >= 36 {
                    let seq = UInt32(d[32]) | UInt32(d[33]) << 8 | UInt32(d[34]) << 16 | UInt32(d[35]) << 24
                    lines.append("  TRACEID connection \(ValueText.render(.guid(Array(d[0..<16])), type: .uniqueidentifier, limit: 64))"
                                 + " activity \(ValueText.render(.guid(Array(d[16..<32])), type: .uniqueidentifier, limit: 64)) sequence \(seq)")
                } else {
                    lines.append("  TRACEID 0x\(DumpText.hex(d))")
                }
            case PreloginOption.fedAuthRequiredToken:
                lines.append("  FEDAUTHREQUIRED \(d.first.map(DumpText.hex8) ?? "(empty)")")
            case PreloginOption.nonceToken:
                lines.append("  NONCEOPT \(d.count) bytes 0x\(DumpText.hex(d.prefix(64)))")
            default:
                lines.append("  option \(DumpText.hex8(option.token)) \(d.count) bytes 0x\(DumpText.hex(d.prefix(64)))")
            }
        }
        return lines
    }

    // MARK: LOGIN7

    static func tdsVersionName(_ v: UInt32) -> String {
        switch v {
        case 0x7000_0000: return "7.0"
        case 0x7100_0000: return "7.1"
        case 0x7100_0001: return "7.1 rev 1"
        case 0x7209_0002: return "7.2"
        case 0x730A_0003: return "7.3A"
        case 0x730B_0003: return "7.3B"
        case 0x7400_0004: return "7.4"
        case 0x0800_0000: return "8.0"
        default: return "unknown"
        }
    }

    static let optionFlags1: [(UInt8, String)] = [
        (0x01, "BYTEORDER_68000"), (0x02, "CHAR_EBCDIC"), (0x04, "FLOAT_VAX"), (0x08, "FLOAT_ND5000"),
        (0x10, "DUMPLOAD_OFF"), (0x20, "USE_DB_ON"), (0x40, "INIT_DB_FATAL"), (0x80, "SET_LANG_ON"),
    ]
    static let optionFlags2: [(UInt8, String)] = [
        (0x01, "INIT_LANG_FATAL"), (0x02, "ODBC_ON"), (0x04, "TRAN_BOUNDARY"), (0x08, "CACHE_CONNECT"),
        (0x10, "USERTYPE_SERVER"), (0x20, "USERTYPE_REMUSER"), (0x40, "USERTYPE_BIT2"), (0x80, "INTEGRATED_SECURITY"),
    ]
    static let typeFlags: [(UInt8, String)] = [
        (0x01, "SQL_TSQL"), (0x02, "SQLTYPE_BIT1"), (0x04, "SQLTYPE_BIT2"), (0x08, "SQLTYPE_BIT3"),
        (0x10, "OLEDB"), (0x20, "ReadOnlyIntent"),
    ]
    static let optionFlags3: [(UInt8, String)] = [
        (0x01, "CHANGE_PASSWORD"), (0x02, "USER_INSTANCE"), (0x04, "SEND_YUKON_BINARY_XML"),
        (0x08, "UNKNOWN_COLLATION_HANDLING"), (0x10, "EXTENSION"),
    ]

    static func login7(_ payload: ByteBuffer, options: DumpTextOptions, showHex: inout Bool) -> [String] {
        let login: Login7
        let secrets: [Login7SecretRange]
        do {
            login = try Login7(parsing: payload)
            secrets = try Login7.secretRanges(in: payload)
        } catch {
            showHex = false
            return ["LOGIN7: \(failure): \(error); the whole payload (\(payload.readableBytes) bytes) is treated as secret and not shown"]
        }
        func secretLength(_ kind: Login7SecretRange.Kind) -> Int { secrets.filter { $0.kind == kind }.reduce(0) { $0 + $1.length } }
        func text(_ s: String) -> String { DumpText.quoted(s, limit: options.maxValueCharacters) }
        var lines = ["LOGIN7"]
        lines.append("  TDS version: \(DumpText.hex32(login.tdsVersion)) (\(tdsVersionName(login.tdsVersion)))")
        lines.append("  packet size: \(login.packetSize)\(login.packetSize == 0 ? " (server default)" : "")")
        lines.append("  client prog ver: \(DumpText.hex32(login.clientProgramVersion))")
        lines.append("  client PID: \(login.clientPID)")
        lines.append("  connection id: \(login.connectionID)")
        lines.append("  option flags 1: \(DumpText.hex8(login.optionFlags1)) \(DumpText.flags(login.optionFlags1, optionFlags1))")
        lines.append("  option flags 2: \(DumpText.hex8(login.optionFlags2)) \(DumpText.flags(login.optionFlags2, optionFlags2))")
        lines.append("  type flags: \(DumpText.hex8(login.typeFlags)) \(DumpText.flags(login.typeFlags, typeFlags))")
        lines.append("  option flags 3: \(DumpText.hex8(login.optionFlags3)) \(DumpText.flags(login.optionFlags3, optionFlags3))")
        lines.append("  read-only intent: \(login.readOnlyIntent ? "yes" : "no")")
        lines.append("  client time zone: \(login.clientTimeZone) min")
        lines.append("  LCID: \(DumpText.hex32(login.clientLCID))")
        lines.append("  host name: \(text(login.hostName))")
        lines.append("  user name: \(text(login.userName))")
        lines.append("  password: <redacted, \(secretLength(.password)) bytes>")
        lines.append("  app name: \(text(login.appName))")
        lines.append("  server name: \(text(login.serverName))")
        lines.append("  library name: \(text(login.clientInterfaceName))")
        lines.append("  language: \(text(login.language))")
        lines.append("  database: \(text(login.database))")
        lines.append("  client id (MAC): \(login.clientID.map { DumpText.hex([$0]) }.joined(separator: ":"))")
        lines.append("  SSPI: \(login.sspi.isEmpty ? "none" : "<redacted, \(secretLength(.sspi)) bytes>")")
        lines.append("  attach db file: \(text(login.attachDBFile))")
        if secretLength(.changePassword) > 0 || !login.changePassword.isEmpty {
            lines.append("  change password: <redacted, \(secretLength(.changePassword)) bytes>")
        }
        if login.hasFeatureExtension {
            lines.append("  feature extensions (\(login.features.count)):")
            for f in login.features { lines.append("    " + feature(f, secrets: secrets, options: options)) }
        }
        return lines
    }

    static func feature(_ f: Login7Feature, secrets: [Login7SecretRange], options: DumpTextOptions) -> String {
        let d = f.data
        let head = "\(f.name) (\(DumpText.hex8(f.id)), \(d.count) bytes)"
        switch f.id {
        case Login7Feature.fedAuth:
            guard let options = d.first else { return head + " empty" }
            let library = options >> 1
            let echo = options & 1 != 0 ? "yes" : "no"
            switch library {
            case Login7FedAuth.librarySecurityToken:
                let tokenLength = secrets.first { $0.kind == .fedAuthToken }?.length ?? 0
                let nonce = d.count >= 5 + tokenLength + 32 ? ", nonce 32 bytes" : ""
                return head + ": library SECURITYTOKEN, echo \(echo), token <redacted, \(tokenLength) bytes>\(nonce)"
            case Login7FedAuth.libraryMSAL:
                let workflow = d.count > 1 ? d[1] : 0
                let name: String
                switch workflow {
                case 1: name = "USERNAME_PASSWORD"
                case 2: name = "INTEGRATED"
                case 3: name = "DEFAULT/INTERACTIVE/MANAGED_IDENTITY"
                default: name = "unknown"
                }
                return head + ": library MSAL, echo \(echo), workflow \(DumpText.hex8(workflow)) \(name)"
            default:
                return head + ": library \(DumpText.hex8(library)) (unknown), data <redacted, \(d.count) bytes>"
            }
        case Login7Feature.sessionRecovery:
            return head + (d.isEmpty ? ": initial login" : ": recovery data \(d.count) bytes")
        case Login7Feature.columnEncryption, Login7Feature.dataClassification, Login7Feature.jsonSupport,
             Login7Feature.vectorSupport, Login7Feature.utf8Support, Login7Feature.azureSQLSupport:
            return head + (d.isEmpty ? "" : ": version/flags \(DumpText.hex8(d[0]))" + (d.count > 1 ? " +0x\(DumpText.hex(d.dropFirst().prefix(32)))" : ""))
        case Login7Feature.globalTransactions, Login7Feature.azureSQLDNSCaching:
            return head + (d.isEmpty ? "" : ": 0x\(DumpText.hex(d.prefix(32)))")
        case Login7Feature.userAgent:
            // ODBC Driver 18 sends UTF-16LE text; others UTF-8.
            if d.count % 2 == 0, d.count >= 2, stride(from: 1, to: d.count, by: 2).allSatisfy({ d[$0] == 0 }) {
                return head + ": " + DumpText.quoted(TDSString.decodeUTF16LE(d), limit: options.maxValueCharacters)
            }
            let printable = d.allSatisfy { $0 >= 0x20 && $0 < 0x7F || $0 == 0x0A || $0 == 0x09 }
            if printable { return head + ": " + DumpText.quoted(String(decoding: d, as: UTF8.self), limit: options.maxValueCharacters) }
            return head + ": 0x" + DumpText.hex(d.prefix(64)) + (d.count > 64 ? "…" : "")
        default:
            return head + (d.isEmpty ? "" : ": 0x" + DumpText.hex(d.prefix(64)) + (d.count > 64 ? "…" : ""))
        }
    }

    // MARK: Batch, RPC, TM

    static func allHeaders(_ h: AllHeaders?) -> String {
        guard let h else { return "ALL_HEADERS: none" }
        var parts: [String] = []
        for e in h.entries {
            switch e.type {
            case AllHeaders.transactionDescriptorType:
                parts.append("transaction descriptor 0x\(DumpText.hex(e.data.prefix(8).reversed())), outstanding requests \(h.outstandingRequestCount.map(String.init) ?? "?")")
            case AllHeaders.queryNotifications:
                parts.append("query notifications (\(e.data.count) bytes)")
            case AllHeaders.traceActivity:
                parts.append("trace activity 0x\(DumpText.hex(e.data.prefix(20)))")
            default:
                parts.append("header type \(e.type) (\(e.data.count) bytes)")
            }
        }
        return "ALL_HEADERS: " + (parts.isEmpty ? "empty" : parts.joined(separator: "; "))
    }

    static func sqlText(_ s: String, options: DumpTextOptions) -> String {
        let t = options.maskLiterals ? SQLLiteralMasker.mask(s) : s
        let count = t.count
        guard count > options.maxSQLCharacters else { return t }
        return String(t.prefix(options.maxSQLCharacters)) + "… (\(DumpText.grouped(count)) chars)"
    }

    static func sqlBatch(_ payload: ByteBuffer, options: DumpTextOptions) -> [String] {
        do {
            let batch = try SQLBatch(parsing: payload)
            var lines = ["SQL BATCH", "  " + allHeaders(batch.allHeaders)]
            lines.append("  text:")
            for line in sqlText(batch.text, options: options).split(separator: "\n", omittingEmptySubsequences: false) {
                lines.append("    " + DumpText.printable(String(line)))
            }
            return lines
        } catch {
            return ["SQL BATCH: \(failure): \(error)"]
        }
    }

    static let rpcOptionFlags: [(UInt16, String)] = [(0x01, "WITH_RECOMPILE"), (0x02, "NO_METADATA"), (0x04, "REUSE_METADATA")]
    static let paramFlags: [(UInt8, String)] = [(0x01, "BYREF(output)"), (0x02, "DEFAULT"), (0x08, "ENCRYPTED")]

    static func rpc(_ payload: ByteBuffer, options: DumpTextOptions) -> [String] {
        var lines: [String] = []
        var rest = payload
        var index = 0
        while rest.readableBytes > 0, index < 1000 {
            let request: RPCRequest
            do {
                request = try RPCRequest(parsing: rest)
            } catch {
                lines.append("RPC\(index > 0 ? " #\(index + 1)" : ""): \(failure): \(error)")
                return lines
            }
            let name: String
            switch request.procedure {
            case .id(let id): name = "\(request.procedure.displayName) (id \(id))"
            case .name(let n): name = DumpText.quoted(n, limit: 256)
            }
            lines.append("RPC\(index > 0 ? " #\(index + 1)" : "") \(name)")
            if index == 0 { lines.append("  " + allHeaders(request.allHeaders)) }
            lines.append("  option flags: \(DumpText.hex16(request.optionFlags)) \(DumpText.flags(request.optionFlags, rpcOptionFlags))")
            let statementIndex = statementParameterIndex(request)
            for (i, p) in request.parameters.enumerated() {
                let pname = p.name.isEmpty ? "#\(i + 1)" : DumpText.printable(p.name)
                let flags = p.statusFlags == 0 ? "" : " [\(DumpText.flags(p.statusFlags, paramFlags))]"
                let value: String
                if options.maskLiterals {
                    if i == statementIndex, case .string(let s) = p.value {
                        value = DumpText.quoted(SQLLiteralMasker.mask(s), limit: options.maxSQLCharacters)
                    } else {
                        value = "<masked>"
                    }
                } else if i == statementIndex, case .string(let s) = p.value {
                    value = DumpText.quoted(s, limit: options.maxSQLCharacters)
                } else {
                    value = ValueText.render(p.value, type: p.type, limit: options.maxValueCharacters)
                }
                lines.append("  param \(pname) \(p.type.sqlName)\(flags) = \(value)")
            }
            var remaining = ByteBuffer(bytes: request.remainingRequests)
            guard let separator = remaining.readInteger(as: UInt8.self) else { break }
            if separator == 0xFE {
                lines.append("  NoExec flag, then \(remaining.readableBytes) bytes not decoded")
                break
            }
            rest = remaining
            index += 1
        }
        return lines
    }

    /// sp_executesql / sp_prepexec / sp_prepare carry their statement in a parameter; its text
    /// is shown (literal-masked when asked) rather than cut like a value.
    static func statementParameterIndex(_ r: RPCRequest) -> Int? {
        switch r.procedure {
        case .spExecuteSQL: return 0
        case .spPrepExec, .spPrepare: return 2
        case .spCursorOpen, .spCursorPrepare, .spCursorPrepExec: return r.procedure == .spCursorOpen ? 1 : 2
        default:
            guard let sql = r.sqlText else { return nil }
            return r.parameters.firstIndex { if case .string(let s) = $0.value { return s == sql } else { return false } }
        }
    }

    static func transactionManager(_ payload: ByteBuffer) -> [String] {
        do {
            let tm = try TransactionManagerRequest(parsing: payload)
            var lines = ["TRANSACTION MANAGER \(tm.requestName)", "  " + allHeaders(tm.allHeaders)]
            if let level = tm.isolationLevel {
                let names = ["unchanged", "READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE", "SNAPSHOT"]
                lines.append("  isolation level: \(level) \(Int(level) < names.count ? names[Int(level)] : "unknown")")
            }
            if let name = tm.transactionName { lines.append("  transaction name: \(DumpText.quoted(name, limit: 256))") }
            if let begins = tm.beginsNewTransaction { lines.append("  begin new transaction: \(begins ? "yes" : "no")") }
            if let n = tm.newTransaction { lines.append("  new transaction: isolation \(n.isolationLevel), name \(DumpText.quoted(n.name, limit: 256))") }
            if tm.requestType == TransactionManagerRequest.propagate || tm.requestType == TransactionManagerRequest.getDTCAddress {
                lines.append("  data: \(tm.payload.count) bytes")
            }
            return lines
        } catch {
            return ["TRANSACTION MANAGER: \(failure): \(error)"]
        }
    }

    static func fedAuthToken(_ payload: ByteBuffer) -> [String] {
        let report = SecretRedactor.secretRanges(type: .federatedAuthToken, payload: payload)
        if report.failedClosed {
            return ["FEDAUTH TOKEN: could not be parsed; <redacted, \(payload.readableBytes) bytes>"]
        }
        let tokenLength = report.redactedByteCount
        let nonce = payload.readableBytes - 8 - tokenLength
        return ["FEDAUTH TOKEN: token <redacted, \(tokenLength) bytes>\(nonce > 0 ? ", nonce \(nonce) bytes" : "")"]
    }
}
