import TDS

/// The SET options `@@OPTIONS` reports, with its bit values (SQL Server's "user options").
struct UserOptions: OptionSet, Sendable, Hashable {
    let rawValue: Int32

    static let disableDeferredConstraintChecking = UserOptions(rawValue: 1)
    static let implicitTransactions = UserOptions(rawValue: 2)
    static let cursorCloseOnCommit = UserOptions(rawValue: 4)
    static let ansiWarnings = UserOptions(rawValue: 8)
    static let ansiPadding = UserOptions(rawValue: 16)
    static let ansiNulls = UserOptions(rawValue: 32)
    static let arithAbort = UserOptions(rawValue: 64)
    static let arithIgnore = UserOptions(rawValue: 128)
    static let quotedIdentifier = UserOptions(rawValue: 256)
    static let noCount = UserOptions(rawValue: 512)
    static let ansiNullDefaultOn = UserOptions(rawValue: 1024)
    static let ansiNullDefaultOff = UserOptions(rawValue: 2048)
    static let concatNullYieldsNull = UserOptions(rawValue: 4096)
    static let numericRoundAbort = UserOptions(rawValue: 8192)
    static let xactAbort = UserOptions(rawValue: 16384)

    /// `SET ANSI_DEFAULTS ON|OFF` switches these together.
    static let ansiDefaults: UserOptions = [.ansiNullDefaultOn, .ansiNulls, .ansiPadding, .ansiWarnings,
                                            .cursorCloseOnCommit, .implicitTransactions, .quotedIdentifier]

    /// The SET statement names of the on/off options.
    static let byName: [String: UserOptions] = [
        "IMPLICIT_TRANSACTIONS": .implicitTransactions, "CURSOR_CLOSE_ON_COMMIT": .cursorCloseOnCommit,
        "ANSI_WARNINGS": .ansiWarnings, "ANSI_PADDING": .ansiPadding, "ANSI_NULLS": .ansiNulls,
        "ARITHABORT": .arithAbort, "ARITHIGNORE": .arithIgnore, "QUOTED_IDENTIFIER": .quotedIdentifier,
        "NOCOUNT": .noCount, "ANSI_NULL_DFLT_ON": .ansiNullDefaultOn, "ANSI_NULL_DFLT_OFF": .ansiNullDefaultOff,
        "CONCAT_NULL_YIELDS_NULL": .concatNullYieldsNull, "NUMERIC_ROUNDABORT": .numericRoundAbort,
        "XACT_ABORT": .xactAbort, "ANSI_DEFAULTS": .ansiDefaults,
    ]

    /// What a login starts with. LOGIN7 fODBC (OptionFlags2 0x02) makes the server set
    /// ANSI_DEFAULTS ON then CURSOR_CLOSE_ON_COMMIT and IMPLICIT_TRANSACTIONS OFF (MS-TDS
    /// 2.2.6.4); CONCAT_NULL_YIELDS_NULL is on for every connection (@@OPTIONS 5432 is what
    /// ODBC and SqlClient sessions show). Other clients send their own SET statements.
    static func loginDefaults(odbc: Bool) -> UserOptions {
        var o: UserOptions = [.concatNullYieldsNull]
        if odbc {
            o.formUnion(.ansiDefaults)
            o.subtract([.cursorCloseOnCommit, .implicitTransactions])
        }
        return o
    }
}

/// SET DATEFORMAT; the numbers are SQL Server's wire codes in session state.
enum DateFormat: String, Sendable, CaseIterable {
    case mdy, dmy, ymd, ydm, myd, dym

    var code: UInt8 { UInt8(DateFormat.allCases.firstIndex(of: self)! + 1) }
    init?(code: UInt8) {
        guard (1...6).contains(code) else { return nil }
        self = DateFormat.allCases[Int(code) - 1]
    }
}

/// SET TRANSACTION ISOLATION LEVEL, numbered as sys.dm_exec_sessions shows it.
enum IsolationLevel: UInt8, Sendable, CaseIterable {
    case readUncommitted = 1, readCommitted, repeatableRead, serializable, snapshot

