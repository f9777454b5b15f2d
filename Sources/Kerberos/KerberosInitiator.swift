import CGSSAPI

/// The client side, for tests (tdsgate's own and the proxy's): produces the tokens a
/// driver would put in LOGIN7 / SSPI packets, from a ticket cache filled by `kinit`.
/// Not thread-safe; one per simulated login.
public final class KerberosInitiator {
    public enum Mechanism: Sendable { case krb5, spnego }

    public struct Failure: Error, Sendable, CustomStringConvertible {
        public let message: String
        public let majorStatus: UInt32
        public let minorStatus: UInt32
        public var description: String { message }
    }

    private let credential: GSSCredential
    private let target: GSSName
    private let mechanism: Mechanism
    private let flags: OM_uint32
    private let context = GSSContext()
    /// True once the context is established on the client side.
    public private(set) var isComplete = false

    /// - Parameters:
    ///   - service: "MSSQLSvc@localhost" (host-based form) or "MSSQLSvc/localhost:1433"
    ///     (a principal name; the default realm is added when it has none).
    ///   - ccache: e.g. "FILE:/tmp/cc"; nil = the default ticket cache (KRB5CCNAME).
    ///   - mutual: ask for mutual authentication (the acceptor then returns an AP-REP).
    public init(service: String, mechanism: Mechanism = .spnego, ccache: String? = nil, mutual: Bool = true) throws(Failure) {
        guard cgss_available() != 0 else {
            throw Failure(message: cgss_load_error().map { String(cString: $0) } ?? "GSS-API unavailable", majorStatus: 0, minorStatus: 0)
        }
        var minor: OM_uint32 = 0
        var cred: OpaquePointer?
        var major = cgss_acquire_initiator_cred(&minor, ccache, &cred)
        guard !isGSSError(major) else { throw Self.failure("acquiring the client credential", major, minor) }
        credential = GSSCredential(handle: cred)

        let nameType = service.contains("/") ? cgss_oid_nt_krb5_principal() : cgss_oid_nt_hostbased_service()
        var name: OpaquePointer?
        major = cgss_import_name(&minor, service, nameType, &name)
        guard !isGSSError(major) else { throw Self.failure("importing the service name", major, minor) }
        target = GSSName(handle: name)
        self.mechanism = mechanism
        flags = mutual ? CGSS_C_MUTUAL_FLAG : 0
    }

    /// The next token to send; `input` is the server's previous reply (nil at first).
    /// Returns an empty array when the context completed without anything left to send.
    public func step(_ input: [UInt8]? = nil) throws(Failure) -> [UInt8] {
        var minor: OM_uint32 = 0
        var output = cgss_buffer_desc(length: 0, value: nil)
        let mech = mechanism == .krb5 ? cgss_oid_mech_krb5() : cgss_oid_mech_spnego()
        let bytes = input ?? []
        let major = bytes.withUnsafeBytes { raw -> OM_uint32 in
            var buf = cgss_buffer_desc(length: raw.count, value: UnsafeMutableRawPointer(mutating: raw.baseAddress))
            return withUnsafePointer(to: &buf) { inputPtr in
                cgss_init_sec_context(&minor, credential.handle, &context.handle, target.handle, mech, flags,
                                      input == nil ? nil : inputPtr, nil, &output, nil)
            }
        }
        let token = takeBuffer(&output)
        guard !isGSSError(major) else { throw Self.failure("gss_init_sec_context", major, minor) }
        isComplete = major & CGSS_S_CONTINUE_NEEDED == 0
        return token
    }

    private static func failure(_ what: String, _ major: OM_uint32, _ minor: OM_uint32) -> Failure {
        Failure(message: "\(what): \(gssStatusText(major: major, minor: minor))", majorStatus: major, minorStatus: minor)
    }
}
