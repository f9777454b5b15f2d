import GateSupport
import NIOHTTP1

/// A value in a request that its route does not accept. Routes answer it with
/// ``response``: a 400 naming the parameter and what it must be.
public struct HTTPRequestProblem: Error, Sendable, Hashable, CustomStringConvertible {
    /// Where the value was, e.g. `query parameter 'wait'` or `body field 'duration_ms'`.
    public var parameter: String
    /// What it must be, and what was sent (clipped).
    public var reason: String

    public init(parameter: String, reason: String) {
        self.parameter = parameter
        self.reason = reason
    }

    public var description: String { "\(parameter): \(reason)" }

    public var response: HTTPServerResponse {
        .error(.badRequest, code: "invalid_parameter", message: description)
    }

    /// A request value quoted in an error: short, and one line.
    static func quote(_ value: some StringProtocol, limit: Int = 40) -> String {
        "'\(clip(value, limit: limit))'"
    }

    static func clip(_ value: some StringProtocol, limit: Int) -> String {
        let flat = value.unicodeScalars.map { $0.properties.generalCategory == .control ? " " : String($0) }.joined()
        return flat.count <= limit ? flat : "\(flat.prefix(limit))…"
    }
}

/// Integers that JSON readers (JavaScript included) hold exactly: 0 ... 2^53.
public let jsonExactCounts: ClosedRange<Int> = 0...(1 << 53)

extension HTTPServerRequest {
    /// The query value `name` as a whole number in `range`, or nil when the request has no
    /// such parameter. Anything else (empty, a fraction, a sign-only or out-of-range value)
    /// is a problem, never a trap or a silent default.
    public func queryInteger(_ name: String, in range: ClosedRange<Int>) throws(HTTPRequestProblem) -> Int? {
        guard let text = self.query(name) else { return nil }
        guard let value = Int(text), range.contains(value) else {
            throw HTTPRequestProblem(parameter: "query parameter '\(name)'",
                                     reason: "must be a whole number from \(range.lowerBound) to \(range.upperBound), not \(HTTPRequestProblem.quote(text))")
        }
        return value
    }

    /// The query value `name` as a finite number in `range` (NaN and infinities refused),
    /// or nil when absent.
    public func queryNumber(_ name: String, in range: ClosedRange<Double>, unit: String = "") throws(HTTPRequestProblem) -> Double? {
        guard let text = self.query(name) else { return nil }
        guard let value = Double(text), value.isFinite, range.contains(value) else {
            let what = unit.isEmpty ? "a number" : "a number of \(unit)"
            throw HTTPRequestProblem(parameter: "query parameter '\(name)'",
                                     reason: "must be \(what) from \(Self.format(range.lowerBound)) to \(Self.format(range.upperBound)), not \(HTTPRequestProblem.quote(text))")
        }
        return value
    }

    private static func format(_ value: Double) -> String {
        value.rounded() == value && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    /// The token of `Authorization: Bearer <token>` (the scheme is case-insensitive,
    /// RFC 6750 §2.1), or nil without one.
    public var bearerToken: Substring? {
        guard let value = self.header("Authorization") else { return nil }
        let parts = value.split(separator: " ", maxSplits: 1, omittingEmptySubsequences: true)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].drop(while: { $0 == " " })
        return token.isEmpty ? nil : token
    }

    /// Whether the request carries `expected` as its bearer token, compared in constant time.
    public func hasBearerToken(_ expected: String) -> Bool {
        guard let given = self.bearerToken else { return false }
        return ConstantTime.equals(Array(given.utf8), Array(expected.utf8))
    }
}

extension [String: JSONValue] {
    /// The body field `key` as a whole number in `range`, or nil when absent or null.
    public func integer(_ key: String, in range: ClosedRange<Int>) throws(HTTPRequestProblem) -> Int? {
        guard let value = self[key], value != .null else { return nil }
        guard let number = value.intValue, range.contains(number) else {
            throw HTTPRequestProblem(parameter: "body field '\(key)'",
                                     reason: "must be a whole number from \(range.lowerBound) to \(range.upperBound), not \(HTTPRequestProblem.quote(value.serializedString()))")
        }
        return number
    }

    /// The body field `key` as a string, or nil when absent or null; another type is a problem.
    public func string(_ key: String, maxLength: Int = 1024) throws(HTTPRequestProblem) -> String? {
        guard let value = self[key], value != .null else { return nil }
        guard let text = value.stringValue, text.utf8.count <= maxLength else {
            throw HTTPRequestProblem(parameter: "body field '\(key)'", reason: "must be a string of at most \(maxLength) bytes")
        }
        return text
    }
}
