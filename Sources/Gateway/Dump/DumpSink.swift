import NIOCore
import PacketDump
import Spool
import Synchronization

/// Counters the writer thread keeps for `GET /v1/dump` and /metrics.
final class DumpSinkStats: Sendable {
    let sessions = Atomic<Int>(0)
    /// File writes refused by the disk cap or failed.
    let fileRejections = Atomic<Int>(0)
    let gaps = Atomic<Int>(0)
}

/// The dump's writer-thread side: turns `DumpEvent`s into text files, pcapng files and the
/// follow stream. Redaction happens here, before anything is written (`DumpStreamDecoder`
/// and `DumpCaptureRecorder` redact every message that may carry a secret).
/// Used only on the `SpoolWriter`'s thread.
final class DumpSink: SpoolSink {
    /// Longest login-phase text held back until the session header is known.
    static let maxHeldText = 1 << 20

    private final class Headers {
        var text: [String: [UInt8]] = [:]
        let pcapng = PcapngWriter().fileHeader()
    }

    private final class Session {
        let id: Int
        let flags: DumpEvent.Flags
        var header: DumpSessionHeader
        let textKey: String?
        let pcapKey: String?
        let perDumpPcap: Bool
        var headerWritten = false
        var held: [UInt8] = []
        var decoders: [String: DumpStreamDecoder] = [:]
        var clientLeg: DumpCaptureRecorder?
        var backendLeg: DumpCaptureRecorder?
        var backendAddresses: String?
        var closed = false
        var last: UInt64

        init(id: Int, flags: DumpEvent.Flags, header: DumpSessionHeader, textKey: String?, pcapKey: String?, perDumpPcap: Bool, at: UInt64) {
            self.id = id
            self.flags = flags
            self.header = header
            self.textKey = textKey
            self.pcapKey = pcapKey
            self.perDumpPcap = perDumpPcap
            self.last = at
        }

        var options: DumpTextOptions { DumpTextOptions(hex: flags.contains(.hex), maskLiterals: flags.contains(.maskLiterals)) }
    }

    private let files: RotatingFileSink?
    private let headers: Headers
    let ring: DumpFollowRing
    let stats: DumpSinkStats
    let runStamp: String
    private var sessions: [String: Session] = [:]

    init(directory: String?, maxFileBytes: Int, maxTotalBytes: Int, keepRotated: Int, ring: DumpFollowRing,
         stats: DumpSinkStats, runStamp: String) throws {
        let headers = Headers()
        self.headers = headers
        self.ring = ring
        self.stats = stats
        self.runStamp = runStamp
        if let directory {
            files = try RotatingFileSink(directory: directory, maxFileBytes: maxFileBytes, maxTotalBytes: maxTotalBytes,
                                         keepRotated: keepRotated, maxOpenFiles: 128,
                                         header: { key in key.hasSuffix(".pcapng") ? headers.pcapng : headers.text[key] ?? [] })
        } else {
            files = nil
        }
    }

    static func sessionKey(_ id: Int) -> String { "s\(id)" }
    static func dumpKey(_ generation: Int) -> String { "g\(generation)" }

    func perDumpPcapName(_ generation: Int) -> String { "dump-\(runStamp)-\(generation).pcapng" }

    // MARK: SpoolSink

    func write(key: String, bytes: [UInt8]) throws {
        guard !bytes.isEmpty, let event = DumpEvent.decode(bytes) else { return }
        if case .open(let id, let generation, let client, let flags, let at) = event {
            open(key: key, id: id, generation: generation, client: client, flags: flags, at: at)
            return
        }
        guard let s = sessions[key] else { return }
        switch event {
        case .open:
            break
        case .packet(let direction, let sid, let at, let addresses, let packet):
            s.last = at
            self.packet(s, direction: direction, sid: sid, at: at, addresses: addresses, packet: packet)
        case .identified(let fields, let at):
            s.last = at
            func field(_ name: String) -> String? {
                guard let i = DumpEvent.identityFields.firstIndex(of: name), i < fields.count, !fields[i].isEmpty else { return nil }
                return fields[i]
            }
            s.header.principal = field("principal")
            s.header.authMethod = field("auth_method")
            s.header.cluster = field("cluster")
            s.header.endpoint = field("endpoint")
            s.header.intent = field("intent")
            s.header.database = field("database")
            s.header.backendIdentity = field("backend_identity")
            writeHeader(s)
        case .note(let text, let at):
            s.last = at
            emit(s, "[\(DumpTimestamp(nanosecondsSinceEpoch: at))] note: \(text)\n")
        case .closed(let at):
            s.last = at
            finish(s, reason: "session closed")
        }
    }