    var name: String {
        switch self {
        case .readUncommitted: return "read uncommitted"
        case .readCommitted: return "read committed"
        case .repeatableRead: return "repeatable read"
        case .serializable: return "serializable"
        case .snapshot: return "snapshot"
        }
    }
}

/// A language of sys.syslanguages: SET LANGUAGE also sets DATEFORMAT and DATEFIRST.
struct SessionLanguage: Sendable, Equatable {
    var name: String
    var alias: String
    var langID: Int
    var dateFormat: DateFormat
    var dateFirst: UInt8

    static let usEnglish = SessionLanguage(name: "us_english", alias: "English", langID: 0, dateFormat: .mdy, dateFirst: 7)
    static let all: [SessionLanguage] = [
        usEnglish,
        SessionLanguage(name: "Deutsch", alias: "German", langID: 1, dateFormat: .dmy, dateFirst: 1),
        SessionLanguage(name: "Français", alias: "French", langID: 2, dateFormat: .dmy, dateFirst: 1),
        SessionLanguage(name: "Español", alias: "Spanish", langID: 5, dateFormat: .dmy, dateFirst: 1),
        SessionLanguage(name: "Italiano", alias: "Italian", langID: 6, dateFormat: .dmy, dateFirst: 1),
        SessionLanguage(name: "Nederlands", alias: "Dutch", langID: 7, dateFormat: .dmy, dateFirst: 1),
        SessionLanguage(name: "British", alias: "British English", langID: 23, dateFormat: .dmy, dateFirst: 1),
    ]

    /// By name or alias, case-insensitively, as SET LANGUAGE and LOGIN7 name them.
    static func named(_ s: String) -> SessionLanguage? {
        let k = s.lowercased()
        return all.first { $0.name.lowercased() == k || $0.alias.lowercased() == k }
    }
}

/// One SESSION_CONTEXT key.
struct SessionContextValue: Sendable, Equatable {
    var value: SQLValue
    var readOnly: Bool
}

/// Everything SET changes in a session, and what RESETCONNECTION puts back.
struct SessionSettings: Sendable, Equatable {
    var options: UserOptions
    var language: SessionLanguage = .usEnglish
    var dateFormat: DateFormat = .mdy
    var dateFirst: UInt8 = 7
    var isolation: IsolationLevel = .readCommitted
    var lockTimeout: Int32 = -1
    /// TEXTSIZE; fODBC and TDS 7.3+ make it unlimited (-1), others get 4096 until they SET it.
    var textSize: Int32
    var deadlockPriority: Int8 = 0
    /// CONTEXT_INFO: binary(128) once set, NULL before.
    var contextInfo: [UInt8]?

    static func loginDefaults(odbc: Bool, language: SessionLanguage) -> SessionSettings {
        var s = SessionSettings(options: UserOptions.loginDefaults(odbc: odbc), textSize: odbc ? -1 : 4096)
        s.setLanguage(language)
        return s
    }

    mutating func setLanguage(_ l: SessionLanguage) {
        language = l
        dateFormat = l.dateFormat
        dateFirst = l.dateFirst
    }

    var dateFirstAndFormat: String { "\(dateFirst) \(dateFormat.rawValue)" }
}

/// How a session's recoverable state travels in FEATUREEXTACK, SESSIONSTATE and a recovery
/// LOGIN7. The ids are SQL Server's (0 user options, 2 DATEFIRST/DATEFORMAT, 4 deadlock
/// priority, 5 lock timeout, 7 isolation level, 9 TEXTSIZE, 11 CONTEXT_INFO, read off
/// Microsoft's own TDS test server in SqlClient); clients treat them as opaque. The
/// emulator adds 12 for SESSION_CONTEXT and 13 for temp tables (never recoverable).
enum SessionStateCodec {
    static let userOptions: UInt8 = 0
    static let dateFirstDateFormat: UInt8 = 2
    static let deadlockPriority: UInt8 = 4
    static let lockTimeout: UInt8 = 5
    static let isolationLevel: UInt8 = 7
    static let textSize: UInt8 = 9
    static let contextInfo: UInt8 = 11
    static let sessionContext: UInt8 = 12
    static let tempTables: UInt8 = 13

