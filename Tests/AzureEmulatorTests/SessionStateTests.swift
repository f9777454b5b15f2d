import Foundation
import NIOCore
import NIOEmbedded
import Testing
import TDS
@testable import AzureEmulator

/// A LOGIN7 as ODBC Driver 18 sends it (fODBC set), with chosen features and database.
private func odbcLogin(database: String = "appdb", features: [Login7Feature] = [], odbc: Bool = true, language: String = "") -> TDSMessage {
    var l = Login7(tdsVersion: 0x7400_0004, packetSize: 4096, clientProgramVersion: 0, clientPID: 1, connectionID: 0,
                   optionFlags1: 0xE0, optionFlags2: odbc ? 0x03 : 0x01, typeFlags: 0, optionFlags3: 0, clientTimeZone: 0, clientLCID: 0x409,
                   hostName: "h", userName: "app", password: "App-Passw0rd!", appName: "tests",
                   serverName: "localhost", clientInterfaceName: "t", language: language, database: database, attachDBFile: "",
                   changePassword: "", clientID: [0, 0, 0, 0, 0, 0], sspi: [], features: [])
    if !features.isEmpty {
        l.optionFlags3 |= 0x10
        l.features = features
    }
    var b = ByteBuffer()
    l.write(into: &b)
    return TDSMessage(type: .login7, payload: b)
}

private func batch(_ text: String, status: TDSPacketStatus = []) -> TDSMessage {
    var b = ByteBuffer()
    SQLBatch(text: text).write(into: &b)
    return TDSMessage(type: .sqlBatch, status: status, payload: b)
}

private let negotiateRecovery = Login7Feature(id: Login7Feature.sessionRecovery, data: [])

/// A logged-in session on `node`; the login reply's tokens.
private func loggedIn(_ d: DeploymentState, node: String = "plain-primary", login: TDSMessage = odbcLogin(), spid: Int = 60) throws -> (NodeSession, [TDSToken]) {
    let (server, n) = d.node(named: node)!
    let env = NodeEnvironment(deployment: d, server: server, node: n, tlsAvailable: n.encryption != .notSupported,
                              tlsHost: "localhost", verifier: FakeVerifier(), log: { _ in })
    var s = NodeSession(env: env, spid: spid, clientAddress: "127.0.0.1:1")
    _ = s.receive(preloginMessage(.off))
    let reply = try tokens(s.receive(login))
    return (s, reply)
}

private func errors(_ t: [TDSToken]) -> [Int32] {
    t.compactMap { if case .error(let m) = $0 { return m.number } else { return nil } }
}

/// The first column of the first row of a reply.
private func scalar(_ t: [TDSToken]) -> TDSValue? {
    for token in t { if case .row(let values) = token { return values.first } }
    return nil
}

private func sessionStates(_ t: [TDSToken]) throws -> [SessionStateToken] {
    try t.compactMap { if case .other(TDSTokenType.sessionState, let data) = $0 { return try SessionStateToken(body: data) } else { return nil } }
}

private func recoveryAck(_ t: [TDSToken]) throws -> [SessionStateEntry]? {
    for token in t {
        if case .featureExtAck(let acks) = token, let a = acks.first(where: { $0.id == Login7Feature.sessionRecovery }) {
            return try SessionStateEntry.parseDataSet(a.data)
        }
    }
    return nil
}

