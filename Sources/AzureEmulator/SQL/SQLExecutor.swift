import Foundation

/// What a session knows that SQL can observe.
struct SQLSessionContext: Sendable {
    var serverName: String
    var nodeName: String
    var database: String
    var principal: String
    var spid: Int
    var localPort: Int
    var clientAddress: String
    var appName: String = ""
    var hostName: String = ""
    var readOnly: Bool
    var geoLinks: [GeoLinkStatus]
    var lastRowCount: Int = 0
    /// Inside BEGIN TRAN: the session's own view and the changes it will commit.
    var transaction: (view: DatabaseData, changes: [RowChange])?
    /// What SET statements changed.
    var settings = SessionSettings.loginDefaults(odbc: false, language: .usEnglish)
    var sessionContext: [String: SessionContextValue] = [:]
    /// `#name` tables: the session's own, dropped with it or by a reset.
    var tempTables = DatabaseData()
    /// Whether USE may switch to another database of the server (Managed Instance) or only
    /// name the current one (Azure SQL Database: error 40508).
    var useSwitchesDatabase = false
}

struct GeoLinkStatus: Sendable {
    var partnerServer: String
    var partnerDatabase: String
    var role: Int            // 0 primary, 1 secondary
    var lagSeconds: Int
    var linkID: UUID
}

/// Where statements read and commit data. The deployment implements it under its lock.
protocol SQLDataAccess: Sendable {
    func snapshot(database: String) -> DatabaseData?
    /// Applies changes atomically on the primary and queues them for the secondaries.
    func commit(database: String, changes: [RowChange]) throws(SQLError) -> [Int]
    /// The database's name as the server spells it, or nil when the server has no such
    /// database (`master` exists on every server).
    func databaseName(_ name: String) -> String?
}

/// One piece of a reply, in order. Encoded to tokens by ResultEncoding.
enum SQLResultPart: Sendable {
    case rows([SQLResultColumn], [[SQLValue]])
    /// `tdsgate.rows(n)`: streamed from a pre-encoded row, never materialised.
    case generatedRows(Int)
    case done(rowCount: Int?)
    case error(SQLError)
    case delay(milliseconds: Int)
    case databaseChanged(old: String, new: String)
    case languageChanged(old: String, new: String)
    case transactionBegan
    case transactionEnded(committed: Bool)
    case procedureDone(returnStatus: Int32)
}

struct SQLExecutor {
    static let generatorColumns = [
        SQLResultColumn(name: "id", type: .bigint, nullable: false),
        SQLResultColumn(name: "payload", type: .nvarchar(64), nullable: false),
    ]

    /// Runs a batch. Stops at the first error, as SQL Server does for most batch-aborting errors.
    static func run(_ text: String, params: [String: SQLValue] = [:], context: inout SQLSessionContext, data: any SQLDataAccess) -> [SQLResultPart] {
        let statements: [SQLStatement]
        do {
            statements = try SQLParser.parse(text)
        } catch let e as SQLSyntaxError {
            return [.error(.syntax(e)), .done(rowCount: nil)]
        } catch {
            return [.error(SQLError(102, "Incorrect syntax.")), .done(rowCount: nil)]
        }
        if statements.isEmpty { return [.done(rowCount: nil)] }
        var out: [SQLResultPart] = []
        for s in statements {
            do {
                let parts = try execute(s, params: params, context: &context, data: data)
                // SET NOCOUNT ON: DONE tokens no longer carry a count (@@ROWCOUNT still does).
                out += context.settings.options.contains(.noCount) ? parts.map { p in
                    if case .done = p { return .done(rowCount: nil) } else { return p }
                } : parts
            } catch {
                out.append(.error(error))
                out.append(.done(rowCount: nil))
                return out
            }
        }
        return out
    }

