import Foundation
import Kerberos
import Testing

/// The test realm (Tests/Interop/tools/kdc.py), started once per test process.
///
/// KRB5_CONFIG must be in the environment before MIT reads its profile, and it is process
/// global, so it is set once here under a lock; ticket caches are NOT taken from the
/// environment (every initiator names its ccache through gss_acquire_cred_from).
final class TestRealm: @unchecked Sendable {
    // @unchecked: immutable after init, which runs once under `lock`.
    static let realm = "TDSGATE.TEST"
    static let servicePort = 14333

    let dir: String
    let keytab: String
    let ccaches: [String: String]

    private static let lock = NSLock()
    nonisolated(unsafe) private static var instance: Result<TestRealm, RealmError>?
    nonisolated(unsafe) private static var startedDir: String?

    struct RealmError: Error, CustomStringConvertible {
        let description: String
    }

    static var repoRoot: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    static var script: String { repoRoot.appendingPathComponent("Tests/Interop/tools/kdc.py").path }

    static func shared() throws -> TestRealm {
        lock.lock()
        defer { lock.unlock() }
        if instance == nil {
            do { instance = .success(try TestRealm()) } catch { instance = .failure(error) }
        }
        return try instance!.get()
    }

    private init() throws(RealmError) {
        guard FileManager.default.isExecutableFile(atPath: "/usr/sbin/krb5kdc") else {
            throw RealmError(description: "krb5kdc is missing: apt-get install -y krb5-kdc krb5-admin-server krb5-user")
        }
        dir = NSTemporaryDirectory() + "tdsgate-krb-\(getpid())"
        try? FileManager.default.removeItem(atPath: dir)
        let out = try Self.kdc(["up", "--dir", dir, "--service-port", "\(Self.servicePort)"])
        guard let json = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [String: Any],
              let config = json["krb5_config"] as? String, let keytab = json["keytab"] as? String,
              let users = json["users"] as? [String: [String: String]]
        else { throw RealmError(description: "kdc.py up printed no usable JSON: \(out)") }
        setenv("KRB5_CONFIG", config, 1)
        self.keytab = keytab
        self.ccaches = users.compactMapValues { $0["ccache"] }
        Self.startedDir = dir
        atexit {
            if let dir = TestRealm.startedDir { _ = try? TestRealm.kdc(["down", "--dir", dir]) }
        }
    }

    func ccache(_ user: String) -> String { ccaches[user] ?? "FILE:\(dir)/ccache-\(user)" }

    /// Runs kdc.py with the given arguments; returns stdout, throws with stderr.
    @discardableResult
    static func kdc(_ args: [String]) throws(RealmError) -> String {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        p.arguments = [script] + args
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch { throw RealmError(description: "cannot run python3 \(script): \(error)") }
        let o = out.fileHandleForReading.readDataToEndOfFile()
        let e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else {
            throw RealmError(description: "kdc.py \(args.first ?? "") failed: \(String(decoding: e, as: UTF8.self))")
        }
        return String(decoding: o, as: UTF8.self)
    }

    @discardableResult
    func kdc(_ args: [String]) throws -> String {
        try Self.kdc([args[0], "--dir", dir] + args.dropFirst())
    }

    func path(_ name: String) -> String { "\(dir)/\(name)" }
}

// MARK: - helpers shared by the tests

func acceptor(
    keytab: String, realms: KerberosRealmPolicy = .only([TestRealm.realm]),
    rules: [KerberosNameRule]? = nil, maxSteps: Int = 5
) throws -> KerberosAcceptor {
    let rules = try rules ?? [KerberosNameRule(realm: TestRealm.realm, output: .user, lowercase: true)]
    return KerberosAcceptor(config: KerberosAcceptorConfig(
        keytabPath: keytab, acceptedRealms: realms, nameRules: rules, replayCache: nil, maxSteps: maxSteps))
}

/// Drives a full login: client token -> acceptor -> reply -> client ..., like the proxy's
/// LOGIN7 SSPI + SSPI (0x11) / SSPI (0xED) loop. Returns the final step and the legs used.
func login(
    _ acceptor: KerberosAcceptor, service: String, mechanism: KerberosInitiator.Mechanism, ccache: String
) throws -> (KerberosStep, legs: Int) {
    let client = try KerberosInitiator(service: service, mechanism: mechanism, ccache: ccache)
    var exchange = acceptor.startExchange()
    var token = try client.step()
    var legs = 0
    while true {
        legs += 1
        let step = exchange.step(token)
        switch step {
        case .continueNeeded(let reply):
            token = try client.step(reply)
        case .accepted(_, let reply):
            if let reply { _ = try client.step(reply) }
            #expect(client.isComplete, "client did not complete mutual authentication")
            return (step, legs)
        case .refused:
            return (step, legs)
        }
    }
}

func refusal(_ step: KerberosStep) -> KerberosRefusal? {
    if case .refused(let r) = step { return r }
    return nil
}

func identity(_ step: KerberosStep) -> KerberosIdentity? {
    if case .accepted(let id, _) = step { return id }
    return nil
}

/// DER TLV with definite length.
func der(_ tag: UInt8, _ content: [UInt8]) -> [UInt8] {
    let n = content.count
    let len: [UInt8]
    if n < 0x80 {
        len = [UInt8(n)]
    } else if n < 0x100 {
        len = [0x81, UInt8(n)]
    } else {
        len = [0x82, UInt8(n >> 8), UInt8(n & 0xff)]
    }
    return [tag] + len + content
}

enum OID {
    static let spnego: [UInt8] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x02]
    static let krb5: [UInt8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02]
    static let ntlm: [UInt8] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a]
}

/// SPNEGO NegTokenInit offering `mechs`, optionally with an optimistic mech token.
func negTokenInit(mechs: [[UInt8]], mechToken: [UInt8]? = nil) -> [UInt8] {
    var fields = der(0xa0, der(0x30, mechs.flatMap { der(0x06, $0) }))
    if let mechToken { fields += der(0xa2, der(0x04, mechToken)) }
    return der(0x60, der(0x06, OID.spnego) + der(0xa0, der(0x30, fields)))
}

/// SPNEGO NegTokenResp carrying a mech token (the initiator's second leg).
func negTokenResp(responseToken: [UInt8]) -> [UInt8] {
    der(0xa1, der(0x30, der(0xa2, der(0x04, responseToken))))
}
