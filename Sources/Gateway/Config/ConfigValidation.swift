import Identity

// The validation pass: rules that span fields, items and sections, checked on the typed
// configuration the structural pass built (with `ConfigPlaces` saying where each item is).
// A rule is skipped where a value it needs was already refused, so one mistake is not
// reported twice.

extension ConfigReader {
    func validate(_ config: GatewayConfig, places: ConfigPlaces) {
        checkReferences(config)
        checkListeners(config, places: places.listeners)
        for (cluster, place) in zip(config.clusters, places.clusters) {
            checkCluster(cluster, place: place)
        }
        for (identity, place) in zip(config.backendIdentities, places.backendIdentities) {
            checkBackendIdentity(identity.spec, place: place)
        }
        for (rule, place) in zip(config.policy, places.policy) {
            checkPolicyDatabases(rule.rule, place: place, clusters: config.clusters)
        }
        if let admin = config.admin, let place = places.admin {
            checkAdmin(admin, place: place, listeners: config.listeners, listenerPlaces: places.listeners)
        }
    }

    /// Whether a problem was reported at `path` or below it.
    func hasProblem(at path: String) -> Bool {
        problems.contains { $0.path == path || $0.path.hasPrefix(path + ".") || $0.path.hasPrefix(path + "[") }
    }

    // MARK: references

    func checkReferences(_ config: GatewayConfig) {
        let clusters = Set(config.clusters.map(\.name).filter { !$0.isEmpty })
        let identities = Set(config.backendIdentities.map(\.name).filter { !$0.isEmpty })
        let logins = Set(loginNames.keys)
        for reference in references {
            let known: Set<String>
            let key: String
            switch reference.kind {
            case .cluster: (known, key) = (clusters, reference.name)
            case .backendIdentity: (known, key) = (identities, reference.name)
            case .login: (known, key) = (logins, reference.name.lowercased())
            }
            guard !known.contains(key) else { continue }
            let what = reference.kind.rawValue
            if known.isEmpty {
                report(reference.path, "unknown \(what) '\(Self.clip(reference.name))' (none is defined)")
            } else {
                report(reference.path, Self.unknownValue(reference.name, among: known.sorted(), what: what))
            }
        }
    }

    // MARK: listeners

    func checkListeners(_ config: GatewayConfig, places: [ConfigItemPlace]) {
        var binds: [(address: String, port: Int, path: String)] = []
        for (listener, place) in zip(config.listeners, places) {
            if listener.tls == nil, !place.has("tls") {
                let needing = ClientEncryption.allCases.filter { listener.clientEncryption.contains($0) && $0.needsTLS }
                if !needing.isEmpty {
                    if place.has("client_encryption") {
                        let list = needing.map(\.rawValue).joined(separator: ", ")
                        report(place.key("client_encryption"), "\(list) need\(needing.count == 1 ? "s" : "") a certificate: add \(place.key("tls")) or allow only plaintext")
                    } else {
                        report(place.key("tls"), "is required: client_encryption defaults to [required, strict], which need a certificate (set client_encryption: [plaintext] for a listener without TLS)")
                    }
                }
            }
            if listener.cluster == nil, config.clusters.count > 1 {
                report(place.key("cluster"), "is required when there is more than one cluster (without it every login on this listener is refused)")
            }
            if let total = listener.maxConnections {
                for (key, value) in [("max_connections_per_source", listener.maxConnectionsPerSource), ("max_pending_logins", listener.maxPendingLogins)] {
                    if let value, value > total { report(place.key(key), "must not exceed max_connections (\(total)), found \(value)") }
                }
            }
            if listener.port != 0, !hasProblem(at: place.key("port")), !hasProblem(at: place.key("address")) {
                if let clash = binds.first(where: { $0.port == listener.port && Self.addressesOverlap($0.address, listener.address) }) {
                    report(place.key("port"), "address and port already used by \(clash.path)")
                }
                binds.append((listener.address, listener.port, place.path))
            }
        }
    }

    static func addressesOverlap(_ a: String, _ b: String) -> Bool {
        a.lowercased() == b.lowercased() || ConfigValues.isWildcard(a) || ConfigValues.isWildcard(b)
    }

    // MARK: clusters

