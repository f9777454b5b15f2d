import NIOCore

/// What the bytes on a TDS server connection are at any moment. SQL Server's transport is
/// unusual: in TDS 7.x the TLS handshake travels inside PRELOGIN packets, then TLS records
/// flow raw, and in login-only mode TLS stops after the LOGIN7 message. TDS 8.0 (strict)
/// starts with a plain TLS handshake instead. This machine decides, byte by byte, which
/// layer each inbound byte belongs to and how each outbound byte must be framed.
public struct TransportFraming: Sendable {
    public enum Mode: Sendable, Equatable {
        /// Nothing seen yet: the first byte decides between TDS 7.x and strict.
        case sniffing
        /// Plain TDS packets, no TLS below (or TLS handled by a strict-mode handler).
        case plain
        /// TLS handshake in progress inside PRELOGIN packets.
        case handshakeInPrelogin
        /// TLS established; records flow raw.
        case tls
    }

    public enum Inbound: Sendable, Equatable {
        /// The connection starts with a TLS ClientHello: TDS 8.0 strict.
        case strictDetected
        /// Bytes for the TLS layer (records, unwrapped from PRELOGIN during the handshake).
        case tlsBytes(ByteBuffer)
        /// Bytes for whatever sits above this layer (TDS packets, or strict-mode TLS).
        case plainBytes(ByteBuffer)
        /// Plain TDS packets that must go around the TLS layer: login-only TLS has ended
        /// while the TLS handler is still in place.
        case bypassBytes(ByteBuffer)
    }

    public private(set) var mode: Mode = .sniffing
    /// Login-only encryption (client OFF, server OFF): TLS ends after LOGIN7. Clients differ:
    /// SqlClient and ODBC encrypt the whole LOGIN7 message, FreeTDS only its first packet,
    /// so after the handshake each record boundary is checked for a plain TDS packet.
    public var loginOnly = false
    private var loginOnlyEnded = false
    private var pending: ByteBuffer?
    private let maxHandshakePacket: Int

    public init(maxHandshakePacket: Int = 32_768) {
        self.maxHandshakePacket = maxHandshakePacket
    }

    /// Called once PRELOGIN has been answered and TLS is about to start.
    public mutating func startHandshakeInPrelogin() {
        mode = .handshakeInPrelogin
    }

    /// Called when TLS is dropped for good (login-only after LOGIN7).
    public mutating func dropTLS() {
        mode = .plain
        loginOnly = false
        loginOnlyEnded = false
    }

    public mutating func markPlain() { mode = .plain }

    /// Splits inbound raw bytes into what goes where. Throws on bytes that fit no layer.
    public mutating func receive(_ bytes: ByteBuffer) throws -> [Inbound] {
        switch mode {
        case .sniffing:
            guard let first = bytes.getInteger(at: bytes.readerIndex, as: UInt8.self) else { return [] }
            if first == 0x16 {
                mode = .plain
                return [.strictDetected, .plainBytes(bytes)]
            }
            mode = .plain
            return [.plainBytes(bytes)]
        case .plain:
            return [.plainBytes(bytes)]
        case .tls where !loginOnly:
            // Full encryption: nothing but TLS records from here, so no need to find them.
            guard var p = pending else { return [.tlsBytes(bytes)] }
            pending = nil
            var rest = bytes
            p.writeBuffer(&rest)
            return [.tlsBytes(p)]
        case .handshakeInPrelogin, .tls:
            var buffer = bytes
            if var p = pending {
                p.writeBuffer(&buffer)
                buffer = p
                pending = nil
            }
            var out: [Inbound] = []
            while buffer.readableBytes > 0 {
                if loginOnlyEnded {
                    out.append(.bypassBytes(buffer.readSlice(length: buffer.readableBytes)!))
                    break
                }
                guard let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) else { break }
                if mode == .handshakeInPrelogin && first == 0x12 {
                    // A PRELOGIN packet carrying handshake records.
                    guard buffer.readableBytes >= 8,
                          let length = buffer.getInteger(at: buffer.readerIndex + 2, endianness: .big, as: UInt16.self)
                    else { break }
                    guard length >= 8, Int(length) <= maxHandshakePacket else {
                        throw TransportError.badHandshakePacket(length: Int(length))
                    }
                    guard buffer.readableBytes >= Int(length) else { break }
                    buffer.moveReaderIndex(forwardBy: 8)
                    let payload = buffer.readSlice(length: Int(length) - 8)!
                    if payload.readableBytes > 0 { out.append(.tlsBytes(payload)) }
                    continue
                }
                if (0x14...0x17).contains(first) {
                    // A raw TLS record: the handshake is over once the peer sends one.
                    guard buffer.readableBytes >= 5,
                          let length = buffer.getInteger(at: buffer.readerIndex + 3, endianness: .big, as: UInt16.self)
                    else { break }
                    guard buffer.readableBytes >= 5 + Int(length) else { break }
                    mode = .tls
                    out.append(.tlsBytes(buffer.readSlice(length: 5 + Int(length))!))
                    continue
                }
                if loginOnly && mode == .tls {
                    loginOnlyEnded = true
                    continue
                }
                throw TransportError.unexpectedByte(first, mode: mode)
            }
            if buffer.readableBytes > 0 { pending = buffer }
            return out
        }
    }

    /// Whether every byte from here on passes through unchanged both ways (TLS established
    /// for good, or plain), with nothing held back.
    public var isPassThrough: Bool {
        pending == nil && (mode == .plain || (mode == .tls && !loginOnly))
    }

    /// Whether outbound bytes from the TLS layer must be wrapped in PRELOGIN packets.
    public var wrapsOutbound: Bool { mode == .handshakeInPrelogin }
}

public enum TransportError: Error, CustomStringConvertible, Equatable {
    case badHandshakePacket(length: Int)
    case unexpectedByte(UInt8, mode: TransportFraming.Mode)

    public var description: String {
        switch self {
        case .badHandshakePacket(let length):
            return "TLS handshake packet with invalid length \(length)"
        case .unexpectedByte(let byte, let mode):
            return "unexpected byte 0x\(String(byte, radix: 16)) on the wire in \(mode) (not TDS, not TLS)"
        }
    }
}
