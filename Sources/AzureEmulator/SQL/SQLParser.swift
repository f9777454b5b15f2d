/// Recursive-descent parser for the emulator's T-SQL subset. Anything else is a syntax
/// error (102) or an unknown object (208), never a hang.
struct SQLParser {
    private var tokens: [SQLToken]
    private var pos = 0

    static func parse(_ text: String) throws -> [SQLStatement] {
        var p = SQLParser(tokens: try SQLLexer.tokenize(text))
        return try p.statements()
    }

    private init(tokens: [SQLToken]) { self.tokens = tokens }

    private var current: SQLToken { tokens[pos] }
    private mutating func advance() -> SQLToken { let t = tokens[pos]; if pos < tokens.count - 1 { pos += 1 }; return t }
    private func isKeyword(_ k: String) -> Bool { current.keyword == k }
    private func isSymbol(_ s: String) -> Bool { current == .symbol(s) }
    private mutating func accept(_ k: String) -> Bool { if isKeyword(k) { pos += 1; return true }; return false }
    private mutating func acceptSymbol(_ s: String) -> Bool { if isSymbol(s) { pos += 1; return true }; return false }

    private func syntaxError() -> SQLSyntaxError {
        let near: String
        switch current {
        case .word(let w), .quoted(let w): near = w
        case .symbol(let s): near = s
        case .number(let n): near = n
        case .string(let s, _): near = s
        case .variable(let v): near = "@" + v
        case .system(let v): near = "@@" + v
        case .hex: near = "0x"
        case .end: near = "end of batch"
        }
        return SQLSyntaxError(message: "Incorrect syntax near '\(near)'.", near: near)
    }

    private mutating func expect(_ k: String) throws { guard accept(k) else { throw syntaxError() } }
    private mutating func expectSymbol(_ s: String) throws { guard acceptSymbol(s) else { throw syntaxError() } }

    private mutating func identifier() throws -> String {
        switch current {
        case .word(let w), .quoted(let w): pos += 1; return w
        default: throw syntaxError()
        }
    }

    /// `dbo.name`, `[dbo].[name]`, `name`: schema is dropped except for sys/tdsgate objects.
    private mutating func objectName() throws -> String {
        var parts = [try identifier()]
        // `tempdb..#t`: an empty schema part means the default schema.
        while acceptSymbol(".") { if !isSymbol(".") { parts.append(try identifier()) } }
        if parts.count >= 2, ["sys", "tdsgate"].contains(parts[parts.count - 2].lowercased()) {
            return parts.suffix(2).joined(separator: ".").lowercased()
        }
        return parts.last!
    }

    mutating func statements() throws -> [SQLStatement] {
        var out: [SQLStatement] = []
        while true {
            while acceptSymbol(";") {}
            if current == .end { break }
            out.append(try statement())
        }
        return out
    }

    private mutating func statement() throws -> SQLStatement {
        guard let k = current.keyword else { throw syntaxError() }
        switch k {
        case "SELECT": pos += 1; return try select()
        case "CREATE": pos += 1; return try createTable()
        case "DROP":
            pos += 1
            try expect("TABLE")
            var ifExists = false
            if accept("IF") { try expect("EXISTS"); ifExists = true }
            return .dropTable(name: try objectName(), ifExists: ifExists)
        case "INSERT": pos += 1; return try insert()
        case "UPDATE": pos += 1; return try update()
        case "DELETE":
            pos += 1
            _ = accept("FROM")
            let name = try objectName()
            return .delete(table: name, conditions: try whereClause())
        case "BEGIN":
            pos += 1
            guard accept("TRAN") || accept("TRANSACTION") else { throw syntaxError() }
            if case .word = current, !isKeyword("SELECT") { pos += 1 }
            return .beginTransaction
        case "COMMIT":
            pos += 1
            _ = accept("TRAN") || accept("TRANSACTION") || accept("WORK")
            return .commit
        case "ROLLBACK":
            pos += 1
            _ = accept("TRAN") || accept("TRANSACTION") || accept("WORK")
            return .rollback
        case "WAITFOR":
            pos += 1
            try expect("DELAY")
            guard case .string(let s, _) = advance() else { throw syntaxError() }
            return .waitforDelay(s)
        case "SET":
            pos += 1
            return .set(try setStatement())
        case "DBCC":
            pos += 1
            guard accept("USEROPTIONS") else { throw syntaxError() }
            return .dbccUserOptions
        case "USE":
            pos += 1
            return .use(try identifier())
        case "EXEC", "EXECUTE":
            pos += 1
            let name = try objectName()
            var args: [SQLArgument] = []
            if current != .end, !isSymbol(";"), !isStatementStart() {
                repeat {
                    var argName: String?
                    if case .variable(let v) = current, tokens[pos + 1] == .symbol("=") { argName = v; pos += 2 }
                    args.append(SQLArgument(name: argName, value: try expression()))
                } while acceptSymbol(",")
            }
            return .execute(procedure: name, arguments: args)
        default:
            throw syntaxError()
        }
    }

