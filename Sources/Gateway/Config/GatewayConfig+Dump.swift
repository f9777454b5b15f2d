import Yams

// MARK: dump

extension ConfigReader {
    static let dumpKeys = ["directory", "enabled", "format", "pcapng_files", "hex", "mask_literals", "filter",
                           "max_file_bytes", "max_total_bytes", "keep_rotated", "queue_bytes", "follow_lines"]

    func parseDump(_ node: Node) -> DumpConfig? {
        guard let m = map(node, at: "dump", keys: Self.dumpKeys) else { return nil }
        var dump = DumpConfig()
        if let dir = string(m, "directory") {
            if dir.isEmpty { report(m.path("directory"), "must not be empty") } else {
                dump.directory = ConfigFiles.absolute(dir, relativeTo: baseDirectory)
            }
        }
        dump.enabled = bool(m, "enabled") ?? true
        var settings = DumpSettings()
        if let formats = stringList(m, "format") {
            settings.formats = []
            for f in formats {
                if let format = choice(f.value, at: f.path, as: DumpSettings.Format.self), !settings.formats.contains(format) {
                    settings.formats.append(format)
                }
            }
            if formats.isEmpty { report(m.path("format"), "must name at least one of text, pcapng") }
        }
        if let node = m["pcapng_files"], let v = choice(node, at: m.path("pcapng_files"), as: DumpSettings.PcapngFiles.self) {
            settings.pcapngFiles = v
        }
        settings.hex = bool(m, "hex") ?? false
        settings.maskLiterals = bool(m, "mask_literals") ?? false
        if let node = m["filter"], let f = map(node, at: m.path("filter"), keys: ["principal", "client", "cluster", "database"]) {
            settings.filter = DumpFilter(principal: string(f, "principal"), client: string(f, "client"),
                                         cluster: string(f, "cluster"), database: string(f, "database"))
            if let client = settings.filter.client, let problem = DumpFilter.clientProblem(client) {
                report(f.path("client"), problem)
            }
        }
        dump.settings = settings
        dump.maxFileBytes = int(m, "max_file_bytes", default: dump.maxFileBytes, range: 4096...(1 << 50))
        dump.maxTotalBytes = int(m, "max_total_bytes", default: dump.maxTotalBytes, range: 4096...(1 << 52))
        if dump.maxTotalBytes < dump.maxFileBytes {
            report(m.path("max_total_bytes"), "must be at least max_file_bytes (\(dump.maxFileBytes))")
        }
        dump.keepRotated = int(m, "keep_rotated", default: dump.keepRotated, range: 0...1000)
        dump.queueBytes = int(m, "queue_bytes", default: dump.queueBytes, range: 65_536...(1 << 34))
        dump.followLines = int(m, "follow_lines", default: dump.followLines, range: 0...10_000_000)
        if dump.directory == nil, settings.formats.contains(.pcapng) || m.has("max_file_bytes") {
            report(m.path("directory"), "is required to write files (without it the dump only feeds tdsgate dump --follow)")
        }
        return dump
    }
}