@Suite struct SessionStateTests {
    @Test func setOptionsShowInAtAtOptionsAndNoCountDropsTheCount() throws {
        var (s, _) = try loggedIn(try demoDeployment())
        // fODBC: ANSI_DEFAULTS without CURSOR_CLOSE_ON_COMMIT/IMPLICIT_TRANSACTIONS, plus CONCAT_NULL_YIELDS_NULL.
        #expect(scalar(try tokens(s.receive(batch("SELECT @@OPTIONS")))) == .int(5432))
        let counted = try tokens(s.receive(batch("SELECT 1")))
        #expect(counted.contains { if case .done(let d) = $0 { return d.status.contains(.count) && d.rowCount == 1 } else { return false } })
        let quiet = try tokens(s.receive(batch("SET NOCOUNT ON; SELECT 1")))
        #expect(!quiet.contains { if case .done(let d) = $0 { return d.status.contains(.count) } else { return false } })
        #expect(scalar(try tokens(s.receive(batch("SELECT @@OPTIONS")))) == .int(5432 | 512))
        _ = s.receive(batch("SET ANSI_NULLS, QUOTED_IDENTIFIER OFF; SET XACT_ABORT ON"))
        #expect(scalar(try tokens(s.receive(batch("SELECT @@OPTIONS")))) == .int((5432 | 512 | 16384) & ~(32 | 256)))
        #expect(errors(try tokens(s.receive(batch("SET NO_SUCH_OPTION ON")))) == [102])

        // A client without fODBC starts with only CONCAT_NULL_YIELDS_NULL.
        var (plain, _) = try loggedIn(try demoDeployment(), login: odbcLogin(odbc: false))
        #expect(scalar(try tokens(plain.receive(batch("SELECT @@OPTIONS")))) == .int(4096))
    }

    @Test func languageDateFormatAndIsolationLevel() throws {
        var (s, _) = try loggedIn(try demoDeployment())
        let changed = try tokens(s.receive(batch("SET LANGUAGE Deutsch")))
        #expect(changed.contains(.envChange(.language(new: "Deutsch", old: "us_english"))))
        #expect(changed.contains { if case .info(let m) = $0 { return m.number == 5703 } else { return false } })
        #expect(scalar(try tokens(s.receive(batch("SELECT @@LANGUAGE")))) == .string("Deutsch"))
        #expect(scalar(try tokens(s.receive(batch("SELECT @@DATEFIRST")))) == .int(1))
        _ = s.receive(batch("SET DATEFORMAT ymd; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE"))
        let row = try tokens(s.receive(batch("SELECT transaction_isolation_level, date_format, language FROM sys.dm_exec_sessions WHERE session_id = @@SPID")))
        #expect(row.contains(.row([.int(4), .string("ymd"), .string("Deutsch")])))
        let options = try tokens(s.receive(batch("DBCC USEROPTIONS")))
        #expect(options.contains(.row([.string("isolation level"), .string("serializable")])))
        #expect(options.contains(.row([.string("dateformat"), .string("ymd")])))
        #expect(errors(try tokens(s.receive(batch("SET LANGUAGE Klingon")))) == [2732])
        #expect(errors(try tokens(s.receive(batch("SET DATEFORMAT abc")))) == [2741])
        #expect(errors(try tokens(s.receive(batch("SET DATEFIRST 9")))) == [2740])
    }

    @Test func sessionContextWithReadOnlyKeys() throws {
        var (s, _) = try loggedIn(try demoDeployment())
        #expect(errors(try tokens(s.receive(batch("EXEC sp_set_session_context @key = N'tenant', @value = N'contoso', @read_only = 1")))) == [])
        #expect(scalar(try tokens(s.receive(batch("SELECT SESSION_CONTEXT(N'tenant')")))) == .string("contoso"))
        #expect(scalar(try tokens(s.receive(batch("SELECT SESSION_CONTEXT(N'other')")))) == .null)
        let refused = try tokens(s.receive(batch("EXEC sp_set_session_context N'tenant', N'fabrikam'")))
        #expect(errors(refused) == [15664])
        #expect(scalar(try tokens(s.receive(batch("SELECT SESSION_CONTEXT(N'tenant')")))) == .string("contoso"))
        _ = s.receive(batch("EXEC sp_set_session_context N'k', 42"))
        #expect(scalar(try tokens(s.receive(batch("SELECT SESSION_CONTEXT(N'k')")))) == .int(42))
    }

    @Test func contextInfoIsBinary128() throws {
        var (s, _) = try loggedIn(try demoDeployment())
        #expect(scalar(try tokens(s.receive(batch("SELECT CONTEXT_INFO()")))) == .null)
        _ = s.receive(batch("SET CONTEXT_INFO 0x0102"))
        #expect(scalar(try tokens(s.receive(batch("SELECT CONTEXT_INFO()")))) == .bytes([1, 2] + Array(repeating: 0, count: 126)))
    }

