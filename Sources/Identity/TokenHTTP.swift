import AsyncHTTPClient
import Foundation
import GateSupport
import NIOCore

/// One HTTP request to a token endpoint.
struct TokenRequest: Sendable {
    enum Method: Sendable { case get, post }

    var url: String
    var method: Method = .get
    var headers: [(String, String)] = []
    /// `application/x-www-form-urlencoded` body (POST).
    var form: [(String, String)]?
}

/// A complete reply.
struct TokenReply: Sendable {
    var status: Int
    /// Header names lowercased.
    var headers: [(String, String)]
    var body: [UInt8]
    /// "(3 attempts in 1.2 s)" when retries were given up.
    var retrySummary: String?

    func header(_ name: String) -> String? {
        let lowered = name.lowercased()
        return self.headers.first(where: { $0.0 == lowered })?.1
    }

    var isSuccess: Bool { (200..<300).contains(self.status) }

    /// `Retry-After` in seconds (delta-seconds form only).
    var retryAfter: TimeInterval? {
        self.header("retry-after").flatMap { TimeInterval($0.trimmingCharacters(in: .whitespaces)) }
    }

    var json: [String: Any]? {
        (try? JSONSerialization.jsonObject(with: Data(self.body))) as? [String: Any]
    }

    /// What the server said went wrong: `error_description` (first line), `message`, `error`,
    /// or a clipped body. Never includes our request.
    var errorSummary: String {
        if let json = self.json {
            let error = json["error"] as? String
            var detail = (json["error_description"] as? String) ?? (json["message"] as? String)
                ?? (json["Message"] as? String)
            if let text = detail, let firstLine = text.components(separatedBy: CharacterSet.newlines).first {
                detail = firstLine
            }
            switch (error, detail) {
            case (let error?, let detail?): return "\(detail) (\(error))".clipped()
            case (nil, let detail?): return detail.clipped()
            case (let error?, nil): return error.clipped()
            case (nil, nil): break
            }
        }
        let text = String(decoding: self.body.prefix(400), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return text.isEmpty ? "(empty body)" : text.clipped()
    }
}

/// Who is asking, for errors.
struct ProviderContext: Sendable {
    var identity: String
    var label: String
    var client: HTTPClient
    var retry: RetryPolicy
    /// Endpoint name in messages, e.g. "IMDS".
    var service: String

    func error(_ reason: String, status: Int? = nil) -> TokenError {
        TokenError(identity: self.identity, label: self.label, reason: reason, status: status)
    }

    /// Sends one request (no retries).
    func send(_ request: TokenRequest) async throws -> TokenReply {
        var outgoing = HTTPClientRequest(url: request.url)
        for (name, value) in request.headers { outgoing.headers.add(name: name, value: value) }
        switch request.method {
        case .get:
            outgoing.method = .GET
        case .post:
            outgoing.method = .POST
            let body = Array(FormEncoding.encode(request.form ?? []).utf8)
            outgoing.headers.replaceOrAdd(name: "Content-Type", value: "application/x-www-form-urlencoded")
            outgoing.body = .bytes(ByteBuffer(bytes: body))
        }
        outgoing.headers.replaceOrAdd(name: "Accept", value: "application/json")
        let timeout = TimeAmount.milliseconds(Int64(self.retry.requestTimeout * 1000))
        let response = try await self.client.execute(outgoing, timeout: timeout)
        let body = try await response.body.collect(upTo: 1 << 20)
        return TokenReply(
            status: Int(response.status.code),
            headers: response.headers.map { ($0.name.lowercased(), $0.value) },
            body: Array(body.readableBytesView)
        )
    }

