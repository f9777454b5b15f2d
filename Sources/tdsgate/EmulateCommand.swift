import ArgumentParser
import AzureEmulator

struct EmulateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "emulate",
        abstract: "Run an emulated Azure SQL deployment described by a YAML file."
    )

    @Option(help: "Deployment description (see Configs/emulator.yaml).")
    var config: String

    @Option(help: "Write endpoints, logins and the CA file as JSON here.")
    var portsFile: String?

    @Option(help: "Use consecutive ports from here for every port given as 0 (default: free ports).")
    var basePort: Int?

    @Option(help: "Record every client packet (decrypted) per session as hex into this folder, in the Fixtures format.")
    var captureDir: String?

    @Option(help: "Folder for the generated CA and certificates (default: a temporary folder).")
    var stateDir: String?

    func run() async throws {
        let cfg: EmulatorConfig
        do {
            cfg = try EmulatorConfig.load(path: config)
        } catch {
            throw ValidationError("\(config): \(error)")
        }
        try await EmulatorHost.run(config: cfg, basePort: basePort, portsFile: portsFile, stateDirectory: stateDir) { rt in
            Banner.emulator(rt)
        }
    }
}
