import AzureEmulator
import Foundation

/// What `demo` and `emulate` print: endpoints and connection strings that work as shown.
enum Banner {
    static func emulator(_ rt: AzureEmulatorRuntime) -> String {
        let d = rt.portsDescription()
        let ca = d["ca_file"] as? String ?? "?"
        let nodes = d["nodes"] as? [[String: Any]] ?? []
        let login = (d["sql_logins"] as? [[String: Any]])?.first
        let user = login?["user"] as? String ?? "app"
        let password = login?["password"] as? String ?? "?"
        var lines: [String] = []
        lines.append("tdsgate: emulated Azure SQL deployment is up (Ctrl-C to stop)")
        lines.append("")
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
        return lines.joined(separator: "\n")
    }
}
