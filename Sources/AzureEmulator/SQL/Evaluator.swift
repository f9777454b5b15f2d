import Foundation

/// Evaluates expressions against the session, bound parameters and (optionally) a row.
struct Evaluator {
    var context: SQLSessionContext
    var params: [String: SQLValue]
    /// For OBJECT_ID of database tables.
    var data: (any SQLDataAccess)?

    init(context: SQLSessionContext, params: [String: SQLValue], data: (any SQLDataAccess)? = nil) {
        self.context = context
        self.params = params
        self.data = data
    }

    func defaultName(_ e: SQLExpr) -> String { "" }

    func value(_ e: SQLExpr, row: ([SQLValue], SQLTable)?) throws(SQLError) -> SQLValue {
        try typed(e, row: row).0
    }

    func typed(_ e: SQLExpr, row: ([SQLValue], SQLTable)?) throws(SQLError) -> (SQLValue, SQLType) {
        switch e {
        case .integer(let v):
            return (.int(v), Int32(exactly: v) != nil ? .int : .bigint)
        case .decimalLiteral(let s):
            let scale = s.split(separator: ".").dropFirst().first?.count ?? 0
            return (.decimal(s), .decimal(max(s.filter(\.isNumber).count, scale + 1), scale))
        case .string(let s, let unicode):
            let n = max(s.count, 1)
            return (.string(s), unicode ? .nvarchar(n <= 4000 ? n : nil) : .varchar(n <= 8000 ? n : nil))
        case .binary(let b):
            return (.bytes(b), .varbinary(max(b.count, 1) <= 8000 ? max(b.count, 1) : nil))
        case .null:
            return (.null, .int)
        case .variable(let name):
            guard let v = params[name.lowercased()] else {
                throw SQLError(137, "Must declare the scalar variable \"@\(name)\".", severity: 15)
            }
            return (v, Evaluator.naturalType(v))
        case .system(let name):
            switch name {
            case "SERVERNAME": return (.string(context.serverName), .nvarchar(128))
            case "SPID": return (.int(Int64(context.spid)), .smallint)
            case "VERSION": return (.string(Evaluator.versionString), .nvarchar(300))
            case "TRANCOUNT": return (.int(context.transaction == nil ? 0 : 1), .int)
            case "ROWCOUNT": return (.int(Int64(context.lastRowCount)), .int)
            case "LANGUAGE": return (.string(context.settings.language.name), .nvarchar(128))
            case "LANGID": return (.int(Int64(context.settings.language.langID)), .smallint)
            case "OPTIONS": return (.int(Int64(context.settings.options.rawValue)), .int)
            case "DATEFIRST": return (.int(Int64(context.settings.dateFirst)), .tinyint)
            case "TEXTSIZE": return (.int(Int64(context.settings.textSize == -1 ? 2_147_483_647 : context.settings.textSize)), .int)
            case "LOCK_TIMEOUT": return (.int(Int64(context.settings.lockTimeout)), .int)
            case "MAX_PRECISION": return (.int(38), .tinyint)
            case "IDENTITY": return (.null, .decimal(38, 0))
            case "SERVICENAME": return (.string("MSSQLSERVER"), .nvarchar(128))
            default: throw SQLError(137, "Must declare the scalar variable \"@@\(name)\".", severity: 15)
            }
        case .column(let name):
            guard let (r, t) = row, let i = t.columnIndex(name) else { throw SQLError.invalidColumn(name) }
            return (r[i], t.columns[i].type)
        case .cast(let inner, let type):
            let v = try value(inner, row: row)
            return (try SQLExecutor.coerce(v, to: type, column: "CAST"), type)
        case .negate(let inner):
            let (v, t) = try typed(inner, row: row)
            switch v {
            case .int(let i): return (.int(-i), t)
            case .float(let d): return (.float(-d), t)
            case .decimal(let s): return (.decimal(s.hasPrefix("-") ? String(s.dropFirst()) : "-" + s), t)
            case .null: return (.null, t)
            default: throw SQLError(8117, "Operand data type is invalid for minus operator.")
            }
        case .arithmetic(let a, let op, let b):
            let (x, tx) = try typed(a, row: row)
            let (y, _) = try typed(b, row: row)
            if x.isNull || y.isNull { return (.null, tx) }
            if op == "+", case .string(let s1) = x, case .string(let s2) = y { return (.string(s1 + s2), .nvarchar(nil)) }
            if let i = x.asInt, let j = y.asInt, case .int = x, case .int = y {
                switch op {
                case "+": return (.int(i &+ j), tx)
                case "-": return (.int(i &- j), tx)
                case "*": return (.int(i &* j), tx)
                case "/": guard j != 0 else { throw SQLError(8134, "Divide by zero error encountered.") }; return (.int(i / j), tx)
                default: guard j != 0 else { throw SQLError(8134, "Divide by zero error encountered.") }; return (.int(i % j), tx)
                }
            }
            guard let p = x.asDouble, let q = y.asDouble else { throw SQLError(8117, "Operand data type is invalid for \(op) operator.") }
            switch op {
            case "+": return (.float(p + q), .float)
            case "-": return (.float(p - q), .float)
            case "*": return (.float(p * q), .float)
            default: guard q != 0 else { throw SQLError(8134, "Divide by zero error encountered.") }; return (.float(p / q), .float)
            }
        case .function(let name, let args):
            return try function(name, args, row: row)
        }
    }

