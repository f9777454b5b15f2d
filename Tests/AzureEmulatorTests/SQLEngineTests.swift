import Foundation
import Testing
@testable import AzureEmulator

/// In-memory data access with the same commit semantics as the deployment.
final class MemoryData: SQLDataAccess, @unchecked Sendable {
    var db = DatabaseData()
    func snapshot(database: String) -> DatabaseData? { db }
    func commit(database: String, changes: [RowChange]) throws(SQLError) -> [Int] {
        var copy = db
        var counts: [Int] = []
        for c in changes { counts.append(try copy.apply(c)) }
        db = copy
        return counts
    }
    func databaseName(_ name: String) -> String? { ["appdb", "master"].first { $0 == name.lowercased() } }
}

func makeContext(readOnly: Bool = false) -> SQLSessionContext {
    SQLSessionContext(serverName: "sqlemu-east", nodeName: "east-primary", database: "appdb", principal: "app", spid: 55,
                      localPort: 11001, clientAddress: "127.0.0.1", readOnly: readOnly, geoLinks: [])
}

func rows(_ parts: [SQLResultPart]) -> [[SQLValue]] {
    parts.compactMap { if case .rows(_, let r) = $0 { return r } else { return nil } }.flatMap { $0 }
}

func errors(_ parts: [SQLResultPart]) -> [Int32] {
    parts.compactMap { if case .error(let e) = $0 { return e.number } else { return nil } }
}

@Suite struct SQLEngineTests {
    @Test func selectsSessionFacts() {
        var ctx = makeContext()
        let data = MemoryData()
        let parts = SQLExecutor.run("SELECT 1, @@SERVERNAME, @@SPID, SUSER_SNAME(), DB_NAME(), DATABASEPROPERTYEX(DB_NAME(), 'Updateability') AS u, CONNECTIONPROPERTY('local_tcp_port')", context: &ctx, data: data)
        #expect(errors(parts).isEmpty)
        #expect(rows(parts) == [[.int(1), .string("sqlemu-east"), .int(55), .string("app"), .string("appdb"), .string("READ_WRITE"), .int(11001)]])
        if case .rows(let cols, _) = parts[0] { #expect(cols[5].name == "u") }
    }

    @Test func keyValueTableRoundTrip() {
        var ctx = makeContext()
        let data = MemoryData()
        let script = """
        CREATE TABLE kv (k nvarchar(100) NOT NULL PRIMARY KEY, v int NULL);
        INSERT INTO kv (k, v) VALUES (N'a', 1), (N'b', 2);
        UPDATE kv SET v = 20 WHERE k = N'b';
        SELECT k, v FROM kv WHERE k = 'B';
        SELECT COUNT(*) FROM kv
        """
        let parts = SQLExecutor.run(script, context: &ctx, data: data)
        #expect(errors(parts).isEmpty)
        #expect(rows(parts) == [[.string("b"), .int(20)], [.int(2)]])
        let dup = SQLExecutor.run("INSERT INTO kv VALUES (N'a', 5)", context: &ctx, data: data)
        #expect(errors(dup) == [2627])
    }

    @Test func writesOnReadOnlyReplicaFailWith3906() {
        var ctx = makeContext(readOnly: true)
        let parts = SQLExecutor.run("CREATE TABLE t (a int)", context: &ctx, data: MemoryData())
        #expect(errors(parts) == [3906])
        #expect(SQLExecutor.run("SELECT DATABASEPROPERTYEX(DB_NAME(), 'Updateability')", context: &ctx, data: MemoryData()).contains { if case .rows(_, let r) = $0 { return r == [[.string("READ_ONLY")]] } else { return false } })
    }

    @Test func transactionsCommitAndRollBack() {
        var ctx = makeContext()
        let data = MemoryData()
        _ = SQLExecutor.run("CREATE TABLE t (id int PRIMARY KEY)", context: &ctx, data: data)
        _ = SQLExecutor.run("BEGIN TRAN; INSERT INTO t VALUES (1); ROLLBACK", context: &ctx, data: data)
        #expect(data.db.table("t")?.rows.isEmpty == true)
        _ = SQLExecutor.run("BEGIN TRANSACTION; INSERT INTO t VALUES (2)", context: &ctx, data: data)
        #expect(data.db.table("t")?.rows.isEmpty == true, "uncommitted rows are not visible to others")
        _ = SQLExecutor.run("COMMIT", context: &ctx, data: data)
        #expect(data.db.table("t")?.rows == [[.int(2)]])
    }

    @Test func unknownSQLIsAnErrorNotAHang() {
        var ctx = makeContext()
        #expect(errors(SQLExecutor.run("FROB the widgets", context: &ctx, data: MemoryData())) == [102])
        #expect(errors(SQLExecutor.run("SELECT * FROM nowhere", context: &ctx, data: MemoryData())) == [208])
        #expect(errors(SQLExecutor.run("SELECT 'unterminated", context: &ctx, data: MemoryData())) == [102])
        #expect(errors(SQLExecutor.run("EXEC sp_nothing", context: &ctx, data: MemoryData())) == [2812])
    }

    @Test func parametersBindFromRPC() {
        var ctx = makeContext()
        let parts = SQLExecutor.run("SELECT @P1 + 1, @name", params: ["p1": .int(41), "name": .string("x")], context: &ctx, data: MemoryData())
        #expect(rows(parts) == [[.int(42), .string("x")]])
        #expect(errors(SQLExecutor.run("SELECT @missing", context: &ctx, data: MemoryData())) == [137])
    }

    @Test func waitforAndGenerator() {
        var ctx = makeContext()
        let parts = SQLExecutor.run("WAITFOR DELAY '00:00:01.5'; SELECT * FROM tdsgate.rows(1000000)", context: &ctx, data: MemoryData())
        guard case .delay(let ms) = parts[0], case .generatedRows(let n) = parts[2] else {
            Issue.record("unexpected parts \(parts)")
            return
        }
        #expect(ms == 1500)
        #expect(n == 1_000_000)
    }

    @Test func lexerSurvivesHostileText() {
        var rng = SystemRandomNumberGenerator()
        let alphabet = Array("SELECT FROM WHERE 'N[]\"@@-/*0x123,;()=<>.")
        for _ in 0..<500 {
            let text = String((0..<Int.random(in: 0..<60, using: &rng)).map { _ in alphabet.randomElement(using: &rng)! })
            var ctx = makeContext()
            _ = SQLExecutor.run(text, context: &ctx, data: MemoryData())
        }
    }
}
