import ArgumentParser
import AsyncHTTPClient
import Foundation
import Gateway

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show clusters, endpoints, roles, health and sessions from a running tdsgate's admin API."
    )

    @Option(help: "The admin API, e.g. http://127.0.0.1:9090.")
    var adminURL: String

    @Option(help: "File holding the admin bearer token, when the admin API requires one.")
    var tokenFile: String?

    @Flag(help: "Print the JSON the admin API returned.")
    var json = false

    func run() async throws {
        var request = HTTPClientRequest(url: adminURL.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/v1/clusters")
        if let tokenFile {
            let token = try String(contentsOfFile: tokenFile, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)
            request.headers.add(name: "Authorization", value: "Bearer \(token)")
        }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        let body = try await response.body.collect(upTo: 4 << 20)
        let data = Data(body.readableBytesView)
        guard response.status == .ok else {
            throw ValidationError("\(adminURL) answered \(response.status.code): \(String(decoding: data, as: UTF8.self))")
        }
        if json {
            print(String(decoding: data, as: UTF8.self))
            return
        }
        let clusters = try ClusterSnapshot.jsonDecoder().decode([ClusterSnapshot].self, from: data)
        print(StatusTable.render(clusters))
    }
}

enum StatusTable {
    static func render(_ clusters: [ClusterSnapshot]) -> String {
        var rows: [[String]] = [["CLUSTER", "ENDPOINT", "ADDRESS", "HEALTH", "ADMIN", "ROLE", "PRIMARY", "PROBE MS", "READ", "WRITE"]]
        for c in clusters {
            for e in c.endpoints {
                rows.append([c.name, e.name, e.address, e.up ? "UP" : "DOWN", e.admin, e.lastRole ?? "-", e.primary ? "yes" : "",
                             e.probeLatencyMs.map { String(format: "%.1f", $0) } ?? "-", String(e.readSessions), String(e.writeSessions)])
            }
        }
        let widths = rows[0].indices.map { i in rows.map { $0[i].count }.max() ?? 0 }
        return rows.map { r in r.enumerated().map { $1.padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: "  ") }
            .joined(separator: "\n")
    }
}
