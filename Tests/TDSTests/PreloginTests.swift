import NIOCore
import Testing
@testable import TDS

@Suite struct PreloginTests {
    @Test func newMessageKeepsPositionalOrder() throws {
        var p = PreloginMessage()
        p.mars = false
        p.encryption = .notSupported
        p.threadID = 0x0102_0304
        p.version = PreloginVersion(major: 16, minor: 0, build: 0x1000, subBuild: 3)
        p.instance = ""
        p.fedAuthRequired = 1
        #expect(p.options.map(\.token) == [0, 1, 2, 3, 4, 6])
        let bytes = encode { p.write(into: &$0) }.bytes
        // 6 entries * 5 + terminator = 31: VERSION at offset 31, length 6.
        #expect(Array(bytes.prefix(5)) == [0x00, 0x00, 31, 0x00, 6])
        #expect(bytes[30] == 0xFF)
        #expect(Array(bytes[31..<37]) == [16, 0, 0x10, 0x00, 0x00, 0x03])
        #expect(Array(bytes[39..<43]) == [0x04, 0x03, 0x02, 0x01], "THREADID little-endian")
        #expect(try PreloginMessage(parsing: ByteBuffer(bytes: bytes)) == p)
    }

    @Test func unknownOptionsSurviveRoundTrip() throws {
        var p = PreloginMessage(options: [
            PreloginOption(token: 0x00, data: [1, 2, 3, 4, 5, 6]),
            PreloginOption(token: 0x42, data: [9, 9, 9]),
            PreloginOption(token: 0x01, data: [0x03]),
        ])
        let parsed = try PreloginMessage(parsing: encode { p.write(into: &$0) })
        #expect(parsed == p)
        #expect(parsed.encryption == .required)
        #expect(parsed.data(for: 0x42) == [9, 9, 9])
        p.encryption = .off
        #expect(p.options.map(\.token) == [0x00, 0x42, 0x01], "set replaces in place")
        p.nonce = [UInt8](repeating: 7, count: 32)
        #expect(p.options.map(\.token) == [0x00, 0x42, 0x01, 0x07])
        p.encryption = nil
        #expect(p.encryption == nil)
    }

    @Test func encryptionFlags() {
        var e = PreloginEncryption.required
        e.clientCertificate = true
        #expect(e.rawValue == 0x83)
        #expect(e.mode == .required)
        #expect(e.clientCertificate)
        #expect(PreloginEncryption(rawValue: 0x80).mode == .off)
    }

    @Test func instanceDropsNUL() throws {
        var p = PreloginMessage()
        p.instance = "MSSQLServer"
        #expect(p.data(for: 2)?.last == 0)
        #expect(p.instance == "MSSQLServer")
    }

    @Test func malformedTablesThrow() {
        // Option pointing past the end.
        #expect(throws: TDSDecodingError.self) {
            try PreloginMessage(parsing: ByteBuffer(bytes: [0x00, 0x00, 0x06, 0x00, 0x06, 0xFF, 1, 2]))
        }
        // Missing terminator.
        #expect(throws: TDSDecodingError.self) {
            try PreloginMessage(parsing: ByteBuffer(bytes: [0x00, 0x00, 0x05, 0x00, 0x00]))
        }
        #expect(throws: TDSDecodingError.self) { try PreloginMessage(parsing: ByteBuffer()) }
    }
}