    static func execute(_ s: SQLStatement, params: [String: SQLValue], context: inout SQLSessionContext, data: any SQLDataAccess) throws(SQLError) -> [SQLResultPart] {
        let ev = Evaluator(context: context, params: params, data: data)
        switch s {
        case .select(let items, let source, let conditions, let top, let orderBy):
            return try select(items: items, source: source, conditions: conditions, top: top, orderBy: orderBy, ev: ev, context: &context, data: data)
        case .createTable(let name, let columns, _):
            if columns.isEmpty { throw SQLError(102, "Incorrect syntax near ')'.", severity: 15) }
            return try write([.create(SQLTable(name: name, columns: columns, rows: []))], counted: false, context: &context, data: data)
        case .dropTable(let name, let ifExists):
            if ifExists, view(of: name, context, data).table(name) == nil { return [.done(rowCount: nil)] }
            return try write([.drop(name)], counted: false, context: &context, data: data)
        case .insert(let table, let columns, let rows):
            guard let t = view(of: table, context, data).table(table) else { throw SQLError.invalidObject(table) }
            let targets: [Int]
            if let columns {
                targets = try columns.map { c throws(SQLError) in
                    guard let i = t.columnIndex(c) else { throw SQLError.invalidColumn(c) }
                    return i
                }
            } else {
                targets = Array(t.columns.indices)
            }
            var bound: [[SQLValue]] = []
            for row in rows {
                guard row.count == targets.count else {
                    throw SQLError(110, "There are fewer columns in the INSERT statement than values specified in the VALUES clause. The number of values in the VALUES clause must match the number of columns specified in the INSERT statement.", severity: 15)
                }
                var values = Array(repeating: SQLValue.null, count: t.columns.count)
                for (i, e) in zip(targets, row) {
                    values[i] = try coerce(try ev.value(e, row: nil), to: t.columns[i].type, column: t.columns[i].name)
                }
                bound.append(values)
            }
            return try write([.insert(table: t.name, rows: bound)], counted: true, context: &context, data: data)
        case .update(let table, let assignments, let conditions):
            guard let t = view(of: table, context, data).table(table) else { throw SQLError.invalidObject(table) }
            var assigned: [Int: SQLValue] = [:]
            for (c, e) in assignments {
                guard let i = t.columnIndex(c) else { throw SQLError.invalidColumn(c) }
                assigned[i] = try coerce(try ev.value(e, row: nil), to: t.columns[i].type, column: c)
            }
            return try write([.update(table: t.name, conditions: try bind(conditions, t, ev), assignments: assigned)], counted: true, context: &context, data: data)
        case .delete(let table, let conditions):
            guard let t = view(of: table, context, data).table(table) else { throw SQLError.invalidObject(table) }
            return try write([.delete(table: t.name, conditions: try bind(conditions, t, ev))], counted: true, context: &context, data: data)
        case .beginTransaction:
            if context.transaction == nil {
                context.transaction = (data.snapshot(database: context.database) ?? DatabaseData(), [])
            }
            return [.transactionBegan, .done(rowCount: nil)]
        case .commit:
            guard let tx = context.transaction else {
                throw SQLError(3902, "The COMMIT TRANSACTION request has no corresponding BEGIN TRANSACTION.")
            }
            context.transaction = nil
            if !tx.changes.isEmpty {
                if context.readOnly { throw SQLError.readOnly(context.database) }
                _ = try data.commit(database: context.database, changes: tx.changes)
            }
            return [.transactionEnded(committed: true), .done(rowCount: nil)]
        case .rollback:
            guard context.transaction != nil else {
                throw SQLError(3903, "The ROLLBACK TRANSACTION request has no corresponding BEGIN TRANSACTION.")
            }
            context.transaction = nil
            return [.transactionEnded(committed: false), .done(rowCount: nil)]
        case .waitforDelay(let text):
            guard let ms = parseDelay(text) else {
                throw SQLError(148, "Incorrect time syntax in time string '\(text)' used with WAITFOR.", severity: 15)
            }
            return [.delay(milliseconds: ms), .done(rowCount: nil)]
        case .set(let statement):
            return try set(statement, ev: ev, context: &context)
        case .use(let db):
            guard let name = data.databaseName(db) else {
                throw SQLError(911, "Database '\(db)' does not exist. Make sure that the name is entered correctly.")
            }
            if name.lowercased() != context.database.lowercased() && !context.useSwitchesDatabase {
                // Azure SQL Database does not switch databases with USE.
                throw SQLError(40508, "USE statement is not supported to switch between databases. Use a new connection to connect to a different database.")
            }
            let old = context.database
            context.database = name
            return [.databaseChanged(old: old, new: name), .done(rowCount: nil)]
        case .execute(let procedure, let arguments):
            var named: [String: SQLValue] = [:]
            var positional: [SQLValue] = []
            for a in arguments {
                let v = try ev.value(a.value, row: nil)
                if let n = a.name { named[n.lowercased()] = v } else { positional.append(v) }
            }
            return try procedureCall(procedure, positional: positional, named: named, context: &context)
        case .dbccUserOptions:
            let st = context.settings
            var rows: [[SQLValue]] = [
                [.string("textsize"), .string(String(st.textSize == -1 ? 2_147_483_647 : st.textSize))],
                [.string("language"), .string(st.language.name)],
                [.string("dateformat"), .string(st.dateFormat.rawValue)],
                [.string("datefirst"), .string(String(st.dateFirst))],
                [.string("lock_timeout"), .string(String(st.lockTimeout))],
            ]
            let flags: [(String, UserOptions)] = [
                ("quoted_identifier", .quotedIdentifier), ("arithabort", .arithAbort), ("ansi_null_dflt_on", .ansiNullDefaultOn),
                ("ansi_warnings", .ansiWarnings), ("ansi_padding", .ansiPadding), ("ansi_nulls", .ansiNulls),
                ("concat_null_yields_null", .concatNullYieldsNull), ("nocount", .noCount), ("xact_abort", .xactAbort),
                ("implicit_transactions", .implicitTransactions), ("cursor_close_on_commit", .cursorCloseOnCommit),
                ("arithignore", .arithIgnore), ("numeric_roundabort", .numericRoundAbort), ("ansi_null_dflt_off", .ansiNullDefaultOff),
            ]
            for (name, o) in flags where st.options.contains(o) { rows.append([.string(name), .string("SET")]) }
            rows.append([.string("isolation level"), .string(st.isolation.name)])
            let cols = [SQLResultColumn(name: "Set Option", type: .nvarchar(128), nullable: false),
                        SQLResultColumn(name: "Value", type: .nvarchar(128), nullable: false)]
            context.lastRowCount = rows.count
            return [.rows(cols, rows), .done(rowCount: rows.count)]
        }
    }

