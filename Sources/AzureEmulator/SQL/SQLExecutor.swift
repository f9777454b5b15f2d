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
    func databaseExists(_ name: String) -> Bool
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
                out += try execute(s, params: params, context: &context, data: data)
            } catch {
                out.append(.error(error))
                out.append(.done(rowCount: nil))
                return out
            }
        }
        return out
    }

    static func execute(_ s: SQLStatement, params: [String: SQLValue], context: inout SQLSessionContext, data: any SQLDataAccess) throws(SQLError) -> [SQLResultPart] {
        let ev = Evaluator(context: context, params: params)
        switch s {
        case .select(let items, let source, let conditions, let top, let orderBy):
            return try select(items: items, source: source, conditions: conditions, top: top, orderBy: orderBy, ev: ev, context: &context, data: data)
        case .createTable(let name, let columns, _):
            if columns.isEmpty { throw SQLError(102, "Incorrect syntax near ')'.", severity: 15) }
            return try write([.create(SQLTable(name: name, columns: columns, rows: []))], counted: false, context: &context, data: data)
        case .dropTable(let name, let ifExists):
            if ifExists, currentView(context, data).table(name) == nil { return [.done(rowCount: nil)] }
            return try write([.drop(name)], counted: false, context: &context, data: data)
        case .insert(let table, let columns, let rows):
            guard let t = currentView(context, data).table(table) else { throw SQLError.invalidObject(table) }
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
            guard let t = currentView(context, data).table(table) else { throw SQLError.invalidObject(table) }
            var assigned: [Int: SQLValue] = [:]
            for (c, e) in assignments {
                guard let i = t.columnIndex(c) else { throw SQLError.invalidColumn(c) }
                assigned[i] = try coerce(try ev.value(e, row: nil), to: t.columns[i].type, column: c)
            }
            return try write([.update(table: t.name, conditions: try bind(conditions, t, ev), assignments: assigned)], counted: true, context: &context, data: data)
        case .delete(let table, let conditions):
            guard let t = currentView(context, data).table(table) else { throw SQLError.invalidObject(table) }
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
        case .set:
            return [.done(rowCount: nil)]
        case .use(let db):
            guard data.databaseExists(db) else {
                throw SQLError(911, "Database '\(db)' does not exist. Make sure that the name is entered correctly.")
            }
            if db.lowercased() != context.database.lowercased() {
                // Azure SQL does not switch databases with USE.
                throw SQLError(40508, "USE statement is not supported to switch between databases. Use a new connection to connect to a different database.")
            }
            return [.done(rowCount: nil)]
        case .execute(let procedure, _):
            switch procedure.lowercased() {
            case "sp_datatype_info_100", "sp_datatype_info":
                return [.rows(TypeInfoCatalog.columns, TypeInfoCatalog.rows), .done(rowCount: TypeInfoCatalog.rows.count), .procedureDone(returnStatus: 0)]
            default:
                throw SQLError(2812, "Could not find stored procedure '\(procedure)'.")
            }
        }
    }

    private static func currentView(_ context: SQLSessionContext, _ data: any SQLDataAccess) -> DatabaseData {
        context.transaction?.view ?? data.snapshot(database: context.database) ?? DatabaseData()
    }

    private static func write(_ changes: [RowChange], counted: Bool, context: inout SQLSessionContext, data: any SQLDataAccess) throws(SQLError) -> [SQLResultPart] {
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
        case .table(let name):
            guard let t = currentView(context, data).table(name) else { throw SQLError.invalidObject(name) }
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