    func close(key: String) throws {
        if key.hasPrefix("g"), let g = Int(key.dropFirst()) {
            try? files?.close(key: perDumpPcapName(g))
            return
        }
        guard let s = sessions.removeValue(forKey: key) else { return }
        finish(s, reason: "session closed")
        if let k = s.textKey { try? files?.close(key: k) }
        if let k = s.pcapKey, !s.perDumpPcap { try? files?.close(key: k) }
        headers.text[s.textKey ?? ""] = nil
    }

    func gap(key: String, droppedRecords: Int, droppedBytes: Int) throws {
        guard let s = sessions[key] else { return }
        stats.gaps.add(1, ordering: .relaxed)
        // Messages in progress lost packets: start decoding afresh at the next packet.
        s.decoders = [:]
        emit(s, "[\(DumpTimestamp(nanosecondsSinceEpoch: s.last))] GAP: \(droppedRecords) record(s), \(droppedBytes) byte(s) "
            + "not dumped here (dump queue full; the relay was not slowed)\n")
    }

    func shutdown() {
        for (_, s) in sessions { finish(s, reason: "tdsgate stopped") }
        sessions = [:]
        files?.shutdown()
    }

    // MARK: events

    private func open(key: String, id: Int, generation: Int, client: String, flags: DumpEvent.Flags, at: UInt64) {
        if let old = sessions.removeValue(forKey: key) { finish(old, reason: "dump restarted") }
        let parts = client.split(separator: " ")
        let clientAddress = parts.count == 2 ? DumpSocketAddress(String(parts[0]), port: UInt16(parts[1]) ?? 0) : nil
        let perDump = flags.contains(.pcapngPerDump)
        let textKey = files != nil && flags.contains(.text) ? "session-\(runStamp)-\(id).txt" : nil
        let pcapKey = files != nil && flags.contains(.pcapng)
            ? (perDump ? perDumpPcapName(generation) : "session-\(runStamp)-\(id).pcapng") : nil
        let header = DumpSessionHeader(sessionID: String(id), clientAddress: clientAddress,
                                       startTime: DumpTimestamp(nanosecondsSinceEpoch: at))
        sessions[key] = Session(id: id, flags: flags, header: header, textKey: textKey, pcapKey: pcapKey, perDumpPcap: perDump, at: at)
        stats.sessions.add(1, ordering: .relaxed)
    }

    private func packet(_ s: Session, direction: DumpDirection, sid: UInt16?, at: UInt64, addresses: String, packet: ArraySlice<UInt8>) {
        let time = DumpTimestamp(nanosecondsSinceEpoch: at)
        let buffer = ByteBuffer(bytes: packet)
        if direction.leg == .backend, addresses != s.backendAddresses {
            // A new backend connection (first login attempt, retry or redirect).
            if let pcapKey = s.pcapKey, var old = s.backendLeg {
                writeFile(pcapKey, old.close(leg: .backend, at: time))
                s.backendLeg = nil
            }
            s.backendAddresses = addresses
            let (local, remote) = Self.addresses(addresses)
            emit(s, "[\(time)] backend connection: proxy \(local) -> backend \(remote)\n")
        }
        if let pcapKey = s.pcapKey {
            let (local, remote) = Self.addresses(addresses)
            let zero = DumpSocketAddress(ipv4: 0, 0, 0, 0, port: 0)
            if direction.leg == .client {
                if s.clientLeg == nil {
                    s.clientLeg = DumpCaptureRecorder(endpoints: DumpEndpoints(client: remote, proxyListen: local,
                                                                               proxyBackendLocal: zero, backend: zero))
                }
                writeFile(pcapKey, s.clientLeg!.record(packet: buffer, direction: direction, at: time))
            } else {
                if s.backendLeg == nil {
                    s.backendLeg = DumpCaptureRecorder(endpoints: DumpEndpoints(client: zero, proxyListen: zero,
                                                                                proxyBackendLocal: local, backend: remote))
                }
                writeFile(pcapKey, s.backendLeg!.record(packet: buffer, direction: direction, at: time))
            }
        }
        let decoderKey = "\(direction.rawValue)/\(sid.map(String.init) ?? "-")"
        var decoder = s.decoders.removeValue(forKey: decoderKey) ?? {
            var d = DumpStreamDecoder(direction: direction, options: s.options)
            if let sid { d.label = "\(direction) [MARS sid \(sid)]" }
            return d
        }()
        let blocks = decoder.feed(packet: buffer, at: time)
        s.decoders[decoderKey] = decoder
        for b in blocks { emit(s, b) }
    }