    /// Procedures a batch can EXEC and a client can call as an RPC by name.
    static func procedureCall(_ procedure: String, positional: [SQLValue], named: [String: SQLValue], context: inout SQLSessionContext) throws(SQLError) -> [SQLResultPart] {
        switch procedure.lowercased() {
        case "sp_datatype_info_100", "sp_datatype_info":
            return [.rows(TypeInfoCatalog.columns, TypeInfoCatalog.rows), .done(rowCount: TypeInfoCatalog.rows.count), .procedureDone(returnStatus: 0)]
        case "sp_set_session_context", "sys.sp_set_session_context":
            func arg(_ name: String, _ i: Int) -> SQLValue? { named[name] ?? (i < positional.count ? positional[i] : nil) }
            guard let key = arg("key", 0), !key.isNull, let keyText = key.asText else {
                throw SQLError(201, "Procedure or function 'sp_set_session_context' expects parameter '@key', which was not supplied.")
            }
            guard keyText.count <= 128 else {
                throw SQLError(15665, "The key '\(keyText.prefix(128))' in the session context is longer than 128 characters.")
            }
            if context.sessionContext[keyText]?.readOnly == true {
                throw SQLError(15664, "Cannot set key '\(keyText)' in the session context. The key has been set as read_only for this session.")
            }
            let value = arg("value", 1) ?? .null
            let readOnly = (arg("read_only", 2)?.asInt ?? 0) != 0
            if value.isNull && !readOnly {
                context.sessionContext[keyText] = nil
            } else {
                context.sessionContext[keyText] = SessionContextValue(value: value, readOnly: readOnly)
            }
            return [.procedureDone(returnStatus: 0)]
        default:
            throw SQLError(2812, "Could not find stored procedure '\(procedure)'.")
        }
    }

