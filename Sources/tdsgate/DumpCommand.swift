import ArgumentParser
import Foundation
import PacketDump

/// `tdsgate dump`: reading TDS traffic as text. `tdsgate dump --follow` (the default
/// subcommand) prints a running tdsgate's live dump; `decode` reads capture files.
struct DumpCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dump",
        abstract: "Decode TDS traffic for people: a running tdsgate's live dump, captures, hex dumps.",
        subcommands: [DumpFollowCommand.self, DumpDecodeCommand.self],
        defaultSubcommand: DumpFollowCommand.self
    )
}

struct DumpDecodeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Decode a pcapng, pcap or hex file (format detected from its content) to text.",
        discussion: """
            Secrets (LOGIN7 password, SSPI, FEDAUTH tokens) are never printed. Sessions that are \
            TLS-encrypted on the wire cannot be decoded from a capture; tdsgate's dump mode records \
            them decrypted.
            """
    )

    @Argument(help: "A .pcapng, .pcap or hex file (Fixtures/*.hex format, plain hex, xxd or hexdump -C output).")
    var file: String

    @Flag(help: "Show hex next to the decode.")
    var hex = false

    @Flag(name: .customLong("mask-literals"), help: "Replace SQL literals with ? and RPC parameter values with <masked>.")
    var maskLiterals = false

    @Option(help: "TCP port that carries TDS (default: flows that start with PRELOGIN/LOGIN7, or port 1433).")
    var port: UInt16?

    func run() async throws {
        let bytes: [UInt8]
        do {
            bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: file)))
        } catch {
            throw DumpCommandError("cannot read \(file): \((error as NSError).localizedDescription)")
        }
        do {
            let text = try DumpFileDecoder.decode(bytes, port: port, options: DumpTextOptions(hex: hex, maskLiterals: maskLiterals),
                                                  name: (file as NSString).lastPathComponent)
            FileHandle.standardOutput.write(Data(text.utf8))
        } catch let e as DumpReadError {
            throw DumpCommandError("\(file): \(e.message)")
        }
    }
}

/// Printed as "Error: message" by ArgumentParser, with exit status 1 and no stack trace.
struct DumpCommandError: Error, CustomStringConvertible {
    var description: String
    init(_ d: String) { description = d }
}
