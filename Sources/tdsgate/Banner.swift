import AzureEmulator
import Foundation

/// What `demo` and `emulate` print: endpoints and connection strings that work as shown.
enum Banner {
    /// `tdsgate emulate`: the emulated deployment alone.
    static func emulator(_ rt: AzureEmulatorRuntime) -> String {
        (["tdsgate: emulated Azure SQL deployment is up (Ctrl-C to stop)", ""] + emulatorLines(rt)).joined(separator: "\n")
    }

    /// What the demo's proxy is, for its part of the banner.
    struct DemoProxy {
        var port: Int
        var adminURL: String
        var configFile: String
        var auditFile: String
        var freetdsConf: String
        var caFile: String
        var backendIdentity: String
        var writer: (user: String, password: String)
        var reader: (user: String, password: String)
        var tokenURL: String
        var tokenClientID: String
    }

    /// The name of the demo proxy's section in the freetds.conf the demo writes.
    static let freetdsServer = "tdsgate-demo"

    /// `tdsgate demo`: the proxy first (what the user came for), then commands to try, then
    /// the emulated deployment behind it. Every "try this" line starting with `$ ` is a
    /// shell command that works as printed (Tests/Interop/test_quickstart.py runs them).
    static func demo(proxy p: DemoProxy, emulator rt: AzureEmulatorRuntime) -> String {
        let odbc = "Driver={ODBC Driver 18 for SQL Server};Server=tcp:localhost,\(p.port);Database=appdb;"
            + "UID=\(p.writer.user);PWD=\(p.writer.password);Encrypt=yes"
        func tsql(_ sql: String, _ login: (user: String, password: String)) -> String {
            // printf's format in double quotes, so SQL string literals keep their single quotes.
            "printf \"\(sql)\\ngo\\n\" | FREETDSCONF=\(p.freetdsConf) tsql -S \(freetdsServer) -U \(login.user) -P '\(login.password)' -D appdb -o q"
        }
        var lines: [String] = [
            "tdsgate demo is up (Ctrl-C to stop): tdsgate in front of an emulated Azure SQL failover group",
            "",
            "tdsgate proxy: localhost,\(p.port)  (logs in to Azure SQL as \(p.backendIdentity))",
            "  ODBC 18 / mssql-python (run with SSL_CERT_FILE=\(p.caFile)):",
            "    \(odbc)",
            "    add ApplicationIntent=ReadOnly, or log in as \(p.reader.user) / \(p.reader.password), to land on a readable secondary",
            "  pytds:",
            "    pytds.connect(server='localhost', port=\(p.port), database='appdb', user='\(p.writer.user)', password='\(p.writer.password)', cafile='\(p.caFile)')",
            "  Entra token clients: get a token from \(p.tokenURL) (client_credentials, client_id \(p.tokenClientID)) and pass it as an access token.",
            "  config \(p.configFile)",
            "  admin API \(p.adminURL), audit trail \(p.auditFile)",
            "",
            "Try this (in another terminal, in this folder):",
            "  a query (FreeTDS tsql; the server and the identity tdsgate logged in with):",
            "    $ " + tsql("SELECT @@SERVERNAME, SUSER_SNAME()", p.writer),
            "  a ReadOnly query (\(p.reader.user) may only read, so tdsgate sends it to a readable secondary: east-replica or west):",
            "    $ " + tsql("SELECT @@SERVERNAME, DATABASEPROPERTYEX(DB_NAME(), 'Updateability')", p.reader),
            "  the endpoints as tdsgate sees them, redrawn every second (Ctrl-C to stop):",
            "    $ swift run tdsgate status --admin-url \(p.adminURL) --watch",
            "  a planned failover to west and back while synthetic sessions run, with an HTML report:",
            "    $ TDSGATE_DRILL_PASSWORD='\(p.writer.password)' swift run tdsgate drill failover --config \(p.configFile) --user \(p.writer.user) --planned --failback --report drill.html",
            "  every session's packets as they pass, decoded, secrets redacted (Ctrl-C to stop):",
            "    $ swift run tdsgate dump --follow --admin-url \(p.adminURL)",
            "",
            "Behind it, the emulated Azure SQL deployment:",
        ]
        lines += emulatorLines(rt)
        return lines.joined(separator: "\n")
    }

    /// A freetds.conf with the demo proxy as server `tdsgate-demo`: full TLS, the
    /// certificate checked against the demo's CA (FreeTDS checks the name too).
    static func freetdsConf(port: Int, caFile: String) -> String {
        """
        # Written by tdsgate demo: FreeTDS settings for its proxy (FREETDSCONF=<this file> tsql -S \(freetdsServer) ...).
        [\(freetdsServer)]
        \thost = localhost
        \tport = \(port)
        \ttds version = 7.4
        \tencryption = require
        \tca file = \(caFile)

        """
    }

    /// The emulated nodes, the CA and direct connection strings.
    private static func emulatorLines(_ rt: AzureEmulatorRuntime) -> [String] {
        let d = rt.portsDescription()
        let ca = d["ca_file"] as? String ?? "?"
        let nodes = d["nodes"] as? [[String: Any]] ?? []
        let login = (d["sql_logins"] as? [[String: Any]])?.first
        let user = login?["user"] as? String ?? "app"
        let password = login?["password"] as? String ?? "?"
        var lines: [String] = []
        lines.append("Endpoints:")
        for n in nodes {
            let name = n["name"] as? String ?? "?"
            let port = n["port"] as? Int ?? 0
            lines.append("  \(name.padding(toLength: 18, withPad: " ", startingAt: 0)) localhost,\(port)  role=\(n["role"] ?? "?") server=\(n["server"] ?? "?") encryption=\(n["encryption"] ?? "?")")
        }
        func port(_ name: String) -> Int { nodes.first { ($0["name"] as? String) == name }?["port"] as? Int ?? 0 }
        let gw = port("east-gateway")
        let plain = port("plain-primary")
        lines.append("")
        lines.append("CA certificate (trust it, e.g. SSL_CERT_FILE=\(ca)):")
        lines.append("  \(ca)")
        lines.append("")
        lines.append("Connection strings:")
        lines.append("  ODBC 18 / mssql-python (SQL login, through the gateway's redirect):")
        lines.append("    Driver={ODBC Driver 18 for SQL Server};Server=tcp:localhost,\(gw);Database=appdb;UID=\(user);PWD=\(password);Encrypt=yes")
        lines.append("    (run with SSL_CERT_FILE=\(ca); add ApplicationIntent=ReadOnly to land on the readable replica)")
        lines.append("  pytds:")
        lines.append("    pytds.connect(server='localhost', port=\(gw), database='appdb', user='\(user)', password='\(password)', cafile='\(ca)')")
        lines.append("  FreeTDS tsql (plaintext node):")
        lines.append("    tsql -H 127.0.0.1 -p \(plain) -U \(user) -P '\(password)' -D appdb")
        lines.append("  Managed-identity token (IMDS):")
        lines.append("    curl -H 'Metadata: true' '\(d["imds_url"] ?? "")?api-version=2018-02-01&resource=https://database.windows.net/'")
        lines.append("  Control API: \(d["control_url"] ?? "") (GET /emulator/state)")
        return lines
    }
}