    private static func set(_ statement: SQLSetStatement, ev: Evaluator, context: inout SQLSessionContext) throws(SQLError) -> [SQLResultPart] {
        func int(_ e: SQLExpr, _ what: String) throws(SQLError) -> Int64 {
            guard let v = try ev.value(e, row: nil).asInt else {
                throw SQLError(8114, "Error converting data type to int for SET \(what).")
            }
            return v
        }
        var st = context.settings
        switch statement {
        case .options(let options, let on):
            if on {
                st.options.formUnion(options)
                // The two ANSI_NULL_DFLT options exclude each other.
                if options.contains(.ansiNullDefaultOn) { st.options.remove(.ansiNullDefaultOff) }
                if options.contains(.ansiNullDefaultOff) { st.options.remove(.ansiNullDefaultOn) }
            } else {
                st.options.subtract(options)
            }
        case .language(let name):
            guard let l = SessionLanguage.named(name) else {
                throw SQLError(2732, "Error: The language '\(name)' is not supported.", severity: 16)
            }
            let old = st.language.name
            st.setLanguage(l)
            context.settings = st
            return [.languageChanged(old: old, new: l.name), .done(rowCount: nil)]
        case .dateFormat(let text):
            let value = text.hasPrefix("@") ? (try ev.value(.variable(String(text.dropFirst())), row: nil).asText ?? "") : text
            guard let f = DateFormat(rawValue: value.lowercased()) else {
                throw SQLError(2741, "SET DATEFORMAT date order '\(value)' is invalid.")
            }
            st.dateFormat = f
        case .dateFirst(let e):
            let v = try int(e, "DATEFIRST")
            guard (1...7).contains(v) else { throw SQLError(2740, "SET DATEFIRST \(v) is out of range.") }
            st.dateFirst = UInt8(v)
        case .isolation(let level):
            st.isolation = level
        case .textSize(let e):
            let v = try int(e, "TEXTSIZE")
            // TEXTSIZE 0 restores the default of 4 KB.
            st.textSize = v == 0 ? 4096 : Int32(clamping: v)
        case .lockTimeout(let e):
            let v = try int(e, "LOCK_TIMEOUT")
            guard v >= -1 else { throw SQLError(1204, "SET LOCK_TIMEOUT \(v) is out of range: use -1 (wait forever), 0 or a number of milliseconds.") }
            st.lockTimeout = Int32(clamping: v)
        case .deadlockPriority(let e):
            let v = try int(e, "DEADLOCK_PRIORITY")
            guard (-10...10).contains(v) else {
                throw SQLError(1463, "The deadlock priority \(v) is not valid. Valid values are LOW, NORMAL, HIGH and -10 to 10.")
            }
            st.deadlockPriority = Int8(v)
        case .contextInfo(let e):
            let v = try ev.value(e, row: nil)
            let bytes: [UInt8]
            switch v {
            case .bytes(let b): bytes = b
            case .int(let i): bytes = withUnsafeBytes(of: Int32(truncatingIfNeeded: i).bigEndian) { Array($0) }
            case .null: bytes = []
            default: throw SQLError(257, "Implicit conversion from data type \(Evaluator.naturalType(v)) to varbinary is not allowed. Use the CONVERT function to run this query.")
            }
            guard bytes.count <= 128 else { throw SQLError(8152, "String or binary data would be truncated.") }
            // binary(128): padded with zeros.
            st.contextInfo = bytes + Array(repeating: 0, count: 128 - bytes.count)
        case .accepted:
            break
        }
        context.settings = st
        return [.done(rowCount: nil)]
    }