    private func isStatementStart() -> Bool {
        guard let k = current.keyword else { return false }
        return ["SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "BEGIN", "COMMIT", "ROLLBACK", "WAITFOR", "SET", "USE", "EXEC", "EXECUTE", "DBCC"].contains(k)
    }

    /// SET options that SQL Server has but that change nothing the emulator shows.
    private static let acceptedSetOptions: Set<String> = [
        "ROWCOUNT", "FMTONLY", "NOEXEC", "PARSEONLY", "FORCEPLAN", "STATISTICS", "SHOWPLAN_ALL", "SHOWPLAN_TEXT",
        "SHOWPLAN_XML", "REMOTE_PROC_TRANSACTIONS", "FIPS_FLAGGER", "OFFSETS", "IDENTITY_INSERT",
        "QUERY_GOVERNOR_COST_LIMIT", "DISABLE_DEF_CNST_CHK",
    ]

    private mutating func onOff() throws -> Bool {
        if accept("ON") { return true }
        if accept("OFF") { return false }
        throw syntaxError()
    }

    /// A word, a [quoted] name or a string literal: SET LANGUAGE and SET DATEFORMAT take any.
    private mutating func nameOrString() throws -> String {
        if case .string(let s, _) = current { pos += 1; return s }
        return try identifier()
    }

    private mutating func setStatement() throws -> SQLSetStatement {
        guard let k = current.keyword else { throw syntaxError() }
        pos += 1
        switch k {
        case "TRANSACTION":
            try expect("ISOLATION")
            try expect("LEVEL")
            if accept("READ") {
                if accept("UNCOMMITTED") { return .isolation(.readUncommitted) }
                try expect("COMMITTED")
                return .isolation(.readCommitted)
            }
            if accept("REPEATABLE") { try expect("READ"); return .isolation(.repeatableRead) }
            if accept("SERIALIZABLE") { return .isolation(.serializable) }
            if accept("SNAPSHOT") { return .isolation(.snapshot) }
            throw syntaxError()
        case "LANGUAGE": return .language(try nameOrString())
        case "DATEFORMAT":
            if case .variable(let v) = current { pos += 1; return .dateFormat("@" + v) }
            return .dateFormat(try nameOrString())
        case "DATEFIRST": return .dateFirst(try expression())
        case "TEXTSIZE": return .textSize(try expression())
        case "LOCK_TIMEOUT": return .lockTimeout(try expression())
        case "CONTEXT_INFO": return .contextInfo(try expression())
        case "DEADLOCK_PRIORITY":
            if accept("LOW") { return .deadlockPriority(.integer(-5)) }
            if accept("NORMAL") { return .deadlockPriority(.integer(0)) }
            if accept("HIGH") { return .deadlockPriority(.integer(5)) }
            return .deadlockPriority(try expression())
        default:
            if let first = UserOptions.byName[k] {
                var options = first
                while acceptSymbol(",") {
                    guard let next = current.keyword.flatMap({ UserOptions.byName[$0] }) else { throw syntaxError() }
                    pos += 1
                    options.formUnion(next)
                }
                return .options(options, on: try onOff())
            }
            guard Self.acceptedSetOptions.contains(k) else {
                pos -= 1
                throw syntaxError()
            }
            while current != .end, !isSymbol(";"), !isStatementStart() { pos += 1 }
            return .accepted(k)
        }
    }

    private mutating func select() throws -> SQLStatement {
        var top: Int?
        if accept("TOP") {
            let paren = acceptSymbol("(")
            guard case .number(let n) = advance(), let v = Int(n) else { throw syntaxError() }
            if paren { try expectSymbol(")") }
            top = v
        }
        var items: [SQLSelectItem]? = []
        if acceptSymbol("*") {
            items = nil
        } else {
            repeat {
                let e = try expression()
                var alias: String?
                if accept("AS") {
                    if case .string(let s, _) = current { pos += 1; alias = s } else { alias = try identifier() }
                } else if case .word(let w) = current, !["FROM", "WHERE", "ORDER", "UNION"].contains(w.uppercased()), !isStatementStart() {
                    pos += 1; alias = w
                } else if case .quoted(let w) = current {
                    pos += 1; alias = w
                }
                items!.append(SQLSelectItem(expr: e, alias: alias))
            } while acceptSymbol(",")
        }
        var source: SQLSource?
        if accept("FROM") {
            let name = try objectName()
            if name == "tdsgate.rows" {
                try expectSymbol("(")
                let e = try expression()
                try expectSymbol(")")
                source = .rowGenerator(e)
            } else if name == "sys.dm_geo_replication_link_status" {
                source = .geoReplicationLinkStatus
            } else if name == "sys.dm_exec_sessions" {
                source = .execSessions
            } else {
                source = .table(name)
            }
            if accept("AS") { _ = try identifier() } else if case .word(let w) = current, !["WHERE", "ORDER"].contains(w.uppercased()), !isStatementStart() { pos += 1 }
        }
        let conditions = try whereClause()
        var orderBy: (String, Bool)?
        if accept("ORDER") {
            try expect("BY")
            let col = try identifier()
            var asc = true
            if accept("DESC") { asc = false } else { _ = accept("ASC") }
            orderBy = (col, asc)
        }
        return .select(items: items, source: source, conditions: conditions, top: top, orderBy: orderBy)
    }

    private mutating func whereClause() throws -> [SQLCondition] {
        guard accept("WHERE") else { return [] }
        var out: [SQLCondition] = []
        repeat {
            let col = try identifier()
            guard case .symbol(let op) = advance(), ["=", "<>", "!=", "<", ">", "<=", ">="].contains(op) else { throw syntaxError() }
            out.append(SQLCondition(column: col, op: op == "!=" ? "<>" : op, value: try expression()))
        } while accept("AND")
        return out
    }

    private mutating func createTable() throws -> SQLStatement {
        try expect("TABLE")
        let name = try objectName()
        try expectSymbol("(")
        var cols: [SQLColumnDef] = []
        var pkNames: [String] = []
        repeat {
            if accept("PRIMARY") {
                try expect("KEY")
                _ = accept("CLUSTERED") || accept("NONCLUSTERED")
                try expectSymbol("(")
                repeat { pkNames.append(try identifier()) } while acceptSymbol(",")
                try expectSymbol(")")
                continue
            }
            if accept("CONSTRAINT") { _ = try identifier(); continue }
            let colName = try identifier()
            let type = try sqlType()
            var nullable = true
            var pk = false
            while true {
                if accept("NOT") { try expect("NULL"); nullable = false }
                else if accept("NULL") { nullable = true }
                else if accept("PRIMARY") { try expect("KEY"); _ = accept("CLUSTERED") || accept("NONCLUSTERED"); pk = true; nullable = false }
                else if accept("IDENTITY") { if acceptSymbol("(") { while !acceptSymbol(")") { _ = advance(); if current == .end { throw syntaxError() } } } }
                else { break }
            }
            cols.append(SQLColumnDef(name: colName, type: type, nullable: nullable, primaryKey: pk))
        } while acceptSymbol(",")
        try expectSymbol(")")
        for i in cols.indices where pkNames.contains(where: { $0.caseInsensitiveCompare(cols[i].name) }) {
            cols[i].primaryKey = true
            cols[i].nullable = false
        }
        return .createTable(name: name, columns: cols, ifNotExists: false)
    }

    mutating func sqlType() throws -> SQLType {
        let name = try identifier().lowercased()
        func length() throws -> Int? {
            guard acceptSymbol("(") else { return 1 }
            defer { _ = acceptSymbol(")") }
            if accept("MAX") { return nil }
            guard case .number(let n) = advance(), let v = Int(n) else { throw syntaxError() }
            return v
        }
        switch name {
        case "int", "integer": return .int
        case "bigint": return .bigint
        case "smallint": return .smallint
        case "tinyint": return .tinyint
        case "bit": return .bit
        case "float", "real": if acceptSymbol("(") { _ = advance(); try expectSymbol(")") }; return .float
        case "nvarchar", "nchar", "sysname", "ntext":
            if name == "sysname" { return .nvarchar(128) }
            return .nvarchar(try length())
        case "varchar", "char", "text": return .varchar(try length())
        case "varbinary", "binary": return .varbinary(try length())
        case "datetime2", "datetime", "smalldatetime", "date":
            if acceptSymbol("(") {
                guard case .number(let n) = advance(), let v = Int(n) else { throw syntaxError() }
                try expectSymbol(")")
                return .datetime2(min(max(v, 0), 7))
            }
            return .datetime2(7)
        case "uniqueidentifier": return .uniqueidentifier
        case "decimal", "numeric", "money":
            var p = 18, s = 0
            if acceptSymbol("(") {
                guard case .number(let a) = advance(), let pv = Int(a) else { throw syntaxError() }
                p = pv
                if acceptSymbol(",") {
                    guard case .number(let b) = advance(), let sv = Int(b) else { throw syntaxError() }
                    s = sv
                }
                try expectSymbol(")")
            }
            if name == "money" { p = 19; s = 4 }
            return .decimal(min(max(p, 1), 38), min(max(s, 0), p))
        default:
            throw SQLSyntaxError(message: "Column, parameter, or variable #1: Cannot find data type \(name).", near: name)
        }
    }

    private mutating func insert() throws -> SQLStatement {
        _ = accept("INTO")
        let name = try objectName()
        var columns: [String]?
        if acceptSymbol("(") {
            columns = []
            repeat { columns!.append(try identifier()) } while acceptSymbol(",")
            try expectSymbol(")")
        }
        try expect("VALUES")
        var rows: [[SQLExpr]] = []
        repeat {
            try expectSymbol("(")
            var row: [SQLExpr] = []
            repeat { row.append(try expression()) } while acceptSymbol(",")
            try expectSymbol(")")
            rows.append(row)
        } while acceptSymbol(",")
        return .insert(table: name, columns: columns, rows: rows)
    }

    private mutating func update() throws -> SQLStatement {
        let name = try objectName()
        try expect("SET")
        var assignments: [(String, SQLExpr)] = []
        repeat {
            let col = try identifier()
            try expectSymbol("=")
            assignments.append((col, try expression()))
        } while acceptSymbol(",")
        return .update(table: name, assignments: assignments, conditions: try whereClause())
    }

    mutating func expression() throws -> SQLExpr {
        var lhs = try term()
        while case .symbol(let s) = current, ["+", "-"].contains(s) {
            pos += 1
            lhs = .arithmetic(lhs, s, try term())
        }
        return lhs
    }

    private mutating func term() throws -> SQLExpr {
        var lhs = try primary()
        while case .symbol(let s) = current, ["*", "/", "%"].contains(s) {
            pos += 1
            lhs = .arithmetic(lhs, s, try primary())
        }
        return lhs
    }

    private mutating func primary() throws -> SQLExpr {
        switch advance() {
        case .number(let n):
            if let v = Int64(n) { return .integer(v) }
            return .decimalLiteral(n)
        case .string(let s, let u): return .string(s, unicode: u)
        case .hex(let b): return .binary(b)
        case .variable(let v): return .variable(v)
        case .system(let s): return .system(s)
        case .symbol("-"): return .negate(try primary())
        case .symbol("("):
            let e = try expression()
            try expectSymbol(")")
            return e
        case .word(let w):
            let upper = w.uppercased()
            if upper == "NULL" { return .null }
            if upper == "CAST" || upper == "CONVERT" {
                try expectSymbol("(")
                if upper == "CAST" {
                    let e = try expression()
                    try expect("AS")
                    let t = try sqlType()
                    try expectSymbol(")")
                    return .cast(e, t)
                }
                let t = try sqlType()
                try expectSymbol(",")
                let e = try expression()
                try expectSymbol(")")
                return .cast(e, t)
            }
            if isSymbol("(") {
                pos += 1
                var args: [SQLExpr] = []
                if acceptSymbol("*") {
                    // COUNT(*): the star is no argument.
                    try expectSymbol(")")
                } else if !acceptSymbol(")") {
                    repeat { args.append(try expression()) } while acceptSymbol(",")
                    try expectSymbol(")")
                }
                return .function(upper, args)
            }
            if acceptSymbol(".") { return .column(try identifier()) }
            return .column(w)
        case .quoted(let q):
            return .column(q)
        default:
            pos -= 1
            throw syntaxError()
        }
    }
}

extension String {
    func caseInsensitiveCompare(_ other: String) -> Bool { lowercased() == other.lowercased() }
}