    /// SQL Server's internal bit layout for state 0 (options DWORD, mask DWORD, one byte of
    /// further options), mapped from @@OPTIONS bits.
    private static let internalBits: [(UserOptions, UInt32)] = [
        (.ansiWarnings, 0x1000_0000), (.ansiNulls, 0x0400_0000), (.cursorCloseOnCommit, 0x0200_0000),
        (.quotedIdentifier, 0x0080_0000), (.concatNullYieldsNull, 0x0001_0000), (.ansiNullDefaultOn, 0x0000_4000),
        (.ansiPadding, 0x0000_2000), (.arithAbort, 0x0000_1000), (.numericRoundAbort, 0x0000_0800),
        (.xactAbort, 0x0000_0010), (.noCount, 0x0000_0004), (.arithIgnore, 0x0000_0002),
    ]
    private static let dfltOnBit: UInt32 = 0x0000_4000
    private static let implicitTransactionsBit: UInt8 = 0x02

    /// The recoverable state as entries, in id order.
    static func entries(_ s: SessionSettings, sessionContext: [String: SessionContextValue]) -> [SessionStateEntry] {
        var bits: UInt32 = 0
        var mask: UInt32 = 0xFFFF_FFFF
        for (o, b) in internalBits where s.options.contains(o) { bits |= b }
        // ANSI_NULL_DFLT_OFF: the DFLT_ON bit is off and the mask says it was set.
        if !s.options.contains(.ansiNullDefaultOn) && !s.options.contains(.ansiNullDefaultOff) { mask &= ~dfltOnBit }
        var options: [UInt8] = le(bits) + le(mask)
        options.append(s.options.contains(.implicitTransactions) ? implicitTransactionsBit : 0)
        var out = [
            SessionStateEntry(id: userOptions, value: options),
            SessionStateEntry(id: dateFirstDateFormat, value: [s.dateFirst, s.dateFormat.code]),
            SessionStateEntry(id: deadlockPriority, value: [UInt8(bitPattern: s.deadlockPriority)]),
            SessionStateEntry(id: lockTimeout, value: le(UInt32(bitPattern: s.lockTimeout))),
            SessionStateEntry(id: isolationLevel, value: [s.isolation.rawValue]),
            SessionStateEntry(id: textSize, value: le(UInt32(bitPattern: s.textSize))),
        ]
        if let c = s.contextInfo { out.append(SessionStateEntry(id: contextInfo, value: c)) }
        if !sessionContext.isEmpty { out.append(SessionStateEntry(id: self.sessionContext, value: encode(sessionContext))) }
        return out
    }

    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    /// Applies entries on top of `s`; throws when an entry is not one the emulator sent.
    static func apply(_ entries: [SessionStateEntry], to s: inout SessionSettings,
                      sessionContext: inout [String: SessionContextValue]) throws(Invalid) {
        for e in entries {
            let v = e.value
            switch e.id {
            case userOptions:
                guard v.count == 9 else { throw Invalid(description: "state 0 (user options) has \(v.count) bytes, not 9") }
                let bits = u32(v, 0), mask = u32(v, 4)
                var o: UserOptions = []
                for (opt, b) in internalBits where bits & b != 0 { o.insert(opt) }
                if bits & dfltOnBit == 0 && mask & dfltOnBit != 0 { o.insert(.ansiNullDefaultOff) }
                if v[8] & implicitTransactionsBit != 0 { o.insert(.implicitTransactions) }
                s.options = o
            case dateFirstDateFormat:
                guard v.count == 2, (1...7).contains(v[0]), let f = DateFormat(code: v[1]) else {
                    throw Invalid(description: "state 2 (DATEFIRST/DATEFORMAT) is not a day 1-7 and a format 1-6")
                }
                s.dateFirst = v[0]
                s.dateFormat = f
            case deadlockPriority:
                guard v.count == 1, (-10...10).contains(Int8(bitPattern: v[0])) else { throw Invalid(description: "state 4 (deadlock priority) is out of range") }
                s.deadlockPriority = Int8(bitPattern: v[0])
            case lockTimeout:
                guard v.count == 4 else { throw Invalid(description: "state 5 (lock timeout) has \(v.count) bytes, not 4") }
                s.lockTimeout = Int32(bitPattern: u32(v, 0))
            case isolationLevel:
                guard v.count == 1, let l = IsolationLevel(rawValue: v[0] & 0x0F) else { throw Invalid(description: "state 7 (isolation level) is not a level 1-5") }
                s.isolation = l
            case textSize:
                guard v.count == 4 else { throw Invalid(description: "state 9 (TEXTSIZE) has \(v.count) bytes, not 4") }
                s.textSize = Int32(bitPattern: u32(v, 0))
            case contextInfo:
                guard v.count <= 128 else { throw Invalid(description: "state 11 (CONTEXT_INFO) is longer than 128 bytes") }
                s.contextInfo = v
            case self.sessionContext:
                sessionContext = try decode(v)
            case tempTables:
                guard v.allSatisfy({ $0 == 0 }) else { throw Invalid(description: "the session had temp tables, which cannot be recovered") }
            default:
                throw Invalid(description: "state id \(e.id) is not one this server sends")
            }
        }
    }