    private func function(_ name: String, _ args: [SQLExpr], row: ([SQLValue], SQLTable)?) throws(SQLError) -> (SQLValue, SQLType) {
        func arg(_ i: Int) throws(SQLError) -> SQLValue {
            guard i < args.count else {
                throw SQLError(174, "The \(name.lowercased()) function requires \(i + 1) argument(s).", severity: 15)
            }
            return try value(args[i], row: row)
        }
        switch name {
        case "SUSER_SNAME", "SUSER_NAME", "ORIGINAL_LOGIN", "SYSTEM_USER":
            return (.string(context.principal), .nvarchar(128))
        case "USER_NAME", "CURRENT_USER":
            return (.string("dbo"), .nvarchar(128))
        case "APP_NAME":
            return (.string(context.appName), .nvarchar(128))
        case "HOST_NAME":
            return (.string(context.hostName), .nvarchar(128))
        case "DB_NAME":
            return (.string(context.database), .nvarchar(128))
        case "DB_ID":
            return (.int(Evaluator.databaseID(context.database)), .smallint)
        case "CONTEXT_INFO":
            return (context.settings.contextInfo.map { .bytes($0) } ?? .null, .varbinary(128))
        case "SESSION_CONTEXT":
            guard let key = try arg(0).asText else { return (.null, .nvarchar(4000)) }
            guard let v = context.sessionContext[key]?.value else { return (.null, .nvarchar(4000)) }
            return (v, Evaluator.naturalType(v))
        case "DATABASEPROPERTYEX":
            let prop = (try arg(1).asText ?? "").lowercased()
            switch prop {
            case "updateability": return (.string(context.readOnly ? "READ_ONLY" : "READ_WRITE"), .nvarchar(128))
            case "edition": return (.string("BusinessCritical"), .nvarchar(128))
            case "serviceobjective": return (.string("BC_Gen5_2"), .nvarchar(128))
            case "status": return (.string("ONLINE"), .nvarchar(128))
            default: return (.null, .nvarchar(128))
            }
        case "SERVERPROPERTY":
            let prop = (try arg(0).asText ?? "").lowercased()
            switch prop {
            case "servername": return (.string(context.serverName), .nvarchar(128))
            case "edition": return (.string("SQL Azure"), .nvarchar(128))
            case "engineedition": return (.int(5), .int)
            case "productversion": return (.string("12.0.2000.8"), .nvarchar(128))
            case "ishadrenabled": return (.int(1), .int)
            default: return (.null, .nvarchar(128))
            }
        case "CONNECTIONPROPERTY":
            let prop = (try arg(0).asText ?? "").lowercased()
            switch prop {
            case "local_tcp_port": return (.int(Int64(context.localPort)), .int)
            case "net_transport": return (.string("TCP"), .nvarchar(40))
            case "protocol_type": return (.string("TSQL"), .nvarchar(40))
            case "client_net_address": return (.string(context.clientAddress), .nvarchar(48))
            case "local_net_address": return (.string("127.0.0.1"), .nvarchar(48))
            default: return (.null, .nvarchar(128))
            }
        case "GETDATE", "SYSDATETIME", "GETUTCDATE", "SYSUTCDATETIME", "CURRENT_TIMESTAMP":
            return (Evaluator.now(), .datetime2(7))
        case "NEWID":
            return (.guid(UUID()), .uniqueidentifier)
        case "LEN":
            let v = try arg(0)
            return (v.asText.map { .int(Int64($0.count)) } ?? .null, .int)
        case "UPPER": return (try arg(0).asText.map { .string($0.uppercased()) } ?? .null, .nvarchar(4000))
        case "LOWER": return (try arg(0).asText.map { .string($0.lowercased()) } ?? .null, .nvarchar(4000))
        case "ISNULL", "COALESCE":
            for i in args.indices {
                let (v, t) = try typed(args[i], row: row)
                if !v.isNull || i == args.count - 1 { return (v, t) }
            }
            return (.null, .int)
        case "OBJECT_ID":
            guard let text = try arg(0).asText else { return (.null, .int) }
            // `tempdb..#t`, `dbo.t`, `[t]`: the last part names the object.
            let name = text.split(separator: ".", omittingEmptySubsequences: false).last.map { String($0).trimmingCharacters(in: CharacterSet(charactersIn: "[]")) } ?? text
            if SQLExecutor.isTemporary(name) {
                // Temp objects have negative ids, as in tempdb.
                return (context.tempTables.table(name) == nil ? .null : .int(-Evaluator.stableID(name)), .int)
            }
            let view = context.transaction?.view ?? data?.snapshot(database: context.database)
            return (view?.table(name) == nil ? .null : .int(Evaluator.stableID(name)), .int)
        case "SCOPE_IDENTITY":
            return (.null, .decimal(38, 0))
        case "COUNT":
            return (.int(1), .int)
        default:
            throw SQLError(195, "'\(name)' is not a recognized built-in function name.", severity: 15)
        }
    }

