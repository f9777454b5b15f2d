/// The deployment `tdsgate demo` runs and the tests use. Configs/emulator.yaml holds the
/// same text (a test keeps them equal) so people can read and copy it.
public enum DemoDeployment {
    public static let yaml = """
# An emulated Azure SQL deployment for tdsgate's demo, tests and benchmarks.
# Ports of 0 are assigned at start (free ports, or --base-port upwards).
host: 127.0.0.1
tls_host: localhost            # certificate name and redirect target drivers see
http_port: 0                   # Entra/IMDS/ARM/control endpoint
# tls: {certificate: node.pem, key: node-key.pem, ca: ca.pem}   # serve a given certificate
#                                # instead of one from a throwaway CA generated at start
subscription_id: 00000000-0000-4000-8000-00000000a001
resource_group: rg-tdsgate-demo

tenant:
  id: 72f988bf-86f1-41af-91ab-2d7cd011db47
  token_lifetime: 3600
  identities:
    - name: tdsgate-proxy
      kind: system_assigned
      client_id: 6d0c4a4e-1b8a-4c43-9b9e-3f1f6f1c0a01
      object_id: 0a7e2c1b-5d2f-4a0e-8f4c-1b2c3d4e5f01
    - name: orders-app
      kind: user_assigned
      client_id: 6d0c4a4e-1b8a-4c43-9b9e-3f1f6f1c0a02
      object_id: 0a7e2c1b-5d2f-4a0e-8f4c-1b2c3d4e5f02
      resource_id: /subscriptions/00000000-0000-4000-8000-00000000a001/resourcegroups/rg-tdsgate-demo/providers/Microsoft.ManagedIdentity/userAssignedIdentities/orders-app
    - name: ci-deployer
      kind: service_principal
      client_id: 6d0c4a4e-1b8a-4c43-9b9e-3f1f6f1c0a03
      object_id: 0a7e2c1b-5d2f-4a0e-8f4c-1b2c3d4e5f03
      secret: demo-client-secret-not-for-production
      roles: [Db.Admin]
    - name: Alice Example
      kind: user
      upn: alice@contoso.example
      client_id: 04b07795-8ddb-461a-bbee-02f9e1bf7b46
      object_id: 0a7e2c1b-5d2f-4a0e-8f4c-1b2c3d4e5f04
      groups: [5b7c1d2e-0000-4000-8000-0000000000aa]

servers:
  # Primary region: gateway with Redirect policy, primary replica, readable replica.
  - name: sqlemu-east
    databases: [appdb]
    logins:
      - {user: app, password: "App-Passw0rd!"}
      - {user: reporting, password: "Rep0rting-Passw0rd!"}
    nodes:
      - {name: east-gateway, kind: gateway, encryption: required}
      - {name: east-primary, kind: primary_replica, encryption: required}
      - {name: east-replica, kind: readable_replica, encryption: required}
  # Geo-secondary region (failover group partner).
  - name: sqlemu-west
    databases: [appdb]
    logins:
      - {user: app, password: "App-Passw0rd!"}
      - {user: reporting, password: "Rep0rting-Passw0rd!"}
    nodes:
      - {name: west-gateway, kind: gateway, encryption: required}
      - {name: west-primary, kind: primary_replica, encryption: required, lag_ms: 0}
  # SQL Server-style endpoints for clients that cannot do full TLS: login-only TLS
  # (encryption off) and plaintext (no certificate). The first is a Managed Instance:
  # USE switches between its databases there (Azure SQL Database refuses with 40508).
  - name: sqlemu-compat
    flavor: managed_instance
    databases: [appdb, scratchdb]
    logins:
      - {user: app, password: "App-Passw0rd!"}
    nodes:
      - {name: compat-loginonly, kind: primary_replica, encryption: "off"}
  - name: sqlemu-plain
    databases: [appdb]
    logins:
      - {user: app, password: "App-Passw0rd!"}
    nodes:
      - {name: plain-primary, kind: primary_replica, encryption: not_supported}

failover_groups:
  - {name: fog-app, primary_server: sqlemu-east, secondary_server: sqlemu-west}

"""
}