    private func finish(_ s: Session, reason: String) {
        guard !s.closed else { return }
        s.closed = true
        for key in s.decoders.keys.sorted() {
            for b in s.decoders[key]!.finish() { emit(s, b) }
        }
        s.decoders = [:]
        let time = DumpTimestamp(nanosecondsSinceEpoch: s.last)
        if let pcapKey = s.pcapKey {
            if var c = s.clientLeg { writeFile(pcapKey, c.close(leg: .client, at: time)) }
            if var b = s.backendLeg { writeFile(pcapKey, b.close(leg: .backend, at: time)) }
            s.clientLeg = nil
            s.backendLeg = nil
        }
        if !s.headerWritten { writeHeader(s, note: "login did not complete; principal unknown") }
        emit(s, "[\(time)] \(reason)\n")
    }

    private func writeHeader(_ s: Session, note: String? = nil) {
        guard !s.headerWritten else { return }
        s.headerWritten = true
        var text = s.header.rendered()
        if text.hasSuffix("\n\n") { text.removeLast() }
        var extra: [String] = []
        if s.flags.contains(.maskLiterals) { extra.append("# literals: masked") }
        if let note { extra.append("# note: \(note)") }
        text += extra.map { $0 + "\n" }.joined() + "\n"
        if let k = s.textKey {
            headers.text[k] = Array(text.utf8)
            // The header goes in through the file sink's header provider (and again after a rotation).
            writeFile(k, s.held, allowEmpty: true)
        }
        ring.append(text, prefix: "[s\(s.id)] ")
        if !s.held.isEmpty { ring.append(String(decoding: s.held, as: UTF8.self), prefix: "[s\(s.id)] ") }
        s.held = []
    }

    private func emit(_ s: Session, _ text: String) {
        guard s.headerWritten else {
            s.held += text.utf8
            if s.held.count > Self.maxHeldText { writeHeader(s, note: "login-phase output exceeded 1 MiB; header written early") }
            return
        }
        if let k = s.textKey { writeFile(k, Array(text.utf8)) }
        ring.append(text, prefix: "[s\(s.id)] ")
    }

    private func writeFile(_ key: String, _ bytes: [UInt8], allowEmpty: Bool = false) {
        guard let files, !bytes.isEmpty || allowEmpty else { return }
        do {
            try files.write(key: key, bytes: bytes)
        } catch {
            stats.fileRejections.add(1, ordering: .relaxed)
        }
    }

    /// "local-ip local-port|remote-ip remote-port".
    static func addresses(_ text: String) -> (local: DumpSocketAddress, remote: DumpSocketAddress) {
        let zero = DumpSocketAddress(ipv4: 0, 0, 0, 0, port: 0)
        let halves = text.split(separator: "|", omittingEmptySubsequences: false)
        func parse(_ s: Substring?) -> DumpSocketAddress {
            guard let s else { return zero }
            let p = s.split(separator: " ")
            guard p.count == 2 else { return zero }
            return DumpSocketAddress(String(p[0]), port: UInt16(p[1]) ?? 0) ?? zero
        }
        return (parse(halves.first), parse(halves.count > 1 ? halves[1] : nil))
    }
}
