import Foundation
import GateSupport
import NIOCore
import TDS

/// Who verifies Entra tokens for a node, as Azure SQL does at login.
public protocol NodeTokenVerifying: Sendable {
    /// Returns the name SUSER_SNAME() shows and the claims used for allow-listing, or
    /// throws an error whose description says why the token was refused.
    func verifyAccessToken(_ token: String) throws -> (principal: String, aliases: [String])
    /// Where an MSAL-workflow client is told to get a token (FEDAUTHINFO STS URL).
    var stsURL: String { get }
}

/// Everything a node session needs to know about its node and deployment.
struct NodeEnvironment: Sendable {
    var deployment: DeploymentState
    var server: ServerConfig
    var node: NodeConfig
    var tlsAvailable: Bool
    var tlsHost: String
    var verifier: any NodeTokenVerifying
    var log: @Sendable (String) -> Void
}

/// What the channel handler must do, in order.
enum NodeAction {
    /// Complete packets, sent as they are (PRELOGIN and login replies).
    case write(ByteBuffer)
    /// Token bytes appended to the reply in progress; the handler cuts them into packets.
    case replyTokens(ByteBuffer)
    /// The reply in progress is complete: send the last packet with EOM.
    case replyEnd
    case startTLS(loginOnly: Bool)
    case dropTLS
    case delay(milliseconds: Int)
    /// Stream `count` generated rows (tdsgate.rows) then continue.
    case streamRows(count: Int)
    case close
    /// The login succeeded on a MARS connection: from here on it speaks SMP (SMPNodeHandler).
    case startSMP
}

/// The protocol logic of one client connection to an emulated Azure SQL node. It turns each
/// inbound message into actions; it holds no channel and does no I/O, so every branch is
/// testable without sockets.
struct NodeSession {
    enum Phase: Equatable {
        case awaitingPrelogin
        case awaitingLogin
        case awaitingFedAuthToken
        case loggedIn
        case closed
    }

    let env: NodeEnvironment
    let spid: Int
    let clientAddress: String
    private(set) var phase: Phase = .awaitingPrelogin
    private(set) var strict = false
    private var loginOnlyTLS = false
    /// PRELOGIN negotiated MARS: SMP starts once the login succeeded.
    private var mars = false
    private var encrypted = false
    private var serverFedAuthRequired: UInt8?
    private var pendingLogin: Login7?
    private(set) var packetSize = 4096
    private var sql: SQLSessionContext?
    private var prepared: [Int32: String] = [:]
    private var nextHandle: Int32 = 1
    private var transactionDescriptor: UInt64 = 0
    private var allocator = ByteBufferAllocator()
    private(set) var identityForLog = "-"
    private(set) var intentForLog = "ReadWrite"
    /// What RESETCONNECTION puts back: the login's database and SET options.
    private var loginDatabase = ""
    private var loginSettings = SessionSettings.loginDefaults(odbc: false, language: .usEnglish)
    private var loginSessionContext: [String: SessionContextValue] = [:]
    /// Set when the client negotiated SESSIONRECOVERY (FeatureExt 0x01).
    private var stateReporter: SessionStateReporter?

    init(env: NodeEnvironment, spid: Int, clientAddress: String) {
        self.env = env
        self.spid = spid
        self.clientAddress = clientAddress
    }

    var serverName: String { env.server.name }

    mutating func strictTLSStarted() {
        strict = true
        encrypted = true
    }

