/// The result set of sp_datatype_info_100. pyodbc calls it at connect and crashes if it
/// gets no result set, so it has the real column list and a few real rows.
enum TypeInfoCatalog {
    static let columns: [SQLResultColumn] = [
        ("TYPE_NAME", SQLType.nvarchar(128), false), ("DATA_TYPE", .smallint, false), ("COLUMN_SIZE", .int, true),
        ("LITERAL_PREFIX", .varchar(32), true), ("LITERAL_SUFFIX", .varchar(32), true), ("CREATE_PARAMS", .varchar(32), true),
        ("NULLABLE", .smallint, false), ("CASE_SENSITIVE", .smallint, false), ("SEARCHABLE", .smallint, false),
        ("UNSIGNED_ATTRIBUTE", .smallint, true), ("MONEY", .smallint, false), ("AUTO_INCREMENT", .smallint, true),
        ("LOCAL_TYPE_NAME", .nvarchar(128), true), ("MINIMUM_SCALE", .smallint, true), ("MAXIMUM_SCALE", .smallint, true),
        ("SQL_DATA_TYPE", .smallint, false), ("SQL_DATETIME_SUB", .smallint, true), ("NUM_PREC_RADIX", .int, true),
        ("INTERVAL_PRECISION", .smallint, true), ("USERTYPE", .smallint, true),
    ].map { SQLResultColumn(name: $0.0, type: $0.1, nullable: $0.2) }

    private static func row(_ name: String, _ dataType: Int64, _ size: Int64?, _ prefix: String?, _ suffix: String?, _ params: String?, caseSensitive: Int64 = 0, searchable: Int64 = 3, unsigned: Int64? = 0, minScale: Int64? = nil, maxScale: Int64? = nil, sqlDataType: Int64? = nil, radix: Int64? = nil, userType: Int64 = 0) -> [SQLValue] {
        func o(_ v: Int64?) -> SQLValue { v.map { .int($0) } ?? .null }
        func s(_ v: String?) -> SQLValue { v.map { .string($0) } ?? .null }
        return [.string(name), .int(dataType), o(size), s(prefix), s(suffix), s(params), .int(1), .int(caseSensitive),
                .int(searchable), o(unsigned), .int(0), .int(0), .string(name), o(minScale), o(maxScale),
                .int(sqlDataType ?? dataType), .null, o(radix), .null, .int(userType)]
    }

    static let rows: [[SQLValue]] = [
        row("uniqueidentifier", -11, 36, "'", "'", nil, searchable: 2, unsigned: nil),
        row("bigint", -5, 19, nil, nil, nil, searchable: 2, minScale: 0, maxScale: 0, radix: 10),
        row("varbinary", -3, 8000, "0x", nil, "max length", searchable: 2, unsigned: nil, userType: 4),
        row("nvarchar", -9, 4000, "N'", "'", "max length", searchable: 3, unsigned: nil),
        row("varchar", 12, 8000, "'", "'", "max length", searchable: 3, unsigned: nil, userType: 2),
        row("bit", -7, 1, nil, nil, nil, searchable: 2, minScale: 0, maxScale: 0, userType: 16),
        row("tinyint", -6, 3, nil, nil, nil, searchable: 2, unsigned: 1, minScale: 0, maxScale: 0, radix: 10, userType: 5),
        row("decimal", 3, 38, nil, nil, "precision,scale", searchable: 2, minScale: 0, maxScale: 38, radix: 10, userType: 24),
        row("int", 4, 10, nil, nil, nil, searchable: 2, minScale: 0, maxScale: 0, radix: 10, userType: 7),
        row("smallint", 5, 5, nil, nil, nil, searchable: 2, minScale: 0, maxScale: 0, radix: 10, userType: 6),
        row("float", 6, 53, nil, nil, nil, searchable: 2, radix: 2, userType: 8),
        row("datetime2", 93, 27, "'", "'", "scale", searchable: 3, unsigned: nil, minScale: 0, maxScale: 7, sqlDataType: 9),
    ]
}
