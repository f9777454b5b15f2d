import AsyncHTTPClient
import Foundation
import Gateway
import NIOCore
import NIOHTTP1

/// An HTTP call the drill needed failed; the text says which call and what came back.
struct DrillHTTPError: Error, CustomStringConvertible {
    var description: String
}

/// The two HTTP peers of a drill share one way of calling: JSON in, JSON out, a bounded
/// wait, and the server's own error text in the message.
struct DrillHTTP: Sendable {
    let client: HTTPClient
    var timeout: TimeAmount = .seconds(10)

    func call(_ method: HTTPMethod, _ url: String, bearer: String?, body: [UInt8]? = nil) async throws -> (status: UInt, body: [UInt8]) {
        var request = HTTPClientRequest(url: url)
        request.method = method
        if let bearer { request.headers.add(name: "Authorization", value: "Bearer \(bearer)") }
        if let body {
            request.headers.add(name: "Content-Type", value: "application/json")
            request.body = .bytes(ByteBuffer(bytes: body))
        } else if method == .POST {
            request.headers.add(name: "Content-Length", value: "0")
        }
        let response: HTTPClientResponse
        do {
            response = try await client.execute(request, timeout: timeout)
        } catch {
            throw DrillHTTPError(description: "\(method) \(Self.redacted(url)): \(error)")
        }
        let bytes = try await response.body.collect(upTo: 16 * 1024 * 1024)
        return (response.status.code, Array(bytes.readableBytesView))
    }

    /// JSON from a 2xx reply, or an error that quotes what the server said.
    func json<T: Decodable>(_ type: T.Type, _ method: HTTPMethod, _ url: String, bearer: String?) async throws -> T {
        let (status, body) = try await call(method, url, bearer: bearer)
        guard (200..<300).contains(status) else {
            throw DrillHTTPError(description: "\(method) \(Self.redacted(url)) answered \(status): \(String(decoding: body.prefix(500), as: UTF8.self))")
        }
        do {
            return try Self.decoder.decode(T.self, from: Data(body))
        } catch {
            throw DrillHTTPError(description: "\(method) \(Self.redacted(url)): unexpected reply (\(error))")
        }
    }

    static let decoder = ClusterSnapshot.jsonDecoder()

    /// Query strings can carry signatures; messages keep only the path.
    static func redacted(_ url: String) -> String {
        String(url.split(separator: "?", maxSplits: 1).first ?? "")
    }
}

/// tdsgate's admin API as the drill uses it: where the primary is, which endpoint carries
/// a session, and (for `--simulate`) taking an endpoint out of service and back.
struct DrillAdminClient: Sendable {
    let http: DrillHTTP
    let baseURL: String
    let token: String?

    func cluster(_ name: String) async throws -> ClusterSnapshot {
        try await http.json(ClusterSnapshot.self, .GET, "\(baseURL)/v1/clusters/\(name)", bearer: token)
    }

    func sessions(_ name: String) async throws -> [SessionInfo] {
        try await http.json([SessionInfo].self, .GET, "\(baseURL)/v1/clusters/\(name)/sessions", bearer: token)
    }

    /// Tells tdsgate a drill phase started or ended, for its audit trail. Best effort: a
    /// tdsgate without the route (or without an audit trail) does not stop the drill.
    func drillEvent(_ cluster: String, _ fields: [String: Any]) async {
        guard let body = try? JSONSerialization.data(withJSONObject: fields) else { return }
        _ = try? await http.call(.POST, "\(baseURL)/v1/clusters/\(cluster)/drills", bearer: token, body: Array(body))
    }

    func endpoint(_ cluster: String, _ endpoint: String, _ action: String) async throws {
        _ = try await http.json(ClusterSnapshot.self, .POST, "\(baseURL)/v1/clusters/\(cluster)/endpoints/\(endpoint)/\(action)", bearer: token)
    }
}

/// Azure Resource Manager's failover-group API (the emulator serves the same paths).
struct DrillARMClient: Sendable {
    let http: DrillHTTP
    let group: FailoverGroupConfig
    let token: @Sendable () async throws -> String
    static let apiVersion = "2021-11-01"

    private struct Group: Decodable {
        struct Properties: Decodable { var replicationRole: String? }
        var properties: Properties
    }

    private func url(_ server: String, _ suffix: String = "") -> String {
        let base = group.armURL.hasSuffix("/") ? String(group.armURL.dropLast()) : group.armURL
        return base + group.resourcePath(server: server) + suffix + "?api-version=\(Self.apiVersion)"
    }

    /// The partner server that is secondary now: the one a failover promotes.
    func currentSecondary() async throws -> String {
        let bearer = try await token()
        for server in group.servers {
            let g = try await http.json(Group.self, .GET, url(server), bearer: bearer)
            if g.properties.replicationRole?.lowercased() == "secondary" { return server }
        }
        throw DrillHTTPError(description: "failover group '\(group.name)': neither \(group.servers.joined(separator: " nor ")) reports the Secondary role")
    }

    /// ARM fails over to the server named in the path, which must be the secondary.
    func failover(to server: String, allowDataLoss: Bool) async throws {
        let bearer = try await token()
        let (status, body) = try await http.call(.POST, url(server, allowDataLoss ? "/forceFailoverAllowDataLoss" : "/failover"), bearer: bearer)
        guard (200..<300).contains(status) else {
            throw DrillHTTPError(description: "ARM refused the failover of '\(group.name)' to '\(server)' (\(status)): \(String(decoding: body.prefix(500), as: UTF8.self))")
        }
    }
}