    mutating func receive(_ message: TDSMessage) -> [NodeAction] {
        switch (phase, message.type) {
        case (.awaitingPrelogin, .prelogin):
            return prelogin(message)
        case (.awaitingPrelogin, .login7):
            // A TDS 7.0/7.1-era client without PRELOGIN: only a plaintext node serves it.
            guard env.node.encryption == .notSupported else {
                return fail(18456, 14, "Login failed. The client must send PRELOGIN and use encryption: this server requires it.")
            }
            phase = .awaitingLogin
            return login(message)
        case (.awaitingLogin, .login7):
            return login(message)
        case (.awaitingFedAuthToken, .federatedAuthToken):
            return fedAuthToken(message)
        case (.loggedIn, .sqlBatch):
            return sqlBatch(message)
        case (.loggedIn, .rpc):
            return rpc(message)
        case (.loggedIn, .transactionManager):
            return transactionManager(message)
        case (.loggedIn, .attention), (.awaitingLogin, .attention):
            return [.write(reply { ReplyEncoding.done(.done, status: .attention, into: &$0) })]
        default:
            return fail(4002, 16, "The incoming tabular data stream (TDS) protocol stream is incorrect. Unexpected message type 0x\(String(message.type.rawValue, radix: 16)) in state \(phase).")
        }
    }

    /// Token bytes that end a reply cancelled by an attention.
    func attentionAckTokens() -> ByteBuffer {
        var b = allocator.buffer(capacity: 16)
        ReplyEncoding.done(.done, status: .attention, into: &b)
        return b
    }

    // MARK: PRELOGIN

    private mutating func prelogin(_ message: TDSMessage) -> [NodeAction] {
        let request: PreloginMessage
        do {
            request = try PreloginMessage(parsing: message.payload)
        } catch {
            return fail(4002, 16, "The PRELOGIN packet is malformed: \(error)")
        }
        let client = request.encryption?.mode ?? .notSupported
        var answer: PreloginEncryption
        var tls = false
        if strict {
            answer = .notSupported
        } else {
            switch env.node.encryption {
            case .required:
                answer = .required
                tls = client != .notSupported
            case .off:
                if client == .notSupported || !env.tlsAvailable {
                    answer = .notSupported
                } else if client == .off {
                    answer = .off
                    tls = true
                    loginOnlyTLS = true
                } else {
                    answer = .on
                    tls = true
                }
            case .notSupported:
                answer = .notSupported
            }
        }
        var response = PreloginMessage()
        response.version = PreloginVersion(major: 12, minor: 0, build: 2000, subBuild: 8)
        response.encryption = answer
        response.instance = ""
        response.setData([], for: PreloginOption.threadIDToken)
        // Azure SQL supports MARS: every byte after the login reply is then SMP.
        mars = request.mars == true
        response.mars = mars
        if request.fedAuthRequired != nil {
            serverFedAuthRequired = 0x01
            response.fedAuthRequired = 0x01
        }
        var payload = allocator.buffer(capacity: 64)
        response.write(into: &payload)
        var out = allocator.buffer(capacity: 96)
        TDSMessage(type: .tabularResult, payload: payload).writePackets(into: &out, packetSize: 4096, spid: 0)
        phase = .awaitingLogin
        var actions: [NodeAction] = [.write(out)]
        if answer == .required && client == .notSupported {
            env.log("session node=\(env.node.name) client=\(clientAddress) refused: client does not support encryption")
            actions.append(.close)
            phase = .closed
            return actions
        }
        if tls {
            encrypted = !loginOnlyTLS
            actions.append(.startTLS(loginOnly: loginOnlyTLS))
        }
        return actions
    }

    // MARK: LOGIN7

