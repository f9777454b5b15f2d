import TDS

/// A recovery login (SESSIONRECOVERY with data, MS-TDS 2.2.6.4): the initial state the
/// server acknowledged at the first login, and the state to restore on top of it. Pure:
/// it checks the data against this server and returns both states, or why the login fails.
enum SessionRecovery {
    struct Restored: Equatable {
        /// What a later RESETCONNECTION goes back to.
        var initialDatabase: String
        var initialSettings: SessionSettings
        var initialSessionContext: [String: SessionContextValue]
        /// Where the session continues.
        var database: String
        var settings: SessionSettings
        var sessionContext: [String: SessionContextValue]
    }

    struct Refusal: Error, Equatable {
        var number: Int32
        var severity: UInt8
        var message: String
    }

    static func restore(initial: SessionRecoveryData, current: SessionRecoveryData, loginDatabase: String, odbc: Bool,
                        flavor: ServerFlavor, databaseName: (String) -> String?) -> Result<Restored, Refusal> {
        func inconsistent(_ why: String) -> Result<Restored, Refusal> {
            .failure(Refusal(number: 18456, severity: 14,
                             message: "Login failed. The session recovery data does not match this session: \(why)."))
        }
        guard !initial.database.isEmpty else { return inconsistent("the initial state names no database") }
        // The client reconnects with the login it first sent, whose database the initial state records.
        if !loginDatabase.isEmpty, loginDatabase.lowercased() != initial.database.lowercased() {
            return inconsistent("the LOGIN7 asks for database '\(loginDatabase)' but the initial state is in '\(initial.database)'")
        }
        for collation in [initial.collation, current.collation] where !collation.isEmpty && collation != ReplyEncoding.collation {
            return inconsistent("collation \(collation.map { String(format: "%02X", $0) }.joined()) is not the server's")
        }
        guard let initialDatabase = databaseName(initial.database) else {
            return .failure(Refusal(number: 4060, severity: 11, message: "Cannot open database \"\(initial.database)\" requested by the login. The login failed."))
        }
        let targetName = current.database.isEmpty ? initial.database : current.database
        guard let database = databaseName(targetName) else {
            return .failure(Refusal(number: 4060, severity: 11, message: "Cannot open database \"\(targetName)\" requested by the login. The login failed."))
        }
        if flavor == .sqlDatabase, database.lowercased() != initialDatabase.lowercased() {
            return inconsistent("a session of Azure SQL Database cannot have switched to database '\(database)'")
        }
        guard let initialLanguage = initial.language.isEmpty ? .usEnglish : SessionLanguage.named(initial.language) else {
            return inconsistent("language '\(initial.language)' is unknown")
        }
        guard let language = current.language.isEmpty ? initialLanguage : SessionLanguage.named(current.language) else {
            return inconsistent("language '\(current.language)' is unknown")
        }
        var initialSettings = SessionSettings.loginDefaults(odbc: odbc, language: initialLanguage)
        var initialContext: [String: SessionContextValue] = [:]
        do {
            try SessionStateCodec.apply(initial.states, to: &initialSettings, sessionContext: &initialContext)
        } catch {
            return inconsistent("initial \(error)")
        }
        var settings = initialSettings
        settings.language = language
        var context = initialContext
        do {
            try SessionStateCodec.apply(current.states, to: &settings, sessionContext: &context)
        } catch {
            return inconsistent(error.description)
        }
        return .success(Restored(initialDatabase: initialDatabase, initialSettings: initialSettings, initialSessionContext: initialContext,
                                 database: database, settings: settings, sessionContext: context))
    }
}
