import Foundation
import GateSupport
import NIOHTTP1

/// One `name=value` pair of a query string or a form-urlencoded body, already decoded.
public struct HTTPQueryItem: Sendable, Hashable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }

    /// Parses `a=1&b=two%20words&c` (`+` is a space, as in forms). Pairs without `=` get an empty value.
    public static func parse(_ encoded: some StringProtocol) -> [HTTPQueryItem] {
        encoded.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = formDecode(parts[0])
            let value = parts.count > 1 ? formDecode(parts[1]) : ""
            return HTTPQueryItem(name: name, value: value)
        }
    }

    /// Encodes items as `application/x-www-form-urlencoded` (also fine for a query string).
    public static func encode(_ items: [HTTPQueryItem]) -> String {
        items.map { "\(formEncode($0.name))=\(formEncode($0.value))" }.joined(separator: "&")
    }

    /// Decodes one form component (`+` is a space, then percent-decoding).
    public static func formDecode(_ text: some StringProtocol) -> String {
        let spaced = text.replacingOccurrences(of: "+", with: " ")
        return spaced.removingPercentEncoding ?? spaced
    }

    /// Percent-encodes everything but RFC 3986 unreserved characters.
    public static func formEncode(_ text: String) -> String {
        var allowed = CharacterSet.alphanumerics
        allowed.insert(charactersIn: "-._~")
        return text.addingPercentEncoding(withAllowedCharacters: allowed) ?? text
    }
}

/// A complete HTTP request as route handlers see it (body fully read, within the server's limits).
public struct HTTPServerRequest: Sendable {
    public var method: HTTPMethod
    /// The request target as sent, e.g. `/metadata/identity/oauth2/token?api-version=2018-02-01`.
    public var uri: String
    /// The percent-decoded path without the query, e.g. `/metadata/identity/oauth2/token`.
    public var path: String
    public var queryItems: [HTTPQueryItem]
    public var headers: HTTPHeaders
    public var body: [UInt8]
    /// Values captured by `{name}` segments of the matched route's pattern.
    public var pathParameters: [String: String]
    /// The peer's address as NIO prints it, when known.
    public var remoteAddress: String?
    /// True when the request came over TLS.
    public var isSecure: Bool

    public init(
        method: HTTPMethod,
        uri: String,
        headers: HTTPHeaders = [:],
        body: [UInt8] = [],
        remoteAddress: String? = nil,
        isSecure: Bool = false
    ) {
        self.method = method
        self.isSecure = isSecure
        self.uri = uri
        self.headers = headers
        self.body = body
        self.remoteAddress = remoteAddress
        self.pathParameters = [:]
        let withoutFragment = uri.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let pieces = withoutFragment.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false)
        let rawPath = pieces.first.map(String.init) ?? ""
        self.path = rawPath.removingPercentEncoding ?? rawPath
        self.queryItems = pieces.count > 1 ? HTTPQueryItem.parse(pieces[1]) : []
    }

    /// The first query value with this exact (case-sensitive) name.
    public func query(_ name: String) -> String? {
        self.queryItems.first(where: { $0.name == name })?.value
    }

    /// The first value of a header (case-insensitive name).
    public func header(_ name: String) -> String? {
        self.headers.first(name: name)
    }

    public var bodyString: String {
        String(decoding: self.body, as: UTF8.self)
    }

    /// `scheme://host[:port]` from the `Host` header (what the client used to reach us),
    /// or nil without a `Host` header.
    public var baseURL: String? {
        guard let host = self.header("host"), !host.isEmpty else { return nil }
        return "\(self.isSecure ? "https" : "http")://\(host)"
    }

    /// The body parsed as `application/x-www-form-urlencoded`.
    public var formItems: [HTTPQueryItem] {
        HTTPQueryItem.parse(self.bodyString)
    }

    /// The first form value with this exact name.
    public func form(_ name: String) -> String? {
        self.formItems.first(where: { $0.name == name })?.value
    }

    public func decodeJSON<T: Decodable>(_ type: T.Type = T.self) throws -> T {
        try JSONDecoder().decode(T.self, from: Data(self.body))
    }
}

/// A complete HTTP response. `Content-Length` and `Connection` are set by the server.
public struct HTTPServerResponse: Sendable {
    public var status: HTTPResponseStatus
    public var headers: HTTPHeaders
    public var body: [UInt8]

