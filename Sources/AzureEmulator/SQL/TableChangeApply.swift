/// Row-level changes, pre-evaluated so that replaying them on a secondary gives the same
/// rows as on the primary.
enum RowChange: Sendable, Equatable {
    case create(SQLTable)
    case drop(String)
    case insert(table: String, rows: [[SQLValue]])
    case update(table: String, conditions: [BoundCondition], assignments: [Int: SQLValue])
    case delete(table: String, conditions: [BoundCondition])

    var table: String {
        switch self {
        case .create(let t): return t.name
        case .drop(let name): return name
        case .insert(let name, _), .update(let name, _, _), .delete(let name, _): return name
        }
    }
}

struct BoundCondition: Sendable, Equatable {
    var column: Int
    var op: String
    var value: SQLValue

    func matches(_ row: [SQLValue]) -> Bool {
        guard let c = SQLValue.compare(row[column], value) else { return false }
        switch op {
        case "=": return c == 0
        case "<>": return c != 0
        case "<": return c < 0
        case ">": return c > 0
        case "<=": return c <= 0
        case ">=": return c >= 0
        default: return false
        }
    }
}

extension DatabaseData {
    /// Applies a change; returns the number of rows it touched.
    @discardableResult
    mutating func apply(_ change: RowChange) throws(SQLError) -> Int {
        switch change {
        case .create(let t):
            guard tables[t.name.lowercased()] == nil else {
                throw SQLError(2714, "There is already an object named '\(t.name)' in the database.")
            }
            tables[t.name.lowercased()] = t
            return 0
        case .drop(let name):
            guard tables.removeValue(forKey: name.lowercased()) != nil else {
                throw SQLError(3701, "Cannot drop the table '\(name)', because it does not exist or you do not have permission.", severity: 11)
            }
            return 0
        case .insert(let name, let rows):
            guard var t = tables[name.lowercased()] else { throw SQLError.invalidObject(name) }
            let keys = t.columns.indices.filter { t.columns[$0].primaryKey }
            for row in rows {
                for (i, col) in t.columns.enumerated() where !col.nullable && row[i].isNull {
                    throw SQLError(515, "Cannot insert the value NULL into column '\(col.name)', table '\(t.name)'; column does not allow nulls. INSERT fails.")
                }
                if !keys.isEmpty, t.rows.contains(where: { existing in keys.allSatisfy { SQLValue.compare(existing[$0], row[$0]) == 0 } }) {
                    let key = keys.map { row[$0].asText ?? "NULL" }.joined(separator: ", ")
                    throw SQLError(2627, "Violation of PRIMARY KEY constraint 'PK_\(t.name)'. Cannot insert duplicate key in object 'dbo.\(t.name)'. The duplicate key value is (\(key)).", severity: 14)
                }
                t.rows.append(row)
            }
            tables[name.lowercased()] = t
            return rows.count
        case .update(let name, let conditions, let assignments):
            guard var t = tables[name.lowercased()] else { throw SQLError.invalidObject(name) }
            var n = 0
            for r in t.rows.indices where conditions.allSatisfy({ $0.matches(t.rows[r]) }) {
                for (c, v) in assignments { t.rows[r][c] = v }
                n += 1
            }
            tables[name.lowercased()] = t
            return n
        case .delete(let name, let conditions):
            guard var t = tables[name.lowercased()] else { throw SQLError.invalidObject(name) }
            let before = t.rows.count
            t.rows.removeAll { row in conditions.allSatisfy { $0.matches(row) } }
            tables[name.lowercased()] = t
            return before - t.rows.count
        }
    }
}
