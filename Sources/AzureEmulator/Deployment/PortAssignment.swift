extension EmulatorConfig {
    /// Gives every port of 0 a real one: consecutive from `base` when given, otherwise
    /// free ports picked by the system, so two deployments can run side by side.
    public mutating func resolvePorts(base: Int?) throws {
        var zeros = servers.reduce(0) { $0 + $1.nodes.filter { $0.port == 0 }.count }
        if httpPort == 0 { zeros += 1 }
        var pool: [Int]
        if let base {
            pool = Array(base..<(base + zeros))
        } else {
            pool = try FreePorts.take(zeros, host: host)
        }
        if httpPort == 0 { httpPort = pool.removeFirst() }
        for s in servers.indices {
            for n in servers[s].nodes.indices where servers[s].nodes[n].port == 0 {
                servers[s].nodes[n].port = pool.removeFirst()
            }
        }
    }
}
