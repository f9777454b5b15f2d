import ArgumentParser
import AsyncHTTPClient
import Foundation
import NIOCore

/// `tdsgate dump --follow`: the live decoded dump of a running tdsgate, like `tcpdump -A`
/// for TDS, read from the admin API (`GET /v1/dump/follow`). The dump must be on (`dump:`,
/// `tdsgate run --dump DIR`, or `POST /v1/dump`); its filter picks the sessions.
struct DumpFollowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "follow",
        abstract: "Print the live decoded dump of a running tdsgate (tdsgate dump --follow).",
        discussion: "Lines are prefixed with [s<session id>]. Secrets are never shown; they are redacted before anything is rendered."
    )

    @Flag(help: "Follow the live dump (the default action of `tdsgate dump`).")
    var follow = false

    @Option(help: "The admin API's base URL.")
    var adminURL = "http://127.0.0.1:9090"

    @Option(help: "File holding the admin bearer token, when the admin API requires one.")
    var tokenFile: String?

    @Option(help: "Stop after this many lines.")
    var count: Int?

    @Option(help: "Stop after this many seconds.")
    var seconds: Double?

    @Flag(help: "Start with the lines the admin API still holds, not only new ones.")
    var backlog = false

    func run() async throws {
        let base = adminURL.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        let token = try tokenFile.map { try String(contentsOfFile: $0, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) }
        let deadline = seconds.map { ContinuousClock.now + .milliseconds(Int($0 * 1000)) }
        var after: Int? = backlog ? 0 : nil
        var printed = 0
        var warnedOff = false
        while deadline.map({ ContinuousClock.now < $0 }) ?? true {
            let wait = deadline.map { max(0, min(5, Double(($0 - ContinuousClock.now).components.seconds))) } ?? 5
            var url = "\(base)/v1/dump/follow?wait=\(wait)"
            if let after { url += "&after=\(after)" }
            var request = HTTPClientRequest(url: url)
            if let token { request.headers.add(name: "Authorization", value: "Bearer \(token)") }
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(Int64(wait) + 10))
            let body = try await response.body.collect(upTo: 64 << 20)
            guard response.status == .ok else {
                throw DumpCommandError("\(url): HTTP \(response.status.code): \(String(buffer: body))")
            }
            guard let object = try JSONSerialization.jsonObject(with: Data(body.readableBytesView)) as? [String: Any],
                  let next = object["next"] as? Int, let lines = object["lines"] as? [String] else {
                throw DumpCommandError("\(url): unexpected answer: \(String(buffer: body).prefix(200))")
            }
            if let missed = object["missed"] as? Int, missed > 0 {
                FileHandle.standardError.write(Data("… \(missed) lines were not fetched in time (the admin API keeps the latest only)\n".utf8))
            }
            if object["enabled"] as? Bool == false, !warnedOff {
                warnedOff = true
                FileHandle.standardError.write(Data("note: the dump is off; switch it on with POST \(base)/v1/dump (or dump: in the config)\n".utf8))
            }
            var out = ""
            for line in lines {
                if let count, printed >= count { break }
                out += line + "\n"
                printed += 1
            }
            if !out.isEmpty { FileHandle.standardOutput.write(Data(out.utf8)) }
            if let count, printed >= count { return }
            after = next
        }
    }
}