    public init(status: HTTPResponseStatus = .ok, headers: HTTPHeaders = [:], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    public var bodyString: String {
        String(decoding: self.body, as: UTF8.self)
    }

    /// A JSON response (`Content-Type: application/json; charset=utf-8`).
    public static func json(
        _ value: JSONValue,
        status: HTTPResponseStatus = .ok,
        headers: HTTPHeaders = [:]
    ) -> HTTPServerResponse {
        var headers = headers
        if !headers.contains(name: "content-type") {
            headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        }
        return HTTPServerResponse(status: status, headers: headers, body: value.serialized())
    }

    /// A JSON response from any `Encodable` value.
    public static func json<T: Encodable>(
        encoding value: T,
        status: HTTPResponseStatus = .ok,
        headers: HTTPHeaders = [:]
    ) throws -> HTTPServerResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // RFC 3339 with milliseconds: readable, and precise enough to time a failover.
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var c = encoder.singleValueContainer()
            try c.encode(TimeFormat.rfc3339Milliseconds(date))
        }
        var headers = headers
        if !headers.contains(name: "content-type") {
            headers.add(name: "Content-Type", value: "application/json; charset=utf-8")
        }
        return HTTPServerResponse(status: status, headers: headers, body: Array(try encoder.encode(value)))
    }

    public static func text(
        _ text: String,
        status: HTTPResponseStatus = .ok,
        headers: HTTPHeaders = [:]
    ) -> HTTPServerResponse {
        var headers = headers
        if !headers.contains(name: "content-type") {
            headers.add(name: "Content-Type", value: "text/plain; charset=utf-8")
        }
        return HTTPServerResponse(status: status, headers: headers, body: Array(text.utf8))
    }

    /// The JSON error shape of this server's own (non-Azure) errors: `{"error": code, "error_description": message}`.
    public static func error(_ status: HTTPResponseStatus, code: String, message: String) -> HTTPServerResponse {
        .json(["error": .string(code), "error_description": .string(message)], status: status)
    }
}

/// A route: method, path pattern with `{param}` segments, and an async handler.
///
/// Patterns match whole segments: `/{tenant}/oauth2/v2.0/token` matches `/abc/oauth2/v2.0/token`
/// and captures `tenant = "abc"`. Empty segments are ignored, so a trailing slash does not matter.
/// A last segment `{name...}` captures the rest of the path (may be empty).
public struct HTTPRoute: Sendable {
    public var method: HTTPMethod
    public var pattern: String
    public var handler: @Sendable (HTTPServerRequest) async -> HTTPServerResponse

    public init(
        method: HTTPMethod,
        pattern: String,
        handler: @escaping @Sendable (HTTPServerRequest) async -> HTTPServerResponse
    ) {
        self.method = method
        self.pattern = pattern
        self.handler = handler
    }

    public init(
        _ method: HTTPMethod,
        _ pattern: String,
        handler: @escaping @Sendable (HTTPServerRequest) async -> HTTPServerResponse
    ) {
        self.init(method: method, pattern: pattern, handler: handler)
    }

    /// The captured parameters when `path` matches this route's pattern, else nil.
    public func match(path: String) -> [String: String]? {
        let patternSegments = self.pattern.split(separator: "/", omittingEmptySubsequences: true)
        let pathSegments = path.split(separator: "/", omittingEmptySubsequences: true)
        var parameters: [String: String] = [:]
        var index = 0
        for segment in patternSegments {
            if segment.hasPrefix("{") && segment.hasSuffix("...}") {
                let name = String(segment.dropFirst().dropLast(4))
                parameters[name] = pathSegments[min(index, pathSegments.count)...].joined(separator: "/")
                return parameters
            }
            guard index < pathSegments.count else { return nil }
            let value = pathSegments[index]
            if segment.hasPrefix("{") && segment.hasSuffix("}") && segment.count > 2 {
                parameters[String(segment.dropFirst().dropLast())] = String(value)
            } else if segment != value {
                return nil
            }
            index += 1
        }
        return index == pathSegments.count ? parameters : nil
    }
}

/// Dispatches requests to the first matching route: unknown paths get a JSON 404, a known
/// path with another method a JSON 405 with `Allow`.
public struct HTTPRouter: Sendable {
    public var routes: [HTTPRoute]

    public init(routes: [HTTPRoute]) {
        self.routes = routes
    }

    public func respond(to request: HTTPServerRequest) async -> HTTPServerResponse {
        var allowed: [HTTPMethod] = []
        for route in self.routes {
            guard let parameters = route.match(path: request.path) else { continue }
            if route.method == request.method || (request.method == .HEAD && route.method == .GET) {
                var request = request
                request.pathParameters = parameters
                // For HEAD the server sends the GET reply's head only.
                return await route.handler(request)
            }
            allowed.append(route.method)
        }
        if !allowed.isEmpty {
            let allow = allowed.map { "\($0)" }.joined(separator: ", ")
            return .json(
                [
                    "error": "method_not_allowed",
                    "error_description": .string("\(request.method) is not allowed on \(HTTPRequestProblem.clip(request.path, limit: 200)); use \(allow)"),
                ],
                status: .methodNotAllowed,
                headers: ["Allow": allow]
            )
        }
        return .json(
            ["error": "not_found", "error_description": .string("no route for \(request.method) \(HTTPRequestProblem.clip(request.path, limit: 200))")],
            status: .notFound
        )
    }
}