    private mutating func login(_ message: TDSMessage) -> [NodeAction] {
        var actions: [NodeAction] = []
        if loginOnlyTLS {
            loginOnlyTLS = false
            actions.append(.dropTLS)
        }
        let login: Login7
        do {
            login = try Login7(parsing: message.payload)
        } catch {
            return actions + fail(4002, 16, "The LOGIN7 packet is malformed: \(error)")
        }
        intentForLog = login.readOnlyIntent ? "ReadOnly" : "ReadWrite"
        let requested = login.packetSize == 0 ? 4096 : Int(login.packetSize)
        packetSize = min(max(requested, 512), encrypted ? 16_383 : 32_767)

        if let number = env.deployment.takeLoginFault(node: env.node.name) {
            let (severity, text) = LoginErrors.message(for: number, database: login.database, server: serverName)
            env.log("session node=\(env.node.name) client=\(clientAddress) fault=\(number) injected")
            return actions + fail(number, severity, text)
        }
        let delay = env.deployment.loginDelay(node: env.node.name)
        if delay > 0 { actions.append(.delay(milliseconds: delay)) }

        if login.integratedSecurity {
            return actions + loginFailed(login, 18452, "Login failed. The login is from an untrusted domain and cannot be used with Integrated authentication.", identity: "<integrated>")
        }
        switch login.fedAuth {
        case .securityToken(let token, let echo, _)?:
            if let required = serverFedAuthRequired, echo != (required == 1) {
                return actions + loginFailed(login, 18456, "Login failed: the FEDAUTH echo bit does not match the server's PRELOGIN answer.", identity: "<token>")
            }
            return actions + completeLogin(login, tokenText: token)
        case .msal(let workflow, _)?:
            pendingLogin = login
            phase = .awaitingFedAuthToken
            env.log("session node=\(env.node.name) client=\(clientAddress) fedauth workflow=\(workflow) info sent")
            return actions + [.write(reply {
                TDSToken.fedAuthInfo(FedAuthInfo(stsURL: env.verifier.stsURL, spn: "https://database.windows.net/")).write(into: &$0)
            })]
        case nil:
            guard let account = env.server.logins.first(where: { $0.user.lowercased() == login.userName.lowercased() }),
                  ConstantTime.equals(account.password, login.password)
            else {
                return actions + loginFailed(login, 18456, "Login failed for user '\(login.userName)'.", identity: login.userName)
            }
            return actions + finishLogin(login, principal: account.user, fedAuthAck: false)
        }
    }

    private mutating func fedAuthToken(_ message: TDSMessage) -> [NodeAction] {
        guard let login = pendingLogin else { return fail(4002, 16, "Unexpected federated authentication token.") }
        pendingLogin = nil
        do {
            let m = try FedAuthTokenMessage(parsing: message.payload)
            return completeLogin(login, tokenText: m.token)
        } catch {
            return fail(4002, 16, "The federated authentication token message is malformed: \(error)")
        }
    }

    private mutating func completeLogin(_ login: Login7, tokenText: String) -> [NodeAction] {
        let verified: (principal: String, aliases: [String])
        do {
            verified = try env.verifier.verifyAccessToken(tokenText)
        } catch {
            // Azure SQL names no reason to the client beyond this; the log says why.
            env.log("session node=\(env.node.name) client=\(clientAddress) token refused: \(error)")
            return loginFailed(login, 18456, "Login failed for user '<token-identified principal>'. The access token is invalid: \(error)", identity: "<token>")
        }
        if !env.server.entraUsers.isEmpty {
            let allowed = Set(env.server.entraUsers.map { $0.lowercased() })
            if !verified.aliases.contains(where: { allowed.contains($0.lowercased()) }) {
                return loginFailed(login, 18456, "Login failed for user '\(verified.principal)'.", identity: verified.principal)
            }
        }
        return finishLogin(login, principal: verified.principal, fedAuthAck: true)
    }