    @Test func tempTablesAreTheSessionsOwn() throws {
        let d = try demoDeployment()
        var (a, _) = try loggedIn(d, spid: 61)
        var (b, _) = try loggedIn(d, spid: 62)
        #expect(errors(try tokens(a.receive(batch("CREATE TABLE #t (k INT); INSERT INTO #t VALUES (1), (2)")))) == [])
        #expect(scalar(try tokens(a.receive(batch("SELECT COUNT(*) FROM #t")))) == .int(2))
        #expect(scalar(try tokens(a.receive(batch("SELECT OBJECT_ID('tempdb..#t')")))) != .null)
        #expect(errors(try tokens(b.receive(batch("SELECT COUNT(*) FROM #t")))) == [208])
        #expect(scalar(try tokens(b.receive(batch("SELECT OBJECT_ID('tempdb..#t')")))) == .null)
        #expect(d.snapshot(node: "plain-primary", database: "appdb")?.table("#t") == nil, "temp tables never reach the database")
        // tempdb is writable on a read-only replica too.
        var (r, _) = try loggedIn(d, node: "east-replica", spid: 63)
        #expect(errors(try tokens(r.receive(batch("CREATE TABLE #r (k INT); INSERT INTO #r VALUES (1)")))) == [])
    }

    @Test func useSwitchesOnlyOnAManagedInstance() throws {
        let d = try demoDeployment()
        var (mi, _) = try loggedIn(d, node: "compat-loginonly")
        let switched = try tokens(mi.receive(batch("USE scratchdb")))
        #expect(switched.contains(.envChange(.database(new: "scratchdb", old: "appdb"))))
        #expect(scalar(try tokens(mi.receive(batch("SELECT DB_NAME()")))) == .string("scratchdb"))
        #expect(errors(try tokens(mi.receive(batch("USE nosuchdb")))) == [911])

        var (db, _) = try loggedIn(d)
        #expect(errors(try tokens(db.receive(batch("USE master")))) == [40508])
        #expect(try tokens(db.receive(batch("USE appdb"))).contains(.envChange(.database(new: "appdb", old: "appdb"))))
    }

    @Test func resetConnectionPutsTheLoginStateBack() throws {
        let d = try demoDeployment()
        var (s, _) = try loggedIn(d, node: "compat-loginonly")
        _ = s.receive(batch("""
            CREATE TABLE #t (k INT); SET NOCOUNT ON; SET LANGUAGE British; USE scratchdb; SET CONTEXT_INFO 0x01;
            EXEC sp_set_session_context N'who', N'alice', 1; BEGIN TRANSACTION
            """))
        let reply = try tokens(s.receive(batch("SELECT @@OPTIONS, @@LANGUAGE, DB_NAME(), CONTEXT_INFO(), SESSION_CONTEXT(N'who'), @@TRANCOUNT, OBJECT_ID('tempdb..#t')",
                                              status: .resetConnection)))
        // The ack opens the reply; no database or language ENVCHANGE follows (the client resets its own view).
        #expect(reply.first == .envChange(.resetConnectionAck))
        #expect(!reply.contains { if case .envChange(.database) = $0 { return true } else { return false } })
        #expect(reply.contains(.row([.int(5432), .string("us_english"), .string("appdb"), .null, .null, .int(0), .null])))
        // The key was read-only before the reset; it can be set again after it.
        #expect(errors(try tokens(s.receive(batch("EXEC sp_set_session_context N'who', N'bob'")))) == [])
    }

    @Test func resetSkipTransactionKeepsTheTransaction() throws {
        var (s, _) = try loggedIn(try demoDeployment())
        _ = s.receive(batch("BEGIN TRANSACTION; SET NOCOUNT ON"))
        let reply = try tokens(s.receive(batch("SELECT @@TRANCOUNT, @@OPTIONS", status: .resetConnectionSkipTransaction)))
        #expect(reply.first == .envChange(.resetConnectionAck))
        #expect(reply.contains(.row([.int(1), .int(5432)])))
    }

