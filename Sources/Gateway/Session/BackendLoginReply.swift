import NIOCore
import TDS

/// What tdsgate needs to know of Azure SQL's answer to its LOGIN7, and the answer to pass on.
struct BackendLoginReply {
    var loggedIn = false
    var errors: [ServerMessage] = []
    var routing: (host: String, port: Int)?
    var packetSize: Int?
    var database: String?
    var fedAuthInfo: FedAuthInfo?

    init(parsing payload: ByteBuffer) throws {
        var buffer = payload
        var scanner = TDSTokenScanner()
        for summary in try scanner.scan(&buffer) {
            switch summary.token {
            case .loginAck?: loggedIn = true
            case .error(let m)?: errors.append(m)
            case .envChange(.routing(_, let port, let server))?: routing = (server, Int(port))
            case .envChange(.enhancedRouting(_, let port, let server, _))?: routing = (server, Int(port))
            case .envChange(.packetSize(let new, _))?: packetSize = Int(new)
            case .envChange(.database(let new, _))?: database = new
            case .fedAuthInfo(let info)?: fedAuthInfo = info
            default: break
            }
        }
    }
}

/// Rewrites the login reply for the client: the routing ENVCHANGE goes (tdsgate followed it
/// itself), and the FEDAUTH acknowledgement goes when the client did not ask for FEDAUTH
/// (it logged in with a SQL login, and a driver may reject an ack it did not request).
/// Every other token is copied byte for byte.
func clientLoginReply(_ payload: ByteBuffer, clientFeatures: Set<UInt8>, clientSentFeatureExt: Bool) throws -> ByteBuffer {
    var input = payload
    var probe = payload
    var scanner = TDSTokenScanner()
    let summaries = try scanner.scan(&probe)
    var out = ByteBufferAllocator().buffer(capacity: payload.readableBytes)
    for summary in summaries {
        var raw = input.readSlice(length: summary.length)!
        switch summary.token {
        case .envChange(.routing)?, .envChange(.enhancedRouting)?:
            continue
        case .featureExtAck(let acks)?:
            guard clientSentFeatureExt else { continue }
            let kept = acks.filter { clientFeatures.contains($0.id) }
            if kept.count == acks.count {
                out.writeBuffer(&raw)
            } else {
                TDSToken.featureExtAck(kept).write(into: &out)
            }
        default:
            out.writeBuffer(&raw)
        }
    }
    // Anything the scanner could not read as a whole token is passed on unchanged.
    out.writeBuffer(&input)
    return out
}
