import ArgumentParser

@main
struct TDSGateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tdsgate",
        abstract: "An Azure SQL-aware TDS proxy, with an emulated Azure SQL deployment for tests and demos.",
        subcommands: [DemoCommand.self, DrillCommand.self, EmulateCommand.self, RunCommand.self, StatusCommand.self, HashPasswordCommand.self, CheckConfigCommand.self, BenchCommand.self, DumpCommand.self]
    )
}
