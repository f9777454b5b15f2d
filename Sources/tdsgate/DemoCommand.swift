import ArgumentParser
import AzureEmulator

struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Start the embedded emulated Azure SQL deployment and print connection strings."
    )

    @Option(help: "Write endpoints, logins and the CA file as JSON here (documented in the README).")
    var portsFile: String?

    @Option(help: "Use consecutive ports from here (default: free ports).")
    var basePort: Int?

    @Option(help: "Folder for the generated CA and certificates (default: a temporary folder).")
    var stateDir: String?

    func run() async throws {
        let cfg = try EmulatorConfig.load(yaml: DemoDeployment.yaml)
        try await EmulatorHost.run(config: cfg, basePort: basePort, portsFile: portsFile, stateDirectory: stateDir) { rt in
            Banner.emulator(rt)
        }
    }
}
