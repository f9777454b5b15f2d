import Foundation
import NIOCore
import Testing
@testable import PacketDump
@testable import TDS

@Suite struct FuzzTests {
    /// 2,000 seeded corruptions and truncations of fixture and synthetic messages through the
    /// renderer, the redactor and the readers: each must return (no trap, no hang).
    @Test func corruptInputNeverTraps() throws {
        var rng = SplitMix64(seed: 0x7D5_0D0B)
        var corpus: [(TDSPacketType, [UInt8])] = []
        for url in Fixtures.hexFiles.prefix(12) {
            for m in messages(try Fixtures.packets(url)) { corpus.append((m.type, Array(m.payload.readableBytesView))) }
        }
        corpus.append((.tabularResult, Array(resultReply(rows: 20).readableBytesView)))
        var w = TDSTokenWriter()
        corpus.append((.tabularResult, Array(encode { b in
            w.write(.envChange(.routing(protocol: 0, port: 11000, server: "h")), into: &b)
            w.write(.featureExtAck([FeatureAck(id: 2, data: [])]), into: &b)
            w.write(.fedAuthInfo(FedAuthInfo(stsURL: "https://sts", spn: "spn")), into: &b)
            w.write(.done(Done()), into: &b)
        }.readableBytesView)))
        let pcap = CaptureTests.writeSession()
        let started = Date()
        for i in 0..<2000 {
            let (type, original) = corpus[Int(rng.next() % UInt64(corpus.count))]
            var bytes = original
            switch rng.next() % 4 {
            case 0: bytes = Array(bytes.prefix(Int(rng.next() % UInt64(bytes.count + 1))))
            case 1:
                for _ in 0..<(1 + rng.next() % 8) where !bytes.isEmpty {
                    bytes[Int(rng.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
            case 2:
                for _ in 0..<(1 + rng.next() % 4) where !bytes.isEmpty {
                    let at = Int(rng.next() % UInt64(bytes.count))
                    bytes[at] = [0x00, 0xFF, 0x7F, 0x80][Int(rng.next() % 4)]
                }
            default:
                bytes.insert(contentsOf: (0..<Int(rng.next() % 16)).map { _ in UInt8(truncatingIfNeeded: rng.next()) },
                             at: Int(rng.next() % UInt64(bytes.count + 1)))
            }
            let payload = ByteBuffer(bytes: bytes)
            let direction: DumpDirection = type == .tabularResult ? .backendToProxy : .clientToProxy
            let text = DumpTextRenderer.render(message: TDSMessage(type: type, payload: payload), direction: direction, at: t0,
                                               options: DumpTextOptions(hex: i % 2 == 0, maskLiterals: i % 3 == 0))
            #expect(!text.isEmpty)
            var copy = payload
            SecretRedactor.redact(type: type, payload: &copy)
            #expect(copy.readableBytes == payload.readableBytes)

            // Raw bytes as a packet stream (hex path) and a damaged capture.
            _ = try? DumpFileDecoder.decode(Array(DumpText.hex(bytes.prefix(2048)).utf8))
            if i % 10 == 0 {
                var damaged = pcap
                for _ in 0..<(1 + rng.next() % 16) {
                    damaged[Int(rng.next() % UInt64(damaged.count))] = UInt8(truncatingIfNeeded: rng.next())
                }
                if rng.next() % 2 == 0 { damaged = Array(damaged.prefix(Int(rng.next() % UInt64(damaged.count)))) }
                _ = try? DumpFileDecoder.decode(damaged)
                _ = try? CaptureFileReader.pcap(Array(damaged.prefix(4000)))
            }
        }
        #expect(Date().timeIntervalSince(started) < 300)
    }
}
