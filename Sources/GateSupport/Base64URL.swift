import ExtrasBase64

/// base64url without padding (RFC 7515 §2, RFC 4648 §5), as JWTs, JWKS and certificate
/// thumbprints use it. The one implementation the proxy and the emulator share; the bytes
/// are converted by swift-extras-base64, the strictness is ours.
public enum Base64URL {
    public static func encode(_ bytes: some Collection<UInt8>) -> String {
        Base64.encodeToString(bytes: bytes, options: [.base64UrlAlphabet, .omitPaddingCharacter])
    }

    public static func encode(_ text: String) -> String {
        encode(Array(text.utf8))
    }

    /// Strict, as a verifier must be: only the base64url alphabet, no padding, no
    /// whitespace, no length that cannot come from an encoder (4n+1), and the unused bits of
    /// the last character zero (RFC 4648 §3.5), so one byte string has one spelling.
    public static func decode(_ text: some StringProtocol) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        var last: UInt8 = 0
        for byte in utf8 {
            guard let value = sextet(byte) else { return nil }
            last = value
        }
        switch utf8.count % 4 {
        case 1: return nil
        case 2: guard last & 0x0F == 0 else { return nil }
        case 3: guard last & 0x03 == 0 else { return nil }
        default: break
        }
        return try? Base64.decode(bytes: utf8, options: [.base64UrlAlphabet, .omitPaddingCharacter])
    }

    private static func sextet(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): return byte - UInt8(ascii: "A")
        case UInt8(ascii: "a")...UInt8(ascii: "z"): return byte - UInt8(ascii: "a") + 26
        case UInt8(ascii: "0")...UInt8(ascii: "9"): return byte - UInt8(ascii: "0") + 52
        case UInt8(ascii: "-"): return 62
        case UInt8(ascii: "_"): return 63
        default: return nil
        }
    }
}