    static func isTemporary(_ table: String) -> Bool { table.hasPrefix("#") }

    /// Where a table lives: the session's temp tables for `#name`, else the database (the
    /// transaction's view of it inside BEGIN TRAN).
    private static func view(of table: String, _ context: SQLSessionContext, _ data: any SQLDataAccess) -> DatabaseData {
        isTemporary(table) ? context.tempTables : currentView(context, data)
    }

    private static func currentView(_ context: SQLSessionContext, _ data: any SQLDataAccess) -> DatabaseData {
        context.transaction?.view ?? data.snapshot(database: context.database) ?? DatabaseData()
    }

    private static func write(_ changes: [RowChange], counted: Bool, context: inout SQLSessionContext, data: any SQLDataAccess) throws(SQLError) -> [SQLResultPart] {
        if let first = changes.first, isTemporary(first.table) {
            // tempdb is writable on every replica; temp tables are the session's own.
            var n = 0
            for c in changes { n += try context.tempTables.apply(c) }
            context.lastRowCount = n
            return [.done(rowCount: counted ? n : nil)]
        }
        if context.readOnly { throw SQLError.readOnly(context.database) }
        let count: Int
        if var tx = context.transaction {
            var n = 0
            for c in changes { n += try tx.view.apply(c) }
            tx.changes += changes
            context.transaction = tx
            count = n
        } else {
            count = try data.commit(database: context.database, changes: changes).reduce(0, +)
        }
        context.lastRowCount = count
        return [.done(rowCount: counted ? count : nil)]
    }

    private static func bind(_ conditions: [SQLCondition], _ t: SQLTable, _ ev: Evaluator) throws(SQLError) -> [BoundCondition] {
        try conditions.map { c throws(SQLError) in
            guard let i = t.columnIndex(c.column) else { throw SQLError.invalidColumn(c.column) }
            return BoundCondition(column: i, op: c.op, value: try ev.value(c.value, row: nil))
        }
    }

