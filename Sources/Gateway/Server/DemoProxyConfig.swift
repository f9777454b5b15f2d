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

clusters:
  - name: orders
    databases: [appdb]
    ca_file: "${STATE_DIR}/ca.pem"
    endpoints:
      # Azure's gateway: tdsgate follows its redirect to the worker itself.
      - {name: east-gateway, host: localhost, port: ${EAST_GATEWAY_PORT}, tls_name: localhost, role: primary}

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

# Health, readiness, metrics and endpoint drain/enable (loopback, so no token needed).
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
}