    private mutating func finishLogin(_ login: Login7, principal: String, fedAuthAck: Bool) -> [NodeAction] {
        identityForLog = principal
        let gateway = env.node.kind == .gateway
        var database = login.database.isEmpty ? (env.server.databases.first ?? "master") : login.database
        guard let canonical = NodeDataAccess(deployment: env.deployment, node: env.node.name, server: serverName).databaseName(database) else {
            return loginFailed(login, 4060, "Cannot open database \"\(database)\" requested by the login. The login failed.", identity: principal, severity: 11)
        }
        database = canonical
        // fODBC (OptionFlags2 0x02): the server applies ODBC's SET defaults at login.
        var settings = SessionSettings.loginDefaults(odbc: login.optionFlags2 & 0x02 != 0,
                                                     language: SessionLanguage.named(login.language) ?? .usEnglish)
        var sessionContext: [String: SessionContextValue] = [:]
        var recovery: SessionRecoveryRequest?
        if !gateway, let feature = login.features.first(where: { $0.id == Login7Feature.sessionRecovery }) {
            do {
                recovery = try SessionRecoveryRequest(featureData: feature.data)
            } catch {
                return loginFailed(login, 4002, "The SESSIONRECOVERY data of the LOGIN7 is malformed: \(error)", identity: principal, severity: 16)
            }
        }
        var current = (database: database, settings: settings, sessionContext: sessionContext)
        if case .recover(let initial, let toBe)? = recovery {
            switch SessionRecovery.restore(initial: initial, current: toBe, loginDatabase: login.database, odbc: login.optionFlags2 & 0x02 != 0,
                                           flavor: env.server.flavor,
                                           databaseName: { NodeDataAccess(deployment: env.deployment, node: env.node.name, server: serverName).databaseName($0) }) {
            case .failure(let refusal):
                env.log("session node=\(env.node.name) client=\(clientAddress) identity=\(principal) session recovery refused: \(refusal.message)")
                return loginFailed(login, refusal.number, refusal.message, identity: principal, severity: refusal.severity)
            case .success(let restored):
                (database, settings, sessionContext) = (restored.initialDatabase, restored.initialSettings, restored.initialSessionContext)
                current = (restored.database, restored.settings, restored.sessionContext)
            }
        }
        if !gateway, let limit = env.deployment.admitSession(node: env.node.name, spid: spid) {
            return loginFailed(login, 10928, "Resource ID : 2. The session limit for the database is \(limit) and has been reached. See 'https://docs.microsoft.com/azure/azure-sql/database/resource-limits-logical-server' for assistance.",
                               identity: principal, severity: 20)
        }
        var body = allocator.buffer(capacity: 512)
        ReplyEncoding.envChange(.database(new: current.database, old: "master"), into: &body)
        ReplyEncoding.info(5701, message: "Changed database context to '\(current.database)'.", server: serverName, into: &body)
        ReplyEncoding.envChange(.collation(new: ReplyEncoding.collation, old: []), into: &body)
        ReplyEncoding.envChange(.language(new: current.settings.language.name, old: ""), into: &body)
        ReplyEncoding.info(5703, message: "Changed language setting to \(current.settings.language.name).", server: serverName, into: &body)
        ReplyEncoding.envChange(.packetSize(new: String(packetSize), old: "4096"), into: &body)
        TDSToken.loginAck(LoginAck(interface: 1, tdsVersion: 0x7400_0004, programName: "Microsoft SQL Server",
                                   programVersion: [12, 0, 0x07, 0xD0])).write(into: &body)

        var routed: NodeConfig?
        if gateway {
            guard let target = env.deployment.redirectTarget(gatewayServer: serverName, readOnly: login.readOnlyIntent) else {
                let (sev, text) = LoginErrors.message(for: 40613, database: database, server: serverName)
                return loginFailed(login, 40613, text, identity: principal, severity: sev)
            }
            routed = target
            ReplyEncoding.envChange(.routing(protocol: 0, port: UInt16(target.port), server: env.tlsHost), into: &body)
        }
        let currentEntries = SessionStateCodec.entries(current.settings, sessionContext: current.sessionContext)
        if login.hasFeatureExtension {
            var acks: [FeatureAck] = []
            for f in login.features {
                switch f.id {
                case Login7Feature.fedAuth where fedAuthAck: acks.append(FeatureAck(id: f.id, data: []))
                case Login7Feature.azureSQLSupport: acks.append(FeatureAck(id: f.id, data: [0x00]))
                // The initial state on a new login; the restored state on a recovery login
                // (the client takes those as its deltas, MS-TDS 2.2.7.11).
                case Login7Feature.sessionRecovery where recovery != nil:
                    acks.append(FeatureAck(id: f.id, data: SessionStateEntry.dataSetBytes(currentEntries)))
                default: break
                }
            }
            TDSToken.featureExtAck(acks).write(into: &body)
        }
        ReplyEncoding.done(.done, into: &body)
        let out = packets(body)

        if let routed {
            env.log("session node=\(env.node.name) client=\(clientAddress) identity=\(principal) intent=\(intentForLog) database=\(database) redirect=\(routed.name):\(routed.port)")
            phase = .closed
            return [.write(out)]
        }
        loginDatabase = database
        loginSettings = settings
        loginSessionContext = sessionContext
        if recovery != nil { stateReporter = SessionStateReporter(acknowledged: currentEntries) }
        let readOnly = !env.deployment.isWritable(node: env.node.name) || current.database.lowercased() == "master"
        var context = SQLSessionContext(serverName: serverName, nodeName: env.node.name, database: current.database, principal: principal,
                                        spid: spid, localPort: env.node.port, clientAddress: clientAddress, readOnly: readOnly,
                                        geoLinks: env.deployment.geoLinks(node: env.node.name, database: current.database))
        context.appName = login.appName
        context.hostName = login.hostName
        context.settings = current.settings
        context.sessionContext = current.sessionContext
        context.useSwitchesDatabase = env.server.flavor == .managedInstance
        sql = context
        phase = .loggedIn
        let recovered: String
        switch recovery {
        case .recover?: recovered = " recovered=yes"
        case .negotiate?: recovered = " recovery=negotiated"
        case nil: recovered = ""
        }
        env.log("session node=\(env.node.name) client=\(clientAddress) spid=\(spid) identity=\(principal) intent=\(intentForLog) database=\(current.database) tds=0x\(String(login.tdsVersion, radix: 16)) encryption=\(strict ? "strict" : (encrypted ? "full" : "login-only/none")) mars=\(mars)\(recovered) login=ok")
        return mars ? [.write(out), .startSMP] : [.write(out)]
    }