    @Test func sessionLimitRefusesLoginsWith10928() throws {
        let d = try demoDeployment()
        d.setSessionLimit(node: "plain-primary", limit: 2)
        _ = try loggedIn(d, spid: 70)
        _ = try loggedIn(d, spid: 71)
        let (third, refused) = try loggedIn(d, spid: 72)
        #expect(errors(refused) == [10928])
        #expect(refused.contains { if case .error(let m) = $0 { return m.message.contains("session limit for the database is 2") } else { return false } })
        #expect(third.phase == .closed)
        d.endSession(node: "plain-primary", spid: 70)
        #expect(errors(try loggedIn(d, spid: 73).1) == [])
        d.setSessionLimit(node: "plain-primary", limit: nil)
        #expect(errors(try loggedIn(d, spid: 74).1) == [])
        #expect(d.openSessionCount(node: "plain-primary") == 3)
    }

    @Test func sessionLimitFromTheConfig() throws {
        var cfg = try EmulatorConfig.load(yaml: DemoDeployment.yaml.replacingOccurrences(
            of: "{name: plain-primary, kind: primary_replica, encryption: not_supported}",
            with: "{name: plain-primary, kind: primary_replica, encryption: not_supported, max_sessions: 1}"))
        try cfg.resolvePorts(base: 30_000)
        let d = DeploymentState(config: cfg)
        _ = try loggedIn(d, spid: 80)
        #expect(errors(try loggedIn(d, spid: 81).1) == [10928])
        #expect(throws: (any Error).self) {
            _ = try EmulatorConfig.load(yaml: DemoDeployment.yaml.replacingOccurrences(
                of: "{name: plain-primary, kind: primary_replica, encryption: not_supported}",
                with: "{name: plain-primary, kind: primary_replica, encryption: not_supported, max_sessions: 0}"))
        }
    }

    // MARK: Session recovery

    @Test func sessionStateIsReportedOnlyWhenNegotiated() throws {
        let d = try demoDeployment()
        var (plain, plainLogin) = try loggedIn(d)
        #expect(try recoveryAck(plainLogin) == nil)
        #expect(try sessionStates(try tokens(plain.receive(batch("SET XACT_ABORT ON")))).isEmpty)

        var (s, login) = try loggedIn(d, login: odbcLogin(features: [negotiateRecovery]))
        let initial = try #require(try recoveryAck(login))
        #expect(initial.map(\.id) == [0, 2, 4, 5, 7, 9])
        let unchanged = try tokens(s.receive(batch("SELECT 1")))
        #expect(try sessionStates(unchanged).isEmpty)

        let reply = try tokens(s.receive(batch("SET XACT_ABORT ON; SELECT 1")))
        let states = try sessionStates(reply)
        #expect(states.count == 1)
        #expect(states.first?.sequenceNumber == 0)
        #expect(states.first?.recoverable == true)
        #expect(states.first?.entries.map(\.id) == [0])
        // SESSIONSTATE is followed by the DONE that ends the reply.
        let i = try #require(reply.firstIndex { if case .other(TDSTokenType.sessionState, _) = $0 { return true } else { return false } })
        #expect(i == reply.count - 2)
        if case .done(let done) = reply.last { #expect(!done.status.contains(.more)) } else { Issue.record("no final DONE") }

        let second = try sessionStates(try tokens(s.receive(batch("SET LANGUAGE Deutsch"))))
        #expect(second.first?.sequenceNumber == 1)
        #expect(second.first?.entries.map(\.id) == [2], "DATEFIRST and DATEFORMAT follow the language")
    }

    @Test func tempTablesMakeTheSessionUnrecoverable() throws {
        var (s, _) = try loggedIn(try demoDeployment(), login: odbcLogin(features: [negotiateRecovery]))
        let created = try sessionStates(try tokens(s.receive(batch("CREATE TABLE #t (k INT)"))))
        #expect(created.first?.recoverable == false)
        let dropped = try sessionStates(try tokens(s.receive(batch("DROP TABLE #t"))))
        #expect(dropped.first?.recoverable == true)
        #expect(dropped.first?.entries.contains { $0.id == SessionStateCodec.tempTables } == true)
    }

    @Test func aRecoveryLoginRestoresTheState() throws {
        let d = try demoDeployment()
        var (s, login) = try loggedIn(d, node: "compat-loginonly", login: odbcLogin(features: [negotiateRecovery]))
        let initial = try #require(try recoveryAck(login))
        var deltas: [UInt8: [UInt8]] = [:]
        for t in try sessionStates(try tokens(s.receive(batch("SET LANGUAGE British; SET ARITHABORT ON; USE scratchdb; EXEC sp_set_session_context N'who', N'alice', 1")))) {
            for e in t.entries { deltas[e.id] = e.value }
        }
        // What ODBC sends after its connection broke: the initial state, then what changed.
        let data = SessionRecoveryRequest.recover(
            initial: SessionRecoveryData(database: "appdb", collation: ReplyEncoding.collation, language: "us_english", states: initial),
            current: SessionRecoveryData(database: "scratchdb", collation: [], language: "British",
                                         states: deltas.keys.sorted().map { SessionStateEntry(id: $0, value: deltas[$0]!) }))
        var (r, reply) = try loggedIn(d, node: "compat-loginonly",
                                      login: odbcLogin(features: [Login7Feature(id: Login7Feature.sessionRecovery, data: data.featureData)]), spid: 61)
        #expect(errors(reply) == [])
        #expect(reply.contains(.envChange(.database(new: "scratchdb", old: "master"))))
        #expect(reply.contains(.envChange(.language(new: "British", old: ""))))
        let restored = try tokens(r.receive(batch("SELECT DB_NAME(), @@LANGUAGE, @@OPTIONS, @@DATEFIRST, SESSION_CONTEXT(N'who')")))
        #expect(restored.contains(.row([.string("scratchdb"), .string("British"), .int(5432 | 64), .int(1), .string("alice")])))
        // The ack carries the restored state, which the client takes as its deltas.
        #expect(try recoveryAck(reply)?.first { $0.id == 0 }?.value == deltas[0])
        // A reset goes back to the first login's state, not the restored one.
        let reset = try tokens(r.receive(batch("SELECT DB_NAME(), @@LANGUAGE, @@OPTIONS", status: .resetConnection)))
        #expect(reset.contains(.row([.string("appdb"), .string("us_english"), .int(5432)])))
    }

    @Test(arguments: [
        ("scratchdb", "appdb", 18456),    // LOGIN7 database disagrees with the initial state
        ("appdb", "nosuchdb", 4060),      // the database to restore does not exist
    ])
    func inconsistentRecoveryDataIsRefused(loginDatabase: String, target: String, expected: Int32) throws {
        let data = SessionRecoveryRequest.recover(
            initial: SessionRecoveryData(database: "appdb", collation: [], language: "us_english", states: []),
            current: SessionRecoveryData(database: target, collation: [], language: "", states: []))
        let (s, reply) = try loggedIn(try demoDeployment(), node: "compat-loginonly",
                                      login: odbcLogin(database: loginDatabase, features: [Login7Feature(id: Login7Feature.sessionRecovery, data: data.featureData)]))
        #expect(errors(reply) == [expected])
        #expect(s.phase == .closed)
    }

    @Test func recoveryRefusesForeignStatesAndDatabaseSwitchesOnSQLDatabase() throws {
        let d = try demoDeployment()
        let foreign = SessionRecoveryRequest.recover(
            initial: SessionRecoveryData(database: "appdb", collation: [], language: "", states: [SessionStateEntry(id: 99, value: [1])]),
            current: SessionRecoveryData(database: "", collation: [], language: "", states: []))
        #expect(errors(try loggedIn(d, login: odbcLogin(features: [Login7Feature(id: 1, data: foreign.featureData)])).1) == [18456])
        let switched = SessionRecoveryRequest.recover(
            initial: SessionRecoveryData(database: "appdb", collation: [], language: "", states: []),
            current: SessionRecoveryData(database: "master", collation: [], language: "", states: []))
        #expect(errors(try loggedIn(d, login: odbcLogin(features: [Login7Feature(id: 1, data: switched.featureData)])).1) == [18456])
        let garbage = Login7Feature(id: Login7Feature.sessionRecovery, data: [0xFF, 0xFF, 0xFF, 0x7F, 0x01])
        #expect(errors(try loggedIn(d, login: odbcLogin(features: [garbage])).1) == [4002])
    }

    @Test func stateCodecRoundTrips() throws {
        var st = SessionSettings.loginDefaults(odbc: true, language: .usEnglish)
        st.options.formUnion([.xactAbort, .noCount, .implicitTransactions, .ansiNullDefaultOff])
        st.options.remove(.ansiNullDefaultOn)
        st.dateFormat = .ydm
        st.dateFirst = 3
        st.isolation = .snapshot
        st.lockTimeout = 1500
        st.textSize = 65536
        st.deadlockPriority = -5
        st.contextInfo = [9] + Array(repeating: 0, count: 127)
        let context = ["a": SessionContextValue(value: .string("x"), readOnly: true), "b": SessionContextValue(value: .int(-7), readOnly: false)]
        var back = SessionSettings.loginDefaults(odbc: false, language: .usEnglish)
        var backContext: [String: SessionContextValue] = [:]
        try SessionStateCodec.apply(SessionStateCodec.entries(st, sessionContext: context), to: &back, sessionContext: &backContext)
        #expect(back == st)
        #expect(backContext == context)
    }
}

