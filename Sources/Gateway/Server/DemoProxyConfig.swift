import Foundation

/// The proxy configuration `tdsgate demo` runs in front of the emulated deployment.
/// Configs/demo.yaml holds the same text (a test keeps them equal); `${NAME}` values are
/// filled in at start with the emulator's ports and files.
public enum DemoProxyConfig {
    public static let yaml = """
# tdsgate in front of the emulated Azure SQL deployment (tdsgate demo).
# ${...} values are filled in by `tdsgate demo` when it starts.
listeners:
  - name: main
    address: 127.0.0.1
    port: ${PROXY_PORT}
    tls: {certificate: "${STATE_DIR}/proxy.pem", key: "${STATE_DIR}/proxy-key.pem"}
    # The demo allows every client mode so that every driver can be tried; production
    # listeners should keep the default [required, strict].
    client_encryption: [required, strict, login_only, plaintext]
    cluster: orders
    tag_sessions: true
    entra:
      tenant_id: ${TENANT_ID}
      issuers: ["https://sts.windows.net/${TENANT_ID}/"]
      audiences: ["https://database.windows.net/"]
      jwks_url: "${JWKS_URL}"
    # session_context: goes here once session context lands (the pooling work).

clusters:
  - name: orders
    databases: [appdb]
    # The emulator's throwaway CA; it signed the proxy's certificate too, so
    # `tdsgate drill` trusts the listener with it.
    ca_file: "${STATE_DIR}/ca.pem"
    # Every endpoint is logged in to each second: its role (READ_WRITE or READ_ONLY, and
    # the geo link role) decides where sessions go, so a failover is followed.
    probe: {identity: proxy-mi, interval_ms: 1000, timeout_ms: 2000, rise: 1, fall: 2}
    max_write_wait_ms: 10000
    demotion: immediately
    endpoints:
      # Failover group fog-app: the east primary, its readable replica (ReadOnly sessions
      # land there) and the west geo-secondary, which a failover promotes.
      - {name: east, host: localhost, port: ${EAST_PRIMARY_PORT}, tls_name: localhost, geo: true}
      - {name: east-replica, host: localhost, port: ${EAST_REPLICA_PORT}, tls_name: localhost, role: replica}
      - {name: west, host: localhost, port: ${WEST_PRIMARY_PORT}, tls_name: localhost, geo: true}
    # For `tdsgate drill failover --planned / --forced`: ARM's failover-group API (the
    # emulator's), called with a management token of proxy-mi.
    failover_group:
      name: fog-app
      subscription_id: 00000000-0000-4000-8000-00000000a001
      resource_group: rg-tdsgate-demo
      servers: [sqlemu-east, sqlemu-west]
      identity: proxy-mi
      arm_url: "${CONTROL_URL}"
    # pool: goes here once connection pooling lands.

backend_identities:
  # The proxy's own managed identity, from the emulated IMDS.
  - name: proxy-mi
    kind: imds
    endpoint: "${IMDS_URL}"

logins:
  - {name: app-user, password_hash: "${APP_USER_HASH}"}
  - {name: report-user, password_hash: "${REPORT_USER_HASH}"}

policy:
  - {name: app-user, match: {login: app-user}, clusters: [orders], databases: ["*"], write: true, backend_identity: proxy-mi}
  - {name: report-user, match: {login: report-user}, clusters: [orders], databases: ["*"], write: false, backend_identity: proxy-mi}
  - {name: ci-deployer, match: {app_id: "6d0c4a4e-1b8a-4c43-9b9e-3f1f6f1c0a03"}, clusters: [orders], databases: ["*"], write: true, backend_identity: proxy-mi}

throttle: {max_failures: 20, window_seconds: 60, block_seconds: 30}

# Health, readiness, metrics, endpoint drain/enable and the live dump (loopback, so no
# token needed). `tdsgate demo` switches the dump on for `tdsgate dump --follow` (no files
# unless --dump DIR).
admin: {address: 127.0.0.1, port: ${ADMIN_PORT}}

# The audit trail: one JSON line per login, session, statement and cluster event (README
# "Audit trail"); literals in statements are masked.
audit: {destination: file, file: "${STATE_DIR}/audit.jsonl", statements: true, mask_literals: true}
"""

    /// Fills `${NAME}` placeholders.
    public static func render(_ values: [String: String]) -> String {
        var text = yaml
        for (k, v) in values { text = text.replacingOccurrences(of: "${\(k)}", with: v) }
        return text
    }

    /// The emulated endpoints the demo's cluster is made of: placeholder and emulator node.
    public static let nodePlaceholders: [(placeholder: String, node: String)] = [
        ("EAST_PRIMARY_PORT", "east-primary"), ("EAST_REPLICA_PORT", "east-replica"), ("WEST_PRIMARY_PORT", "west-primary"),
    ]

    /// The placeholders that come from the emulated deployment (its ports description, as
    /// `AzureEmulatorRuntime.portsDescription()` gives it and the ports file holds it):
    /// node ports, the tenant, its JWKS and IMDS URLs, and the control (ARM) URL.
    public static func emulatorValues(_ description: [String: Any]) throws -> [String: String] {
        let nodes = description["nodes"] as? [[String: Any]] ?? []
        var values: [String: String] = [:]
        for (placeholder, name) in nodePlaceholders {
            guard let port = nodes.first(where: { ($0["name"] as? String) == name })?["port"] as? Int else {
                throw DemoProxyConfigError(description:
                    "the emulated deployment has no node '\(name)' (nodes: \(nodes.compactMap { $0["name"] as? String }.joined(separator: ", "))); "
                    + "the demo proxy's cluster needs east-primary, east-replica and west-primary (see Configs/emulator.yaml)")
            }
            values[placeholder] = String(port)
        }
        for (placeholder, key) in [("TENANT_ID", "tenant_id"), ("JWKS_URL", "jwks_url"), ("IMDS_URL", "imds_url"), ("CONTROL_URL", "control_url")] {
            guard let value = description[key] as? String, !value.isEmpty else {
                throw DemoProxyConfigError(description: "the emulated deployment's description has no '\(key)'; the demo proxy's config needs it for ${\(placeholder)}")
            }
            values[placeholder] = value
        }
        return values
    }
}

/// The emulated deployment lacks something the demo proxy's config needs.
public struct DemoProxyConfigError: Error, CustomStringConvertible {
    public var description: String
}
