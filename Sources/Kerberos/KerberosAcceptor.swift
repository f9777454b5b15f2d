import CGSSAPI
import Foundation
import Synchronization

/// The server side of Kerberos logins for one keytab. Create one per configured keytab and
/// share it between connections; each login gets its own `KerberosExchange`.
///
/// Thread-safe: the only mutable state is the cached credential, behind a `Mutex`. The
/// keytab is checked (device, inode, size, mtime) each time an exchange starts, and the
/// credential is re-acquired when the file changed, so a rotated keytab takes effect
/// without a restart. Exchanges already running keep the credential they started with.
public final class KerberosAcceptor: Sendable {
    public let config: KerberosAcceptorConfig
    private let cached = Mutex<(fingerprint: KeytabFingerprint, credential: GSSCredential)?>(nil)

    public init(config: KerberosAcceptorConfig) {
        self.config = config
    }

    /// Starts the exchange for one login. Never fails here: problems (library missing,
    /// keytab unreadable) come back from the exchange's first `step` as a refusal, so the
    /// login path has one place to handle them.
    public func startExchange() -> KerberosExchange {
        switch currentCredential() {
        case .success(let credential): return KerberosExchange(config: config, credential: credential)
        case .failure(let refusal): return KerberosExchange(config: config, failure: refusal)
        }
    }

    /// Loads the library and acquires the keytab credential now, for a startup check
    /// (`check-config`) that should fail early rather than at the first login.
    public func preflight() throws(KerberosRefusal) {
        if case .failure(let refusal) = currentCredential() { throw refusal }
    }

    private func currentCredential() -> Result<GSSCredential, KerberosRefusal> {
        guard cgss_available() != 0 else {
            let why = cgss_load_error().map { String(cString: $0) }
            return .failure(KerberosRefusal(code: .libraryUnavailable, detail: why))
        }
        let path = config.keytabPath
        let fingerprint: KeytabFingerprint
        switch KeytabFingerprint.read(path) {
        case .success(let f): fingerprint = f
        case .failure(let refusal): return .failure(refusal)
        }
        // Held across the acquisition so two first logins do not both read the keytab.
        return cached.withLock { slot -> Result<GSSCredential, KerberosRefusal> in
            if let slot, slot.fingerprint == fingerprint { return .success(slot.credential) }
            var minor: OM_uint32 = 0
            var handle: OpaquePointer?
            let major = cgss_acquire_acceptor_cred(&minor, path, config.replayCache, &handle)
            guard !isGSSError(major), handle != nil else {
                let text = gssStatusText(major: major, minor: minor)
                return .failure(KerberosRefusal(
                    code: .keytabUnavailable,
                    message: "tdsgate's Kerberos keytab \(path) cannot be used (empty or not a keytab?)",
                    detail: text, majorStatus: major, minorStatus: minor))
            }
            let credential = GSSCredential(handle: handle)
            slot = (fingerprint, credential)
            return .success(credential)
        }
    }
}

/// Identifies one version of the keytab file without reading it.
struct KeytabFingerprint: Equatable {
    var device: UInt64
    var inode: UInt64
    var size: Int64
    var mtimeSeconds: Int
    var mtimeNanoseconds: Int

    static func read(_ path: String) -> Result<KeytabFingerprint, KerberosRefusal> {
        var st = stat()
        if stat(path, &st) != 0 || access(path, R_OK) != 0 {
            let why = String(cString: strerror(errno))
            return .failure(KerberosRefusal(
                code: .keytabUnavailable,
                message: "tdsgate's Kerberos keytab \(path) is missing or unreadable: \(why)"))
        }
        guard (st.st_mode & S_IFMT) == S_IFREG, st.st_size > 0 else {
            return .failure(KerberosRefusal(
                code: .keytabUnavailable,
                message: "tdsgate's Kerberos keytab \(path) is empty or not a regular file"))
        }
        #if canImport(Darwin)
        let mtime = st.st_mtimespec
        #else
        let mtime = st.st_mtim
        #endif
        return .success(KeytabFingerprint(
            device: UInt64(st.st_dev), inode: UInt64(st.st_ino), size: Int64(st.st_size),
            mtimeSeconds: Int(mtime.tv_sec), mtimeNanoseconds: Int(mtime.tv_nsec)))
    }
}