    /// SESSION_CONTEXT as entries of (flags u8: bit 0 read-only, key B_VARCHAR-like u16
    /// length + UTF-8, value kind u8, value u32 length + bytes).
    static func encode(_ c: [String: SessionContextValue]) -> [UInt8] {
        var out: [UInt8] = []
        for key in c.keys.sorted() {
            let v = c[key]!
            out.append(v.readOnly ? 1 : 0)
            let k = Array(key.utf8)
            out += le16(UInt16(k.count)) + k
            let (kind, bytes): (UInt8, [UInt8])
            switch v.value {
            case .int(let i): (kind, bytes) = (1, Array(String(i).utf8))
            case .bytes(let b): (kind, bytes) = (2, b)
            case .null: (kind, bytes) = (3, [])
            default: (kind, bytes) = (0, Array((v.value.asText ?? "").utf8))
            }
            out.append(kind)
            out += le(UInt32(bytes.count)) + bytes
        }
        return out
    }

    static func decode(_ v: [UInt8]) throws(Invalid) -> [String: SessionContextValue] {
        var out: [String: SessionContextValue] = [:]
        var i = 0
        func take(_ n: Int) throws(Invalid) -> ArraySlice<UInt8> {
            guard n >= 0, i + n <= v.count else { throw Invalid(description: "state 12 (SESSION_CONTEXT) is truncated") }
            defer { i += n }
            return v[i..<(i + n)]
        }
        while i < v.count {
            let flags = try take(1).first!
            let kl = try take(2)
            let key = String(decoding: try take(Int(kl.first!) | Int(kl.last!) << 8), as: UTF8.self)
            let kind = try take(1).first!
            let lb = Array(try take(4))
            let bytes = Array(try take(Int(u32(lb, 0))))
            let value: SQLValue
            switch kind {
            case 0: value = .string(String(decoding: bytes, as: UTF8.self))
            case 1:
                guard let n = Int64(String(decoding: bytes, as: UTF8.self)) else { throw Invalid(description: "state 12 holds a bad integer") }
                value = .int(n)
            case 2: value = .bytes(bytes)
            case 3: value = .null
            default: throw Invalid(description: "state 12 holds an unknown value kind \(kind)")
            }
            out[key] = SessionContextValue(value: value, readOnly: flags & 1 != 0)
        }
        return out
    }

    /// State 13 while the session has temp tables: their count (a session with them cannot
    /// be recovered).
    static func tempTablesEntry(count: Int) -> SessionStateEntry? {
        count == 0 ? nil : SessionStateEntry(id: tempTables, value: le(UInt32(clamping: count)))
    }

    private static func le(_ v: UInt32) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    private static func le16(_ v: UInt16) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }
    private static func u32(_ b: [UInt8], _ at: Int) -> UInt32 {
        UInt32(b[at]) | UInt32(b[at + 1]) << 8 | UInt32(b[at + 2]) << 16 | UInt32(b[at + 3]) << 24
    }
}
