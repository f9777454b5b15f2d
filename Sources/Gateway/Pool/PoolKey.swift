import TDS

/// What makes two client logins able to share a backend connection: the endpoint and the
/// backend identity (whose token logged it in), the database, and every LOGIN7 field that
/// shapes the server session or what the client was told at login. Two logins with equal
/// keys get byte-identical backend LOGIN7s but for the token, so the login reply the
/// backend sent once is the reply each of them would have got.
///
/// In the key (documented in the README, "Connection pooling"):
/// - endpoint, backend identity, database (after the cluster's default is applied);
/// - TDS version and packet size (the reply's LOGINACK and packet-size ENVCHANGE);
/// - language and LCID/collation (`SET LANGUAGE`, date formats, the collation ENVCHANGE);
/// - OptionFlags1/2/3 and TypeFlags, ReadOnlyIntent among them (the SET options a login
///   implies, `ANSI` defaults, the SQL type, the intent routed on);
/// - the ids of the feature extensions the client asked for, except FEDAUTH (tdsgate's
///   own, always sent) (the FEATUREEXTACK each client is given);
/// - the application and host names as sent to the backend (`APP_NAME()`, `HOST_NAME()`,
///   the session tag), and the client interface name.
/// Not in the key: the client's credentials (the backend login never carries them), its
/// PID and connection id (only in `sys.dm_exec_sessions`), its time zone (unused by SQL
/// Server). MARS sessions are not pooled.
struct PoolKey: Hashable, Sendable {
    var endpoint: String
    var backendIdentity: String
    var database: String
    var tdsVersion: UInt32
    var packetSize: UInt32
    var language: String
    var lcid: UInt32
    var optionFlags1: UInt8
    var optionFlags2: UInt8
    var optionFlags3: UInt8
    var typeFlags: UInt8
    var features: [UInt8]
    var appName: String
    var hostName: String
    var clientInterface: String

    /// `backendLogin` is the LOGIN7 as tdsgate sends it (after the app-name tag and a forced
    /// ReadOnlyIntent), so the key holds what the server sees.
    init(endpoint: String, backendIdentity: String, database: String, backendLogin login: Login7) {
        self.endpoint = endpoint
        self.backendIdentity = backendIdentity
        self.database = database.lowercased()
        tdsVersion = login.tdsVersion
        packetSize = login.packetSize
        language = login.language.lowercased()
        lcid = login.clientLCID
        optionFlags1 = login.optionFlags1
        // Integrated security is the client's way in, never the backend's (a token is).
        optionFlags2 = login.optionFlags2 & ~Login7.optionFlags2IntegratedSecurity
        optionFlags3 = login.optionFlags3
        typeFlags = login.typeFlags
        features = login.features.map(\.id).filter { $0 != Login7Feature.fedAuth }.sorted()
        appName = login.appName
        hostName = login.hostName
        clientInterface = login.clientInterfaceName
    }

    var group: BackendPoolState<PoolKey, ObjectIdentifier>.Group {
        .init(endpoint: endpoint, backendIdentity: backendIdentity)
    }
}