    private mutating func loginFailed(_ login: Login7, _ number: Int32, _ text: String, identity: String, severity: UInt8 = 14) -> [NodeAction] {
        env.log("session node=\(env.node.name) client=\(clientAddress) identity=\(identity) intent=\(login.readOnlyIntent ? "ReadOnly" : "ReadWrite") login=failed error=\(number)")
        return fail(number, severity, text)
    }

    private mutating func fail(_ number: Int32, _ severity: UInt8, _ text: String) -> [NodeAction] {
        phase = .closed
        var body = allocator.buffer(capacity: 256)
        ReplyEncoding.error(number, severity: severity, message: text, server: serverName, into: &body)
        ReplyEncoding.done(.done, status: .error, into: &body)
        return [.write(packets(body)), .close]
    }

    // MARK: Requests

    private mutating func sqlBatch(_ message: TDSMessage) -> [NodeAction] {
        let batch: SQLBatch
        do {
            batch = try SQLBatch(parsing: message.payload)
        } catch {
            return fail(4002, 16, "The SQL batch is malformed: \(error)")
        }
        let reset = resetIfAsked(message)
        let parts = execute(batch.text, params: [:])
        return encode(parts, inProcedure: false, prefix: reset)
    }

    /// RESETCONNECTION (0x08) or RESETCONNECTIONSKIPTRAN (0x10) on the request's first
    /// packet: the session goes back to its state after login before the request runs, and
    /// the reply opens with ENVCHANGE 18. Nothing else is announced: the client resets its
    /// own view of the database, language and session state when it sees the ack (SqlClient
    /// does exactly that), so no database or language ENVCHANGE follows.
    private mutating func resetIfAsked(_ message: TDSMessage) -> ByteBuffer? {
        guard message.status.contains(.resetConnection) || message.status.contains(.resetConnectionSkipTransaction) else { return nil }
        resetSession(keepTransaction: !message.status.contains(.resetConnection))
        env.log("session node=\(env.node.name) spid=\(spid) reset\(message.status.contains(.resetConnection) ? "" : " (transaction kept)")")
        var b = allocator.buffer(capacity: 8)
        ReplyEncoding.envChange(.resetConnectionAck, into: &b)
        return b
    }

