import HTTPServerKit
import NIOHTTP1
import Testing

/// Numbers and tokens from a request: range-checked values or a 400 naming the parameter.
@Suite("HTTP request values")
struct HTTPRequestValuesTests {
    func request(_ query: String, headers: HTTPHeaders = [:]) -> HTTPServerRequest {
        HTTPServerRequest(method: .GET, uri: "/v1/dump/follow?\(query)", headers: headers)
    }

    /// The problem `body` threw; nil when it threw nothing (any other error fails the test).
    func problem(_ body: () throws -> Void) -> HTTPRequestProblem? {
        do {
            try body()
            return nil
        } catch let problem as HTTPRequestProblem {
            return problem
        } catch {
            Issue.record("not an HTTPRequestProblem: \(error)")
            return nil
        }
    }

    @Test func integersInRange() throws {
        #expect(try request("after=0").queryInteger("after", in: jsonExactCounts) == 0)
        #expect(try request("after=42&after=7").queryInteger("after", in: jsonExactCounts) == 42)
        #expect(try request("limit=10000").queryInteger("limit", in: 1...10_000) == 10_000)
        #expect(try request("other=1").queryInteger("after", in: jsonExactCounts) == nil)
    }

    @Test(arguments: ["9223372036854775807", "-9223372036854775808", "99999999999999999999", "-1", "", "1.5",
                      "0x10", "nan", "1e3", " 1", "9007199254740993"])
    func integersOutOfRangeOrNotWholeAreProblems(value: String) throws {
        let found = problem { _ = try request("after=\(value)").queryInteger("after", in: jsonExactCounts) }
        let p = try #require(found)
        #expect(p.parameter == "query parameter 'after'")
        #expect(p.reason.hasPrefix("must be a whole number from 0 to 9007199254740992"))
        #expect(p.response.status == HTTPResponseStatus.badRequest)
        #expect(try JSONValue(parsing: p.response.body)["error"] == "invalid_parameter")
    }

    @Test func numbersInRange() throws {
        #expect(try request("wait=0").queryNumber("wait", in: 0...30) == 0)
        #expect(try request("wait=5.0").queryNumber("wait", in: 0...30) == 5)
        #expect(try request("wait=1e1").queryNumber("wait", in: 0...30) == 10)
        #expect(try request("wait=30").queryNumber("wait", in: 0...30) == 30)
    }

    @Test(arguments: ["nan", "NaN", "inf", "-inf", "infinity", "-0.001", "30.5", "31", "", "five", "1e400"])
    func nonFiniteOrOutOfRangeNumbersAreProblems(value: String) throws {
        let found = problem { _ = try request("wait=\(value)").queryNumber("wait", in: 0...30, unit: "seconds") }
        let p = try #require(found)
        #expect(p.description.hasPrefix("query parameter 'wait': must be a number of seconds from 0 to 30, not '"))
    }

    @Test func quotedValuesAreShortAndOneLine() throws {
        let long = String(repeating: "9", count: 500)
        let p = try #require(problem { _ = try request("after=\(long)").queryInteger("after", in: 0...1) })
        #expect(p.reason.count < 120)
        let newline = try #require(problem { _ = try request("after=1%0A2").queryInteger("after", in: 0...1) })
        #expect(!newline.reason.contains("\n"))
    }

    @Test func bodyFields() throws {
        let body: [String: JSONValue] = ["n": 5, "big": .double(1e300), "neg": -1, "text": "x", "null": .null, "f": 1.5]
        #expect(try body.integer("n", in: jsonExactCounts) == 5)
        #expect(try body.integer("missing", in: jsonExactCounts) == nil)
        #expect(try body.integer("null", in: jsonExactCounts) == nil)
        for key in ["big", "neg", "text", "f"] {
            #expect(problem { _ = try body.integer(key, in: jsonExactCounts) }?.parameter == "body field '\(key)'")
        }
        #expect(try body.string("text") == "x")
        #expect(problem { _ = try body.string("n") } != nil)
        #expect(problem { _ = try body.string("text", maxLength: 0) } != nil)
    }

    @Test func bearerTokens() {
        #expect(request("", headers: ["Authorization": "Bearer abc"]).bearerToken == "abc")
        #expect(request("", headers: ["Authorization": "bearer  abc"]).bearerToken == "abc")
        #expect(request("", headers: ["Authorization": "BEARER abc"]).bearerToken == "abc")
        #expect(request("", headers: ["Authorization": "Basic abc"]).bearerToken == nil)
        #expect(request("", headers: ["Authorization": "Bearer"]).bearerToken == nil)
        #expect(request("", headers: ["Authorization": "Bearer "]).bearerToken == nil)
        #expect(request("").bearerToken == nil)

        let right = request("", headers: ["Authorization": "Bearer admin-token"])
        #expect(right.hasBearerToken("admin-token"))
        #expect(!right.hasBearerToken("admin-tokeN"))
        #expect(!right.hasBearerToken("admin-token-longer"))
        #expect(!right.hasBearerToken("admin"))
        #expect(!request("").hasBearerToken("admin-token"))
        #expect(!request("", headers: ["Authorization": "Basic admin-token"]).hasBearerToken("admin-token"))
    }
}
