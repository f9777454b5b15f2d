import NIOCore
@testable import TDS

extension ByteBuffer {
    var bytes: [UInt8] { getBytes(at: readerIndex, length: readableBytes) ?? [] }
}

func hexBytes(_ hex: String) -> [UInt8] {
    var out: [UInt8] = []
    var high: UInt8?
    for c in hex.utf8 {
        let v: UInt8
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): v = c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): v = c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): v = c - UInt8(ascii: "A") + 10
        default: continue
        }
        if let h = high {
            out.append(h << 4 | v)
            high = nil
        } else {
            high = v
        }
    }
    return out
}

func hexString(_ bytes: [UInt8]) -> String {
    bytes.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
}

func encode(_ body: (inout ByteBuffer) -> Void) -> ByteBuffer {
    var b = ByteBuffer()
    body(&b)
    return b
}

/// Deterministic generator so fuzz failures reproduce.
struct SplitMix64: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE5_E9B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Runs `parse` on every truncation of `bytes` and on `iterations` randomly corrupted copies;
/// each attempt must either succeed or throw TDSDecodingError. Returns (parsed, rejected).
@discardableResult
func hammer(_ bytes: [UInt8], seed: UInt64, iterations: Int = 2000, truncate: Bool = true,
            _ parse: (ByteBuffer) throws -> Void) -> (ok: Int, rejected: Int, foreign: [String]) {
    var ok = 0
    var rejected = 0
    var foreign: [String] = []
    func attempt(_ b: [UInt8]) {
        do {
            try parse(ByteBuffer(bytes: b))
            ok += 1
        } catch is TDSDecodingError {
            rejected += 1
        } catch {
            foreign.append("\(error)")
        }
    }
    if truncate {
        for n in 0..<bytes.count { attempt(Array(bytes.prefix(n))) }
    }
    var rng = SplitMix64(seed: seed)
    for _ in 0..<iterations where !bytes.isEmpty {
        var b = bytes
        let flips = Int.random(in: 1...4, using: &rng)
        for _ in 0..<flips {
            let i = Int.random(in: 0..<b.count, using: &rng)
            switch Int.random(in: 0..<3, using: &rng) {
            case 0: b[i] = UInt8.random(in: 0...255, using: &rng)
            case 1: b[i] ^= 1 << UInt8.random(in: 0...7, using: &rng)
            default: b[i] = [0x00, 0xFF, 0x7F, 0x80, 0xFE][Int.random(in: 0..<5, using: &rng)]
            }
        }
        attempt(b)
    }
    return (ok, rejected, foreign)
}