    /// database_id as sys.databases would number them: master is 1, user databases from 5.
    static func databaseID(_ name: String) -> Int64 { name.lowercased() == "master" ? 1 : 5 }

    /// An object id that stays the same for a name (FNV-1a, folded to a positive Int32).
    static func stableID(_ name: String) -> Int64 {
        var h: UInt32 = 2_166_136_261
        for b in name.lowercased().utf8 { h = (h ^ UInt32(b)) &* 16_777_619 }
        return Int64(h & 0x3FFF_FFFF) + 1000
    }

    static let versionString = "Microsoft SQL Azure (RTM) - 12.0.2000.8 \n\tSep 18 2026 00:00:00 \n\tCopyright (C) 2026 Microsoft Corporation\n (emulated by tdsgate)"

    static func now() -> SQLValue {
        let t = Date().timeIntervalSince1970
        // 719162 days from 0001-01-01 to 1970-01-01.
        let days = Int((t / 86_400).rounded(.down))
        let ticks = Int64(((t - Double(days) * 86_400) * 10_000_000).rounded(.down))
        return .datetime(days: 719_162 + days, ticks: ticks)
    }

    static func naturalType(_ v: SQLValue) -> SQLType {
        switch v {
        case .null: return .int
        case .int(let i): return Int32(exactly: i) != nil ? .int : .bigint
        case .bit: return .bit
        case .float: return .float
        case .decimal: return .decimal(38, 10)
        case .string(let s): return .nvarchar(s.count <= 4000 ? max(s.count, 1) : nil)
        case .bytes(let b): return .varbinary(b.count <= 8000 ? max(b.count, 1) : nil)
        case .guid: return .uniqueidentifier
        case .datetime: return .datetime2(7)
        }
    }
}