@Suite struct SessionStateReporterTests {
    @Test func resendsStatesAfterTheSessionBecomesRecoverableAgain() {
        var r = SessionStateReporter(acknowledged: [SessionStateEntry(id: 0, value: [1])])
        #expect(r.token(for: [SessionStateEntry(id: 0, value: [1])], recoverable: true) == nil)
        let a = r.token(for: [SessionStateEntry(id: 0, value: [2]), SessionStateEntry(id: 13, value: [1, 0, 0, 0])], recoverable: false)
        #expect(a == SessionStateToken(sequenceNumber: 0, recoverable: false, entries: [SessionStateEntry(id: 0, value: [2]), SessionStateEntry(id: 13, value: [1, 0, 0, 0])]))
        let b = r.token(for: [SessionStateEntry(id: 0, value: [2])], recoverable: true)
        #expect(b == SessionStateToken(sequenceNumber: 1, recoverable: true, entries: [SessionStateEntry(id: 0, value: [2]), SessionStateEntry(id: 13, value: [])]))
    }
}

@Suite struct PlannedFailoverDrainTests {
    private func handler(_ d: DeploymentState) throws -> (EmbeddedChannel, EmbeddedEventLoop) {
        let (s, _) = try loggedIn(d)
        let loop = EmbeddedEventLoop()
        let channel = EmbeddedChannel(handler: NodeChannelHandler(session: s, onClose: {}), loop: loop)
        try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1433)).wait()
        #expect(channel.isActive)
        return (channel, loop)
    }

    private func replyTokens(_ channel: EmbeddedChannel) throws -> [TDSToken] {
        var stream = ByteBuffer()
        while var b = try channel.readOutbound(as: ByteBuffer.self) {
            while let p = try TDSPacket.read(from: &b, maxPacketSize: 65_536) {
                var payload = p.payload
                stream.writeBuffer(&payload)
            }
        }
        var parser = TDSTokenParser()
        return try parser.parse(&stream)
    }

    @Test func aRunningRequestFinishesBeforeTheConnectionCloses() throws {
        let (channel, loop) = try handler(try demoDeployment())
        try channel.writeInbound(batch("WAITFOR DELAY '00:00:02'; SELECT 7"))
        channel.pipeline.fireUserInboundEventTriggered(NodeDrainRequest())
        #expect(channel.isActive, "the request in flight keeps the session open")
        try channel.writeInbound(batch("SELECT 8"))
        loop.advanceTime(by: .seconds(2))
        let t = try replyTokens(channel)
        #expect(scalar(t) == .int(7))
        #expect(!t.contains(.row([.int(8)])), "a request behind the drain is not run")
        #expect(!channel.isActive)
    }

    @Test func anIdleSessionClosesAtOnce() throws {
        let (channel, _) = try handler(try demoDeployment())
        channel.pipeline.fireUserInboundEventTriggered(NodeDrainRequest())
        #expect(!channel.isActive)
    }
}