    /// sp_reset_connection: temp tables dropped, SET options, database, CONTEXT_INFO and
    /// SESSION_CONTEXT back to the login's, prepared statements freed, and the open
    /// transaction rolled back unless the client asked to keep it.
    private mutating func resetSession(keepTransaction: Bool) {
        guard var c = sql else { return }
        if !keepTransaction { c.transaction = nil }
        c.database = loginDatabase
        c.settings = loginSettings
        c.sessionContext = loginSessionContext
        c.tempTables = DatabaseData()
        c.lastRowCount = 0
        c.geoLinks = env.deployment.geoLinks(node: env.node.name, database: loginDatabase)
        sql = c
        prepared = [:]
        stateReporter?.rebase(SessionStateCodec.entries(loginSettings, sessionContext: loginSessionContext))
    }

    /// The SESSIONSTATE token this reply must carry, if SESSIONRECOVERY was negotiated and
    /// the client's copy of the state is out of date.
    private mutating func sessionStateToken() -> ByteBuffer? {
        guard stateReporter != nil, let c = sql else { return nil }
        var entries = SessionStateCodec.entries(c.settings, sessionContext: c.sessionContext)
        if let temp = SessionStateCodec.tempTablesEntry(count: c.tempTables.tables.count) { entries.append(temp) }
        guard let token = stateReporter!.token(for: entries, recoverable: c.tempTables.tables.isEmpty) else { return nil }
        var b = allocator.buffer(capacity: 64)
        token.write(into: &b)
        return b
    }

    private mutating func execute(_ text: String, params: [String: SQLValue]) -> [SQLResultPart] {
        guard var context = sql else { return [.error(SQLError(4002, "Not logged in.")), .done(rowCount: nil)] }
        context.readOnly = !env.deployment.isWritable(node: env.node.name) || context.database.lowercased() == "master"
        let parts = SQLExecutor.run(text, params: params, context: &context,
                                    data: NodeDataAccess(deployment: env.deployment, node: env.node.name, server: serverName))
        sql = context
        return parts
    }

    private mutating func rpc(_ message: TDSMessage) -> [NodeAction] {
        let request: RPCRequest
        do {
            request = try RPCRequest(parsing: message.payload)
        } catch {
            return fail(4002, 16, "The RPC request is malformed: \(error)")
        }
        let reset = resetIfAsked(message)
        let values = request.parameters.map { RPCValues.sqlValue($0.value) }
        func named(from index: Int) -> [String: SQLValue] {
            var out: [String: SQLValue] = [:]
            for (i, p) in request.parameters.enumerated() where i >= index {
                let name = p.name.hasPrefix("@") ? String(p.name.dropFirst()) : p.name
                out[name.lowercased()] = values[i]
                // Unnamed positional parameters bind as @P1, @P2, ... (ODBC's convention).
                if name.isEmpty { out["p\(i - index + 1)"] = values[i] }
            }
            return out
        }
        switch RPCValues.procedureName(request.procedure) {
        case "sp_executesql":
            guard let text = values.first?.asText else { return encode([.error(SQLError(214, "Procedure expects parameter '@statement' of type 'ntext/nchar/nvarchar'.")), .done(rowCount: nil)], inProcedure: true, prefix: reset) }
            return encode(execute(text, params: named(from: 2)) + [.procedureDone(returnStatus: 0)], inProcedure: true, prefix: reset)
        case "sp_prepexec":
            guard values.count >= 3, let text = values[2].asText else {
                return encode([.error(SQLError(8144, "Procedure or function sp_prepexec has too many arguments specified.")), .done(rowCount: nil)], inProcedure: true, prefix: reset)
            }
            let handle = nextHandle
            nextHandle += 1
            prepared[handle] = text
            var prefix = reset ?? allocator.buffer(capacity: 32)
            RPCValues.writeHandleReturnValue(handle, name: request.parameters[0].name, into: &prefix)
            return encode(execute(text, params: named(from: 3)) + [.procedureDone(returnStatus: 0)], inProcedure: true, prefix: prefix)
        case "sp_prepare":
            guard values.count >= 3, let text = values[2].asText else {
                return encode([.error(SQLError(8144, "Procedure or function sp_prepare has too many arguments specified.")), .done(rowCount: nil)], inProcedure: true, prefix: reset)
            }
            let handle = nextHandle
            nextHandle += 1
            prepared[handle] = text
            var prefix = reset ?? allocator.buffer(capacity: 32)
            RPCValues.writeHandleReturnValue(handle, name: request.parameters[0].name, into: &prefix)
            return encode([.procedureDone(returnStatus: 0)], inProcedure: true, prefix: prefix)
        case "sp_execute":
            guard let h = values.first?.asInt, let text = prepared[Int32(truncatingIfNeeded: h)] else {
                return encode([.error(SQLError(8179, "Could not find prepared statement with handle \(values.first?.asText ?? "NULL").")), .done(rowCount: nil)], inProcedure: true, prefix: reset)
            }
            return encode(execute(text, params: named(from: 1)) + [.procedureDone(returnStatus: 0)], inProcedure: true, prefix: reset)
        case "sp_unprepare":
            if let h = values.first?.asInt { prepared[Int32(truncatingIfNeeded: h)] = nil }
            return encode([.procedureDone(returnStatus: 0)], inProcedure: true, prefix: reset)
        case "sp_datatype_info_100", "sp_datatype_info":
            return encode([.rows(TypeInfoCatalog.columns, TypeInfoCatalog.rows), .done(rowCount: TypeInfoCatalog.rows.count), .procedureDone(returnStatus: 0)], inProcedure: true, prefix: reset)
        case "sp_reset_connection":
            resetSession(keepTransaction: false)
            return encode([.procedureDone(returnStatus: 0)], inProcedure: true, prefix: reset)
        case "sp_set_session_context":
            var named: [String: SQLValue] = [:]
            var positional: [SQLValue] = []
            for (p, v) in zip(request.parameters, values) {
                let name = p.name.hasPrefix("@") ? String(p.name.dropFirst()) : p.name
                if name.isEmpty { positional.append(v) } else { named[name.lowercased()] = v }
            }
            guard var context = sql else { return encode([.error(SQLError(4002, "Not logged in.")), .done(rowCount: nil)], inProcedure: true, prefix: reset) }
            let parts: [SQLResultPart]
            do {
                parts = try SQLExecutor.procedureCall("sp_set_session_context", positional: positional, named: named, context: &context)
                sql = context
            } catch {
                parts = [.error(error)]
            }
            return encode(parts, inProcedure: true, prefix: reset)
        case let other:
            return encode([.error(SQLError(2812, "Could not find stored procedure '\(other)'.")), .done(rowCount: nil)], inProcedure: true, prefix: reset)
        }
    }

