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

    @Flag(help: "Redraw the table every --interval seconds, like top, until Ctrl-C.")
    var watch = false

    @Option(help: "Seconds between redraws with --watch.")
    var interval = 1.0

    func validate() throws {
        guard interval >= 0.1, interval <= 3600 else { throw ValidationError("--interval must be between 0.1 and 3600 seconds") }
        if json && watch { throw ValidationError("--json and --watch do not go together: --json prints once, for scripts") }
    }

    func run() async throws {
        let token: String?
        do {
            token = try tokenFile.map { try String(contentsOfFile: $0, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) }
        } catch {
            throw ValidationError("cannot read the token file \(tokenFile ?? ""): \(error.localizedDescription)")
        }
        guard watch else {
            let data = try await fetch(token: token)
            if json {
                print(String(decoding: data, as: UTF8.self))
            } else {
                print(try Self.table(data))
            }
            return
        }
        // Like top: home the cursor, clear the screen, draw; a failed poll is shown in place
        // of the table and the next one tries again.
        while !Task.isCancelled {
            let body: String
            do {
                body = try Self.table(try await fetch(token: token))
            } catch {
                body = "\(error)"
            }
            let now = Date().ISO8601Format()
            let every = interval == interval.rounded() ? "\(Int(interval)) s" : "\(interval) s"
            let header = "tdsgate status  \(adminURL)  \(now)  (every \(every), Ctrl-C to stop)"
            FileHandle.standardOutput.write(Data(("\u{1B}[H\u{1B}[2J" + header + "\n\n" + body + "\n").utf8))
            try await Task.sleep(for: .milliseconds(Int64(interval * 1000)))
        }
    }

    private func fetch(token: String?) async throws -> Data {
        let url = adminURL.trimmingCharacters(in: CharacterSet(charactersIn: "/")) + "/v1/clusters"
        var request = HTTPClientRequest(url: url)
        if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
        let response: HTTPClientResponse
        do {
            response = try await HTTPClient.shared.execute(request, timeout: .seconds(10))
        } catch {
            throw ValidationError("cannot reach tdsgate's admin API at \(adminURL) (\(error)); check that tdsgate runs and that this is "
                + "the address and port of its admin: section")
        }
        let body = try await response.body.collect(upTo: 4 << 20)
        let data = Data(body.readableBytesView)
        switch response.status.code {
        case 200:
            return data
        case 401, 403:
            throw ValidationError("the admin API at \(adminURL) refused the request (\(response.status.code)): "
                + (tokenFile == nil ? "it needs a bearer token; give --token-file with the file named by admin.bearer_token_file"
                    : "the token in \(tokenFile ?? "") is not the one in admin.bearer_token_file"))
        default:
            throw ValidationError("\(adminURL) answered \(response.status.code): \(String(decoding: data.prefix(500), as: UTF8.self))")
        }
    }

    static func table(_ data: Data) throws -> String {
        do {
            return StatusTable.render(try ClusterSnapshot.jsonDecoder().decode([ClusterSnapshot].self, from: data))
        } catch {
            throw ValidationError("the admin API's answer is not the cluster list this tdsgate status expects (\(error)); "
                + "is the admin URL that of a tdsgate of the same version?")
        }
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
