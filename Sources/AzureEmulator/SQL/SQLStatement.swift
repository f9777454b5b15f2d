/// The statements and expressions of the emulator's T-SQL subset.
indirect enum SQLExpr: Sendable, Equatable {
    case integer(Int64)
    case decimalLiteral(String)
    case string(String, unicode: Bool)
    case binary([UInt8])
    case null
    case variable(String)
    case system(String)
    case column(String)
    case function(String, [SQLExpr])
    case cast(SQLExpr, SQLType)
    case negate(SQLExpr)
    case arithmetic(SQLExpr, String, SQLExpr)
}

struct SQLSelectItem: Sendable, Equatable {
    var expr: SQLExpr
    var alias: String?
}

enum SQLSource: Sendable, Equatable {
    case table(String)
    case rowGenerator(SQLExpr)
    case geoReplicationLinkStatus
    /// sys.dm_exec_sessions: without VIEW DATABASE STATE a user sees only their own session.
    case execSessions
}

struct SQLCondition: Sendable, Equatable {
    var column: String
    var op: String
    var value: SQLExpr
}

enum SQLStatement: Sendable, Equatable {
    case select(items: [SQLSelectItem]?, source: SQLSource?, conditions: [SQLCondition], top: Int?, orderBy: (String, Bool)?)
    case createTable(name: String, columns: [SQLColumnDef], ifNotExists: Bool)
    case dropTable(name: String, ifExists: Bool)
    case insert(table: String, columns: [String]?, rows: [[SQLExpr]])
    case update(table: String, assignments: [(String, SQLExpr)], conditions: [SQLCondition])
    case delete(table: String, conditions: [SQLCondition])
    case beginTransaction
    case commit
    case rollback
    case waitforDelay(String)
    case set(SQLSetStatement)
    case use(String)
    case execute(procedure: String, arguments: [SQLArgument])
    case dbccUserOptions

    static func == (a: SQLStatement, b: SQLStatement) -> Bool { String(describing: a) == String(describing: b) }
}

/// `EXEC proc @name = value, value`: an argument, named or positional.
struct SQLArgument: Sendable, Equatable {
    var name: String?
    var value: SQLExpr
}

/// The SET statements with an effect the emulator models (SessionSettings).
enum SQLSetStatement: Sendable, Equatable {
    /// `SET NOCOUNT, XACT_ABORT ON`: on/off options, by their @@OPTIONS bits.
    case options(UserOptions, on: Bool)
    case language(String)
    case dateFormat(String)
    case dateFirst(SQLExpr)
    case isolation(IsolationLevel)
    case textSize(SQLExpr)
    case lockTimeout(SQLExpr)
    case deadlockPriority(SQLExpr)
    case contextInfo(SQLExpr)
    /// Options SQL Server has that change nothing the emulator can show (ROWCOUNT,
    /// STATISTICS, FMTONLY...): accepted so that drivers and tools that send them work.
    case accepted(String)
}

/// Column types the emulator stores, each mapped to one TDS wire type.
enum SQLType: Sendable, Equatable {
    case int, bigint, smallint, tinyint, bit
    case nvarchar(Int?)      // nil = MAX
    case varchar(Int?)
    case varbinary(Int?)
    case datetime2(Int)
    case uniqueidentifier
    case decimal(Int, Int)
    case float
}

struct SQLColumnDef: Sendable, Equatable {
    var name: String
    var type: SQLType
    var nullable: Bool
    var primaryKey: Bool
}