    private mutating func transactionManager(_ message: TDSMessage) -> [NodeAction] {
        let request: TransactionManagerRequest
        do {
            request = try TransactionManagerRequest(parsing: message.payload)
        } catch {
            return fail(4002, 16, "The transaction manager request is malformed: \(error)")
        }
        let reset = resetIfAsked(message)
        var parts: [SQLResultPart]
        switch request.requestType {
        case TransactionManagerRequest.begin:
            parts = execute("BEGIN TRANSACTION", params: [:])
        case TransactionManagerRequest.commit, TransactionManagerRequest.rollback:
            let verb = request.requestType == TransactionManagerRequest.commit ? "COMMIT" : "ROLLBACK"
            // Ending nothing is a no-op for the transaction manager interface.
            parts = sql?.transaction == nil ? [] : execute("\(verb) TRANSACTION", params: [:]).filter {
                if case .done = $0 { return false } else { return true }
            }
            // ODBC in manual-commit mode ends one transaction and begins the next at once.
            if request.beginsNewTransaction == true, !parts.contains(where: { if case .error = $0 { return true } else { return false } }) {
                parts += execute("BEGIN TRANSACTION", params: [:]).filter { if case .done = $0 { return false } else { return true } }
            }
            parts.append(.done(rowCount: nil))
        default:
            parts = [.done(rowCount: nil)]
        }
        return encode(parts, inProcedure: false, prefix: reset)
    }

    // MARK: Encoding

    private func descriptorBytes(_ d: UInt64) -> [UInt8] { withUnsafeBytes(of: d.littleEndian) { Array($0) } }