    /// Sends `makeRequest()` (rebuilt for every attempt), retrying transport errors and the
    /// statuses `retryable` accepts with backoff, bounded by the policy's retry count and
    /// deadline (status 410 by the deadline only). Returns the last reply, which may be an
    /// error reply. Throws ``TokenError`` when no reply came at all.
    func sendWithRetries(
        retryable: (Int) -> Bool,
        _ makeRequest: () throws -> TokenRequest
    ) async throws -> TokenReply {
        let start = Date()
        var retries = 0
        var attempts = 0
        let hardCap = max(self.retry.maxRetries, 60) + 1
        while true {
            attempts += 1
            let request: TokenRequest
            do {
                request = try makeRequest()
            } catch let error as TokenError {
                throw error
            } catch {
                throw self.error("\(error)")
            }
            let retryAfter: TimeInterval?
            let lastFailure: String
            let lastReply: TokenReply?
            do {
                let reply = try await self.send(request)
                if reply.isSuccess || !retryable(reply.status) { return reply }
                retryAfter = reply.retryAfter
                lastFailure = "\(self.service) answered \(reply.status) \(reply.errorSummary)"
                lastReply = reply
            } catch is CancellationError {
                throw self.error("the token request was cancelled")
            } catch {
                retryAfter = nil
                lastFailure = "could not reach \(self.service) at \(Self.redactedURL(request.url)): \(error)"
                lastReply = nil
            }
            let isGone = lastReply?.status == 410
            let allowed = isGone ? hardCap : self.retry.maxRetries
            let delay = self.retry.delay(retry: retries, retryAfter: retryAfter)
            let elapsed = Date().timeIntervalSince(start)
            guard retries < allowed, attempts < hardCap, elapsed + delay <= self.retry.deadline else {
                let summary = " (\(attempts) attempt\(attempts == 1 ? "" : "s") in \(String(format: "%.1f", elapsed)) s)"
                if let lastReply { return lastReply.withRetrySummary(summary) }
                throw self.error(lastFailure + summary)
            }
            retries += 1
            do {
                try await Task.sleep(nanoseconds: UInt64(delay * 1_000_000_000))
            } catch {
                throw self.error("the token request was cancelled")
            }
        }
    }

    /// Fails with a message naming the status and what the server said.
    func failure(_ reply: TokenReply) -> TokenError {
        self.error(
            "\(self.service) answered \(reply.status) \(reply.errorSummary)\(reply.retrySummary ?? "")",
            status: reply.status
        )
    }

    /// The URL without its query (which may hold a client ID, never a secret, but keep it short).
    static func redactedURL(_ url: String) -> String {
        String(url.split(separator: "?", maxSplits: 1).first ?? "")
    }
}

extension TokenReply {
    fileprivate func withRetrySummary(_ summary: String) -> TokenReply {
        var copy = self
        copy.retrySummary = summary
        return copy
    }
}

enum FormEncoding {
    static let unreserved: CharacterSet = {
        var allowed = CharacterSet()
        allowed.insert(charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~")
        return allowed
    }()

    static func component(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: unreserved) ?? text
    }

    static func encode(_ items: [(String, String)]) -> String {
        items.map { "\(component($0.0))=\(component($0.1))" }.joined(separator: "&")
    }

    /// `url` with `items` appended to its query.
    static func url(_ url: String, adding items: [(String, String)]) -> String {
        guard !items.isEmpty else { return url }
        let separator = url.contains("?") ? (url.hasSuffix("?") || url.hasSuffix("&") ? "" : "&") : "?"
        return url + separator + encode(items)
    }
}

/// Reading a token endpoint's JSON reply.
enum TokenReplyParser {
    /// `access_token` plus `expires_on` (epoch seconds, string or number), else `expires_in`,
    /// else the JWT's `exp`.
    static func accessToken(from reply: TokenReply, context: ProviderContext, now: Date = Date()) throws -> AccessToken {
        guard let json = reply.json else {
            throw context.error("\(context.service) answered \(reply.status) with a body that is not a JSON object")
        }
        guard let token = json["access_token"] as? String, !token.isEmpty else {
            throw context.error("\(context.service) answered \(reply.status) without an access_token")
        }
        if let expiresOn = number(json["expires_on"]) {
            return AccessToken(token: token, expiresOn: Date(timeIntervalSince1970: expiresOn), obtainedAt: now)
        }
        if let expiresIn = number(json["expires_in"]) {
            return AccessToken(token: token, expiresOn: now.addingTimeInterval(expiresIn), obtainedAt: now)
        }
        if let exp = JWTInspection.expiry(of: token) {
            return AccessToken(token: token, expiresOn: exp, obtainedAt: now)
        }
        throw context.error("\(context.service) answered without expires_on or expires_in, and the token has no exp claim")
    }

    static func number(_ value: Any?) -> Double? {
        switch value {
        case let number as Int:
            return Double(number)
        case let number as Double:
            return number
        case let text as String:
            return Double(text.trimmingCharacters(in: .whitespaces))
        default:
            return nil
        }
    }
}

/// Reading (not verifying) a JWT's claims.
enum JWTInspection {
    static func claims(of token: String) -> [String: Any]? {
        let parts = token.trimmingCharacters(in: .whitespacesAndNewlines).split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count == 3, let payload = Base64URL.decode(parts[1]) else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(payload))) as? [String: Any]
    }

    static func expiry(of token: String) -> Date? {
        guard let exp = claims(of: token).flatMap({ TokenReplyParser.number($0["exp"]) }) else { return nil }
        return Date(timeIntervalSince1970: exp)
    }
}
