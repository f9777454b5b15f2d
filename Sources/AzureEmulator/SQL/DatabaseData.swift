/// Rows of one table. Lookups scan: emulator tables are small; the row generator that
/// benchmarks use never materialises.
struct SQLTable: Sendable, Equatable {
    var name: String
    var columns: [SQLColumnDef]
    var rows: [[SQLValue]]

    func columnIndex(_ name: String) -> Int? {
        columns.firstIndex { $0.name.lowercased() == name.lowercased() }
    }
}

/// All tables of one database on one replica.
struct DatabaseData: Sendable, Equatable {
    var tables: [String: SQLTable] = [:]

    func table(_ name: String) -> SQLTable? { tables[name.lowercased()] }
}