    /// Turns result parts into reply actions. Inside a procedure, statement DONEs become
    /// DONEINPROC with MORE (the Rust-based driver desynchronises without it).
    private mutating func encode(_ parts: [SQLResultPart], inProcedure: Bool, prefix: ByteBuffer?) -> [NodeAction] {
        var actions: [NodeAction] = []
        var body = prefix ?? allocator.buffer(capacity: 256)
        var hadError = false
        // SESSIONSTATE goes right before the DONE/DONEPROC that ends the reply (MS-TDS 2.2.7.21).
        var state = sessionStateToken()
        func final(_ body: inout ByteBuffer) {
            if var s = state { body.writeBuffer(&s); state = nil }
        }
        for (i, part) in parts.enumerated() {
            let last = i == parts.count - 1
            switch part {
            case .rows(let cols, let rows):
                ReplyEncoding.rows(cols, rows, into: &body)
            case .generatedRows(let count):
                RowGenerator.metadata(into: &body)
                actions.append(.replyTokens(body))
                body = allocator.buffer(capacity: 64)
                actions.append(.streamRows(count: count))
            case .done(let rowCount):
                var status: DoneStatus = []
                if hadError { status.insert(.error) }
                if sql?.transaction != nil { status.insert(.inTransaction) }
                if inProcedure {
                    ReplyEncoding.done(.doneInProc, status: status.union(.more), rowCount: rowCount, into: &body)
                } else {
                    if !last { status.insert(.more) } else { final(&body) }
                    ReplyEncoding.done(.done, status: status, rowCount: rowCount, into: &body)
                }
                hadError = false
            case .error(let e):
                hadError = true
                ReplyEncoding.error(e.number, severity: e.severity, state: e.state, message: e.message, server: serverName, into: &body)
                if inProcedure, last {
                    final(&body)
                    ReplyEncoding.done(.doneProc, status: .error, into: &body)
                }
            case .delay(let ms):
                actions.append(.replyTokens(body))
                body = allocator.buffer(capacity: 64)
                actions.append(.delay(milliseconds: ms))
            case .databaseChanged(let old, let new):
                ReplyEncoding.envChange(.database(new: new, old: old), into: &body)
                ReplyEncoding.info(5701, message: "Changed database context to '\(new)'.", server: serverName, into: &body)
            case .languageChanged(let old, let new):
                ReplyEncoding.envChange(.language(new: new, old: old), into: &body)
                ReplyEncoding.info(5703, message: "Changed language setting to \(new).", server: serverName, into: &body)
            case .transactionBegan:
                transactionDescriptor &+= 1
                ReplyEncoding.envChange(.beginTransaction(new: descriptorBytes(transactionDescriptor), old: []), into: &body)
            case .transactionEnded(let committed):
                let d = descriptorBytes(transactionDescriptor)
                ReplyEncoding.envChange(committed ? .commitTransaction(new: [], old: d) : .rollbackTransaction(new: [], old: d), into: &body)
            case .procedureDone(let status):
                TDSToken.returnStatus(status).write(into: &body)
                var done: DoneStatus = sql?.transaction != nil ? .inTransaction : []
                if !last { done.insert(.more) } else { final(&body) }
                ReplyEncoding.done(.doneProc, status: done, into: &body)
            }
        }
        if state != nil {
            // The reply ended without a final DONE of its own (cannot happen with the
            // executor's parts, but the token must never be left without one).
            final(&body)
            ReplyEncoding.done(.done, into: &body)
        }
        actions.append(.replyTokens(body))
        actions.append(.replyEnd)
        return actions
    }

    /// One reply message from token bytes.
    private func packets(_ body: ByteBuffer) -> ByteBuffer {
        var out = allocator.buffer(capacity: body.readableBytes + 16)
        TDSMessage(type: .tabularResult, payload: body).writePackets(into: &out, packetSize: packetSize, spid: UInt16(truncatingIfNeeded: spid))
        return out
    }

    private func reply(_ build: (inout ByteBuffer) -> Void) -> ByteBuffer {
        var body = allocator.buffer(capacity: 64)
        build(&body)
        return packets(body)
    }
}
