import Foundation

/// A value in the emulator's tables and results. Encoded to TDS only at the edge
/// (ResultEncoding.swift), so the SQL engine does not depend on wire details.
enum SQLValue: Sendable, Hashable {
    case null
    case int(Int64)
    case bit(Bool)
    case float(Double)
    case decimal(String)
    case string(String)
    case bytes([UInt8])
    case guid(UUID)
    /// Days since 0001-01-01 and 100 ns ticks since midnight.
    case datetime(days: Int, ticks: Int64)

    var isNull: Bool { self == .null }

    var asText: String? {
        switch self {
        case .null: return nil
        case .int(let v): return String(v)
        case .bit(let b): return b ? "1" : "0"
        case .float(let d): return String(d)
        case .decimal(let s): return s
        case .string(let s): return s
        case .bytes(let b): return "0x" + b.map { String(format: "%02X", $0) }.joined()
        case .guid(let g): return g.uuidString
        case .datetime(let d, let t): return "\(d):\(t)"
        }
    }

    var asInt: Int64? {
        switch self {
        case .int(let v): return v
        case .bit(let b): return b ? 1 : 0
        case .float(let d): return d.isFinite && abs(d) < 9.2e18 ? Int64(d) : nil
        case .decimal(let s): return Double(s).flatMap { abs($0) < 9.2e18 ? Int64($0) : nil }
        case .string(let s): return Int64(s.trimmingCharacters(in: .whitespaces))
        default: return nil
        }
    }

    var asDouble: Double? {
        switch self {
        case .int(let v): return Double(v)
        case .float(let d): return d
        case .decimal(let s), .string(let s): return Double(s)
        case .bit(let b): return b ? 1 : 0
        default: return nil
        }
    }

    /// SQL comparison; nil when either side is NULL (UNKNOWN).
    static func compare(_ a: SQLValue, _ b: SQLValue) -> Int? {
        if a.isNull || b.isNull { return nil }
        if let x = a.asDouble, let y = b.asDouble, !(isText(a) && isText(b)) {
            return x < y ? -1 : (x > y ? 1 : 0)
        }
        switch (a, b) {
        case (.bytes(let x), .bytes(let y)): return x == y ? 0 : (x.lexicographicallyPrecedes(y) ? -1 : 1)
        case (.guid(let x), .guid(let y)): return x == y ? 0 : (x.uuidString < y.uuidString ? -1 : 1)
        default:
            // Default Azure collation is case-insensitive.
            let x = (a.asText ?? "").lowercased(), y = (b.asText ?? "").lowercased()
            return x == y ? 0 : (x < y ? -1 : 1)
        }
    }

    private static func isText(_ v: SQLValue) -> Bool {
        if case .string = v { return true }
        return false
    }
}

struct SQLResultColumn: Sendable, Equatable {
    var name: String
    var type: SQLType
    var nullable: Bool
}

struct SQLError: Error, Sendable, Equatable {
    var number: Int32
    var severity: UInt8
    var state: UInt8
    var message: String

    init(_ number: Int32, _ message: String, severity: UInt8 = 16, state: UInt8 = 1) {
        self.number = number
        self.message = message
        self.severity = severity
        self.state = state
    }

    static func syntax(_ e: SQLSyntaxError) -> SQLError { SQLError(102, e.message, severity: 15) }
    static func invalidObject(_ name: String) -> SQLError { SQLError(208, "Invalid object name '\(name)'.", severity: 16) }
    static func invalidColumn(_ name: String) -> SQLError { SQLError(207, "Invalid column name '\(name)'.", severity: 16) }
    static func readOnly(_ database: String) -> SQLError {
        SQLError(3906, "Failed to update database \"\(database)\" because the database is read-only.", severity: 16)
    }
}