    func checkCluster(_ cluster: ClusterConfig, place: ConfigPlaces.Cluster) {
        var names: [String: String] = [:]
        var targets: [String: String] = [:]
        for (endpoint, endpointPlace) in zip(cluster.endpoints, place.endpoints) where !endpoint.host.isEmpty {
            let target = "\(endpoint.host.lowercased()):\(endpoint.port)"
            if let first = targets[target] {
                report(endpointPlace.path, "same host and port as \(first)")
            } else {
                targets[target] = endpointPlace.path
            }
            if let first = names[endpoint.name] {
                let note = endpointPlace.has("name") ? "" : " (the default name is the host; add a name)"
                report(endpointPlace.key("name"), "duplicate endpoint name '\(endpoint.name)' (also \(first))\(note)")
            } else {
                names[endpoint.name] = endpointPlace.path
            }
        }
        let endpointNames = cluster.endpoints.map(\.name)
        for rulePlace in place.routing {
            for replica in rulePlace.lists["replicas"] ?? [] where !endpointNames.contains(replica.value) {
                report(replica.path, "no endpoint named '\(Self.clip(replica.value))' in this cluster (endpoints: \(endpointNames.joined(separator: ", ")))")
            }
        }
        if let pool = cluster.pool, let poolPlace = place.pool {
            if pool.mode == .transaction {
                // Refused rather than quietly run as session mode: the two share backends differently.
                report(poolPlace.key("mode"), "transaction mode is not available in this version of tdsgate; use mode: session")
            }
            if pool.minIdle > pool.maxBackendConnections, !hasProblem(at: poolPlace.key("max_backend_connections")) {
                report(poolPlace.key("min_idle"), "must not exceed max_backend_connections (\(pool.maxBackendConnections)), found \(pool.minIdle)")
            }
            if pool.idleTimeoutSeconds > pool.maxLifetimeSeconds, !hasProblem(at: poolPlace.key("max_lifetime_s")) {
                report(poolPlace.key("idle_timeout_s"), "must not exceed max_lifetime_s (\(pool.maxLifetimeSeconds)): a connection is retired before it could time out idle")
            }
        }
    }

    // MARK: backend identities

    /// Keys each kind uses besides name, kind and resource.
    static let identityKeysByKind: [BackendIdentityKind: Set<String>] = [
        .imds: ["endpoint", "client_id", "object_id", "resource_id"],
        .appService: ["endpoint", "client_id", "object_id", "resource_id"],
        .arc: ["endpoint"],
        .workloadIdentity: ["client_id", "tenant_id", "authority_host", "token_file"],
        .servicePrincipal: ["client_id", "tenant_id", "authority_host", "client_secret", "client_secret_file", "certificate_file", "private_key_file"],
        .staticFile: ["token_file"],
        .auto: Set(identityKeys),
    ]

    func checkBackendIdentity(_ spec: BackendIdentitySpec, place: ConfigItemPlace) {
        // A missing or unknown kind is already reported; which keys fit cannot be told.
        guard place.has("kind"), !hasProblem(at: place.key("kind")) else { return }
        let kind = spec.kind
        let used = Self.identityKeysByKind[kind] ?? []
        for key in Self.identityKeys where place.has(key) && !["name", "kind", "resource"].contains(key) && !used.contains(key) {
            report(place.key(key), "is not used by kind \(kind.rawValue) (it uses: \(Self.identityKeys.filter { used.contains($0) }.joined(separator: ", ")))")
        }
        let selectors = ["client_id", "object_id", "resource_id"].filter { place.has($0) }
        if selectors.count > 1, [.imds, .appService, .auto].contains(kind) {
            report(place.path, "give at most one of client_id, object_id, resource_id (found \(selectors.joined(separator: ", ")))")
        }
        if kind == .servicePrincipal {
            for key in ["tenant_id", "client_id"] where !place.has(key) {
                report(place.key(key), "is required for kind service_principal")
            }
            let credentials = ["client_secret_file", "client_secret", "certificate_file"].filter { place.has($0) }
            if credentials.isEmpty {
                report(place.path, "kind service_principal needs one of client_secret_file, client_secret, certificate_file")
            } else if credentials.count > 1 {
                report(place.path, "give only one of client_secret_file, client_secret, certificate_file (found \(credentials.joined(separator: ", ")))")
            }
        }
        if place.has("private_key_file") && !place.has("certificate_file") {
            report(place.key("private_key_file"), "is used only with certificate_file")
        }
        if kind == .staticFile && !place.has("token_file") {
            report(place.key("token_file"), "is required for kind static_file")
        }
    }

    // MARK: policy

    /// A database that no cluster of the rule serves can never be reached.
    func checkPolicyDatabases(_ rule: PolicyRule, place: ConfigItemPlace, clusters: [ClusterConfig]) {
        let ruleClusters = rule.clusters.contains("*") ? clusters : clusters.filter { rule.clusters.contains($0.name) }
        guard !ruleClusters.isEmpty, ruleClusters.allSatisfy({ !$0.databases.isEmpty }) else { return }
        for (database, path) in place.lists["databases"] ?? [] where database != "*" {
            let served = ruleClusters.contains { $0.databases.contains { $0.lowercased() == database.lowercased() } }
            if !served {
                report(path, "database '\(Self.clip(database))' is not in the databases of cluster \(ruleClusters.map(\.name).joined(separator: ", "))")
            }
        }
    }

    // MARK: admin

    func checkAdmin(_ admin: AdminConfig, place: ConfigItemPlace, listeners: [ListenerConfig], listenerPlaces: [ConfigItemPlace]) {
        if !place.has("bearer_token_file"), !ConfigValues.isLoopback(admin.address), !hasProblem(at: place.key("address")) {
            report(place.key("bearer_token_file"), "is required when admin.address is not a loopback address")
        }
        guard admin.port != 0, !hasProblem(at: place.key("port")) else { return }
        for (listener, listenerPlace) in zip(listeners, listenerPlaces)
        where listener.port == admin.port && Self.addressesOverlap(listener.address, admin.address) && !hasProblem(at: listenerPlace.key("port")) {
            report(place.key("port"), "address and port already used by \(listenerPlace.path)")
            return
        }
    }
}
