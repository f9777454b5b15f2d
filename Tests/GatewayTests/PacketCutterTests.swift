import NIOCore
import Testing
@testable import Gateway

@Suite("PacketCutter: whole packets out of any read boundaries")
struct PacketCutterTests {
    static func packet(_ type: UInt8, _ id: UInt8, size: Int, eom: Bool = true) -> [UInt8] {
        var p: [UInt8] = [type, eom ? 1 : 0, UInt8(size >> 8), UInt8(size & 0xFF), 0, 0, id, 0]
        p += (0..<(size - 8)).map { UInt8(truncatingIfNeeded: $0 &+ Int(id)) }
        return p
    }

    static func smpData(sid: UInt16, _ payload: [UInt8]) -> [UInt8] {
        let length = UInt32(16 + payload.count)
        var f: [UInt8] = [0x53, 0x08, UInt8(sid & 0xFF), UInt8(sid >> 8)]
        f += withUnsafeBytes(of: length.littleEndian, Array.init)
        f += [1, 0, 0, 0, 4, 0, 0, 0]
        return f + payload
    }

    /// The stream cut at seeded random places; `skipEvery` turns observers off and on.
    static func run(_ stream: [UInt8], seed: UInt64, skipping: (Int) -> Bool = { _ in false }) -> [[UInt8]] {
        var rng = seed
        func next() -> Int {
            rng = rng &* 6364136223846793005 &+ 1442695040888963407
            return Int((rng >> 33) % 9000) + 1
        }
        var cutter = PacketCutter()
        var out: [[UInt8]] = []
        var i = 0
        var read = 0
        while i < stream.count {
            let n = min(next(), stream.count - i)
            let chunk = ByteBuffer(bytes: stream[i..<(i + n)])
            if skipping(read) {
                cutter.skip(chunk)
            } else {
                out += cutter.feed(chunk).map { Array($0.packet.readableBytesView) }
            }
            i += n
            read += 1
        }
        #expect(!cutter.lost)
        return out
    }

    @Test func tdsPacketsComeOutWholeWhateverTheReads() {
        let packets = (0..<200).map { Self.packet(0x04, UInt8($0 % 250), size: 8 + ($0 * 97) % 32_000) }
        for seed in 1...20 as ClosedRange<UInt64> {
            #expect(Self.run(packets.flatMap { $0 }, seed: seed) == packets)
        }
    }

    @Test func marsFramesGiveTheirPackets() {
        let packets = (0..<50).map { Self.packet(0x01, UInt8($0), size: 40 + $0 * 13) }
        let frames = packets.enumerated().flatMap { Self.smpData(sid: UInt16($0.offset % 3), $0.element) }
        let syn: [UInt8] = [0x53, 0x01, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0]
        #expect(Self.run(syn + frames, seed: 7) == packets)
    }

    @Test func observersComingAndGoingStartAtABoundary() {
        let packets = (0..<300).map { Self.packet(0x04, UInt8($0 % 250), size: 8 + ($0 * 211) % 9_000) }
        for seed in 1...10 as ClosedRange<UInt64> {
            let seen = Self.run(packets.flatMap { $0 }, seed: seed, skipping: { ($0 / 3) % 2 == 1 })
            #expect(!seen.isEmpty)
            // Every packet seen is one of the stream's, in order: never a misaligned slice.
            var index = 0
            for p in seen {
                while index < packets.count && packets[index] != p { index += 1 }
                #expect(index < packets.count, "a packet that is not in the stream came out")
            }
        }
    }

    @Test func bytesThatAreNotTDSStopTheCutter() {
        var cutter = PacketCutter()
        _ = cutter.feed(ByteBuffer(bytes: [0x04, 0x01, 0x00, 0x02, 0, 0, 1, 0]))
        #expect(cutter.lost)
        #expect(cutter.feed(ByteBuffer(bytes: Self.packet(0x04, 1, size: 20))).isEmpty)
    }
}
