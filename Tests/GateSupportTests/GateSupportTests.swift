import Foundation
import GateSupport
import Testing

@Suite("base64url")
struct Base64URLTests {
    /// RFC 4648 §10 test vectors, in the URL alphabet and without padding.
    static let vectors: [(String, String)] = [
        ("", ""), ("f", "Zg"), ("fo", "Zm8"), ("foo", "Zm9v"), ("foob", "Zm9vYg"), ("fooba", "Zm9vYmE"),
        ("foobar", "Zm9vYmFy"),
    ]

    @Test(arguments: Self.vectors)
    func rfc4648Vectors(plain: String, encoded: String) {
        #expect(Base64URL.encode(plain) == encoded)
        #expect(Base64URL.decode(encoded) == Array(plain.utf8))
    }

    @Test func urlAlphabetNotStandard() {
        // 0xFB 0xFF 0xBF is "+/+/" in standard base64.
        #expect(Base64URL.encode([0xFB, 0xFF, 0xBF]) == "-_-_")
        #expect(Base64URL.decode("-_-_") == [0xFB, 0xFF, 0xBF])
        #expect(Base64URL.decode("+/+/") == nil)
    }

    @Test func roundTripsEveryLengthAndByte() {
        for length in 0..<70 {
            // A fixed pattern that differs per length and position.
            let bytes = (0..<length).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ length &* 7) }
            let text = Base64URL.encode(bytes)
            #expect(!text.contains("="))
            #expect(Base64URL.decode(text) == bytes, "length \(length)")
        }
        let all = (0...255).map(UInt8.init)
        #expect(Base64URL.decode(Base64URL.encode(all)) == all)
    }

    @Test(arguments: [
        "Zg==",  // padding
        "Zm8=",
        "Zm9v\n",  // whitespace
        " Zm9v",
        "Zm9 v",
        "Z",  // 4n+1 characters cannot come from an encoder
        "Zm9vY",
        "Zh",  // unused bits not zero: "Zh" and "Zg" would both be "f"
        "Zm9",
        "Zm9v!",
        "Zm9v\u{0}",
        "Zm9vé",
    ])
    func refusesWhatAnEncoderNeverWrites(text: String) {
        #expect(Base64URL.decode(text) == nil)
    }

    @Test func decodesSubstrings() {
        let token = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln"
        let parts = token.split(separator: ".")
        #expect(Base64URL.decode(parts[0]).map { String(decoding: $0, as: UTF8.self) } == #"{"alg":"RS256"}"#)
        #expect(Base64URL.decode(parts[2]) == Array("sig".utf8))
    }
}

@Suite("constant-time compare")
struct ConstantTimeTests {
    @Test func bytes() {
        #expect(ConstantTime.equals([UInt8](), [UInt8]()))
        #expect(ConstantTime.equals([1, 2, 3], [1, 2, 3]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2, 4]))
        #expect(!ConstantTime.equals([1, 2, 3], [0, 2, 3]))
        // A prefix is not equal, in either order, and neither are trailing zero bytes.
        #expect(!ConstantTime.equals([1, 2], [1, 2, 3]))
        #expect(!ConstantTime.equals([1, 2, 3], [1, 2]))
        #expect(!ConstantTime.equals([1, 2], [1, 2, 0]))
        #expect(!ConstantTime.equals([], [0]))
        #expect(ConstantTime.equals(Data([9, 8]), [9, 8]))
    }

    @Test func strings() {
        #expect(ConstantTime.equals("admin-token", "admin-token"))
        #expect(!ConstantTime.equals("admin-token", "admin-tokeN"))
        #expect(!ConstantTime.equals("admin-token", "admin-token "))
        #expect(!ConstantTime.equals("", "x"))
        #expect(ConstantTime.equals("", ""))
        // Bytes, not characters: precomposed and decomposed é differ.
        #expect(!ConstantTime.equals("\u{E9}", "e\u{301}"))
    }
}

@Suite("time format")
struct TimeFormatTests {
    @Test func isoAndMilliseconds() {
        let date = Date(timeIntervalSince1970: 1_738_324_800.125)
        #expect(TimeFormat.iso(date) == "2025-01-31T12:00:00Z")
        #expect(TimeFormat.rfc3339Milliseconds(date) == "2025-01-31T12:00:00.125Z")
    }
}
