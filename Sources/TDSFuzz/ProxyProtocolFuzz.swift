import NIOCore
import TDSNIO

/// A connection's first bytes as a listener with `proxy_protocol:` reads them. The first
/// byte picks the setup: bit 0 a trusted peer, bits 1-2 the versions allowed, bit 3 a
/// small v2 limit, the rest the size of the reads the bytes arrive in. The parser must
/// throw only `ProxyProtocolError` (typed), consume exactly the header it returns and
/// nothing otherwise, stay within its bounds, and the receiver must decide the same
/// whether the bytes come at once or in pieces.
enum ProxyProtocolFuzz {
    static let versionSets: [Set<ProxyProtocolVersion>] = [[.v1, .v2], [.v1], [.v2], [.v1, .v2]]

    static func run(_ bytes: [UInt8]) {
        guard let first = bytes.first else { return }
        let trusted = first & 1 != 0
        let versions = versionSets[Int(first >> 1) & 3]
        let maxV2Length = first & 8 != 0 ? 64 : ProxyHeaderParser.defaultMaxV2Length
        let chunk = 1 + Int(first >> 4) * 7
        let body = Array(bytes.dropFirst())

        parse(body, versions: versions, maxV2Length: maxV2Length)

        let whole = receive([body], trusted: trusted, versions: versions, maxV2Length: maxV2Length)
        let pieces = stride(from: 0, to: body.count, by: chunk).map { Array(body[$0..<min(body.count, $0 + chunk)]) }
        let split = receive(pieces, trusted: trusted, versions: versions, maxV2Length: maxV2Length)
        guard whole == split else { fuzzFail("PROXY receiver decides differently whole (\(whole)) and in \(chunk)-byte reads (\(split))") }
    }

    static func parse(_ body: [UInt8], versions: Set<ProxyProtocolVersion>, maxV2Length: Int) {
        var buffer = ByteBuffer(bytes: body)
        do {
            switch try ProxyHeaderParser.parse(&buffer, versions: versions, maxV2Length: maxV2Length) {
            case .needMore:
                guard buffer.readableBytes == body.count else { fuzzFail("needMore consumed bytes") }
            case .header(let header, let consumed):
                guard consumed == body.count - buffer.readableBytes else {
                    fuzzFail("header says \(consumed) bytes consumed, \(body.count - buffer.readableBytes) were")
                }
                let limit = header.version == .v1 ? ProxyHeaderParser.maxV1Length : 16 + maxV2Length
                guard consumed <= limit else { fuzzFail("a \(header.version) header of \(consumed) bytes, above \(limit)") }
                guard versions.contains(header.version) else { fuzzFail("a \(header.version) header accepted, allowed \(versions)") }
                if header.version == .v1, !header.tlvs.isEmpty { fuzzFail("a v1 header with TLVs") }
                if case .local = header.addresses, !header.tlvs.isEmpty { fuzzFail("LOCAL kept its TLVs") }
                _ = (header.source?.port, header.destination?.ipAddress, header.azurePrivateLinkID)
                // The header read again from its own bytes is the same header.
                var again = ByteBuffer(bytes: body.prefix(consumed))
                let reread = try? ProxyHeaderParser.parse(&again, versions: versions, maxV2Length: maxV2Length)
                guard reread == .header(header, consumed: consumed) else { fuzzFail("the header's own bytes do not parse to it") }
            }
        } catch {
            guard buffer.readableBytes == body.count else { fuzzFail("a refused header consumed bytes (\(error))") }
            _ = "\(error)"
        }
    }

    /// What the connection comes to: the first decision, the bytes passed on after it (the
    /// remainder and, once decided, later reads, which the handler passes on after leaving),
    /// and what closing the input says when nothing was decided.
    struct Outcome: Equatable, CustomStringConvertible {
        var decision: ProxyProtocolReceiver.Action
        var passedOn: [UInt8]

        var description: String { "\(decision), then \(passedOn.count) bytes" }
    }

    static func receive(_ reads: [[UInt8]], trusted: Bool, versions: Set<ProxyProtocolVersion>, maxV2Length: Int) -> Outcome {
        var receiver = ProxyProtocolReceiver(trusted: trusted, versions: versions, peer: "192.0.2.1", maxV2Length: maxV2Length)
        var decision: ProxyProtocolReceiver.Action?
        var after: [UInt8] = []
        for read in reads {
            if decision != nil {
                guard receiver.receive(ByteBuffer(bytes: read)) == .ignore else { fuzzFail("a decided receiver acted on more bytes") }
                after += read
                continue
            }
            let action = receiver.receive(ByteBuffer(bytes: read))
            if action != .wait { decision = action }
        }
        let settled = decision ?? receiver.inputClosed()
        switch settled {
        case .accept(let header, let remainder):
            return Outcome(decision: .accept(header, remainder: ByteBuffer()), passedOn: Array(remainder.readableBytesView) + after)
        case .passThrough(let bytes):
            guard trusted == false else { fuzzFail("a trusted peer's bytes passed through without a header") }
            return Outcome(decision: .passThrough(ByteBuffer()), passedOn: Array(bytes.readableBytesView) + after)
        case .reject:
            // Later reads are dropped: the connection is being closed.
            return Outcome(decision: settled, passedOn: [])
        case .wait, .ignore:
            return Outcome(decision: settled, passedOn: after)
        }
    }
}