    private static func select(items: [SQLSelectItem]?, source: SQLSource?, conditions: [SQLCondition], top: Int?, orderBy: (String, Bool)?, ev: Evaluator, context: inout SQLSessionContext, data: any SQLDataAccess) throws(SQLError) -> [SQLResultPart] {
        switch source {
        case nil:
            guard let items else { throw SQLError(263, "Must specify table to select from.") }
            var cols: [SQLResultColumn] = []
            var row: [SQLValue] = []
            for item in items {
                let (v, t) = try ev.typed(item.expr, row: nil)
                cols.append(SQLResultColumn(name: item.alias ?? ev.defaultName(item.expr), type: t, nullable: true))
                row.append(v)
            }
            context.lastRowCount = 1
            return [.rows(cols, [row]), .done(rowCount: 1)]
        case .rowGenerator(let e):
            guard let n = try ev.value(e, row: nil).asInt, n >= 0 else {
                throw SQLError(8114, "tdsgate.rows expects a non-negative row count.")
            }
            let count = top.map { min($0, Int(n)) } ?? Int(n)
            if let items, items.count == 1, case .function("COUNT", _) = items[0].expr {
                return [.rows([SQLResultColumn(name: items[0].alias ?? "", type: .int, nullable: true)], [[.int(Int64(count))]]), .done(rowCount: 1)]
            }
            context.lastRowCount = count
            return [.generatedRows(count), .done(rowCount: count)]
        case .geoReplicationLinkStatus:
            let cols = [
                SQLResultColumn(name: "link_guid", type: .uniqueidentifier, nullable: false),
                SQLResultColumn(name: "partner_server", type: .nvarchar(256), nullable: false),
                SQLResultColumn(name: "partner_database", type: .nvarchar(128), nullable: false),
                SQLResultColumn(name: "replication_lag_sec", type: .int, nullable: true),
                SQLResultColumn(name: "replication_state", type: .tinyint, nullable: true),
                SQLResultColumn(name: "replication_state_desc", type: .nvarchar(256), nullable: true),
                SQLResultColumn(name: "role", type: .tinyint, nullable: true),
                SQLResultColumn(name: "role_desc", type: .nvarchar(256), nullable: true),
                SQLResultColumn(name: "secondary_allow_connections", type: .tinyint, nullable: true),
                SQLResultColumn(name: "secondary_allow_connections_desc", type: .nvarchar(256), nullable: true),
            ]
            let rows: [[SQLValue]] = context.geoLinks.map { link in
                [.guid(link.linkID), .string(link.partnerServer), .string(link.partnerDatabase), .int(Int64(link.lagSeconds)),
                 .int(2), .string("CATCH_UP"), .int(Int64(link.role)), .string(link.role == 0 ? "PRIMARY" : "SECONDARY"),
                 .int(2), .string("ALL")]
            }
            return try project(cols, rows, items: items, conditions: conditions, top: top, orderBy: orderBy, ev: ev, context: &context)
        case .execSessions:
            let st = context.settings
            func bit(_ o: UserOptions) -> SQLValue { .bit(st.options.contains(o)) }
            let cols: [SQLResultColumn] = [
                ("session_id", SQLType.smallint), ("login_name", .nvarchar(128)), ("host_name", .nvarchar(128)),
                ("program_name", .nvarchar(128)), ("status", .nvarchar(30)), ("database_id", .smallint),
                ("transaction_isolation_level", .smallint), ("language", .nvarchar(128)), ("date_format", .nvarchar(3)),
                ("date_first", .smallint), ("quoted_identifier", .bit), ("arithabort", .bit), ("ansi_null_dflt_on", .bit),
                ("ansi_defaults", .bit), ("ansi_warnings", .bit), ("ansi_padding", .bit), ("ansi_nulls", .bit),
                ("concat_null_yields_null", .bit), ("text_size", .int), ("lock_timeout", .int), ("deadlock_priority", .int),
                ("open_transaction_count", .int), ("context_info", .varbinary(128)),
            ].map { SQLResultColumn(name: $0.0, type: $0.1, nullable: true) }
            let row: [SQLValue] = [
                .int(Int64(context.spid)), .string(context.principal), .string(context.hostName), .string(context.appName),
                .string("running"), .int(Evaluator.databaseID(context.database)), .int(Int64(st.isolation.rawValue)),
                .string(st.language.name), .string(st.dateFormat.rawValue), .int(Int64(st.dateFirst)),
                bit(.quotedIdentifier), bit(.arithAbort), bit(.ansiNullDefaultOn), .bit(st.options.isSuperset(of: .ansiDefaults)),
                bit(.ansiWarnings), bit(.ansiPadding), bit(.ansiNulls), bit(.concatNullYieldsNull),
                .int(Int64(st.textSize == -1 ? 2_147_483_647 : st.textSize)), .int(Int64(st.lockTimeout)), .int(Int64(st.deadlockPriority)),
                .int(context.transaction == nil ? 0 : 1), st.contextInfo.map { .bytes($0) } ?? .bytes([]),
            ]
            return try project(cols, [row], items: items, conditions: conditions, top: top, orderBy: orderBy, ev: ev, context: &context)
        case .table(let name):
            guard let t = view(of: name, context, data).table(name) else { throw SQLError.invalidObject(name) }
            let cols = t.columns.map { SQLResultColumn(name: $0.name, type: $0.type, nullable: $0.nullable) }
            return try project(cols, t.rows, items: items, conditions: conditions, top: top, orderBy: orderBy, ev: ev, context: &context)
        }
    }

    private static func project(_ cols: [SQLResultColumn], _ allRows: [[SQLValue]], items: [SQLSelectItem]?, conditions: [SQLCondition], top: Int?, orderBy: (String, Bool)?, ev: Evaluator, context: inout SQLSessionContext) throws(SQLError) -> [SQLResultPart] {
        let table = SQLTable(name: "", columns: cols.map { SQLColumnDef(name: $0.name, type: $0.type, nullable: $0.nullable, primaryKey: false) }, rows: [])
        let bound = try bind(conditions, table, ev)
        var rows = allRows.filter { r in bound.allSatisfy { $0.matches(r) } }
        if let (col, asc) = orderBy {
            guard let i = table.columnIndex(col) else { throw SQLError.invalidColumn(col) }
            rows.sort { a, b in
                let c = SQLValue.compare(a[i], b[i]) ?? (a[i].isNull ? -1 : 1)
                return asc ? c < 0 : c > 0
            }
        }
        if let top { rows = Array(rows.prefix(top)) }
        guard let items else {
            context.lastRowCount = rows.count
            return [.rows(cols, rows), .done(rowCount: rows.count)]
        }
        if items.count == 1, case .function("COUNT", _) = items[0].expr {
            context.lastRowCount = 1
            return [.rows([SQLResultColumn(name: items[0].alias ?? "", type: .int, nullable: true)], [[.int(Int64(rows.count))]]), .done(rowCount: 1)]
        }
        var outCols: [SQLResultColumn] = []
        for item in items {
            if case .column(let c) = item.expr {
                guard let i = table.columnIndex(c) else { throw SQLError.invalidColumn(c) }
                var col = cols[i]
                col.name = item.alias ?? col.name
                outCols.append(col)
            } else {
                let (_, t) = try ev.typed(item.expr, row: rows.first.map { ($0, table) })
                outCols.append(SQLResultColumn(name: item.alias ?? "", type: t, nullable: true))
            }
        }
        var outRows: [[SQLValue]] = []
        for r in rows {
            var o: [SQLValue] = []
            for item in items { o.append(try ev.value(item.expr, row: (r, table))) }
            outRows.append(o)
        }
        context.lastRowCount = outRows.count
        return [.rows(outCols, outRows), .done(rowCount: outRows.count)]
    }

    static func parseDelay(_ text: String) -> Int? {
        let parts = text.split(separator: ":")
        guard (1...3).contains(parts.count) else { return nil }
        var seconds = 0.0
        for p in parts {
            guard let v = Double(p), v >= 0 else { return nil }
            seconds = seconds * 60 + v
        }
        return seconds <= 86_400 ? Int(seconds * 1000) : nil
    }

    static func coerce(_ v: SQLValue, to type: SQLType, column: String) throws(SQLError) -> SQLValue {
        if v.isNull { return .null }
        let conversionFailed = SQLError(245, "Conversion failed when converting the value '\(v.asText ?? "")' to data type \(type) for column '\(column)'.")
        switch type {
        case .int, .bigint, .smallint, .tinyint:
            guard let i = v.asInt else { throw conversionFailed }
            return .int(i)
        case .bit:
            guard let i = v.asInt else { throw conversionFailed }
            return .bit(i != 0)
        case .float:
            guard let d = v.asDouble else { throw conversionFailed }
            return .float(d)
        case .decimal:
            guard let d = v.asText, Double(d) != nil else { throw conversionFailed }
            return .decimal(d)
        case .nvarchar(let n), .varchar(let n):
            guard let s = v.asText else { throw conversionFailed }
            if let n, s.count > n {
                throw SQLError(2628, "String or binary data would be truncated in table, column '\(column)'. Truncated value: '\(s.prefix(n))'.")
            }
            return .string(s)
        case .varbinary:
            if case .bytes = v { return v }
            if case .string(let s) = v { return .bytes(Array(s.utf8)) }
            throw conversionFailed
        case .uniqueidentifier:
            if case .guid = v { return v }
            if let s = v.asText, let u = UUID(uuidString: s) { return .guid(u) }
            throw conversionFailed
        case .datetime2:
            if case .datetime = v { return v }
            throw conversionFailed
        }
    }
}
