import CGSSAPI

// Small owned wrappers around GSS-API handles and buffers, so every handle is released
// exactly once (in deinit) and no token bytes outlive the call that needed them.

/// Copies a library-allocated buffer into Swift and releases it.
func takeBuffer(_ buffer: inout cgss_buffer_desc) -> [UInt8] {
    defer {
        var minor: OM_uint32 = 0
        if buffer.value != nil { _ = cgss_release_buffer(&minor, &buffer) }
    }
    guard buffer.length > 0, let value = buffer.value else { return [] }
    return Array(UnsafeRawBufferPointer(start: value, count: buffer.length))
}

func takeString(_ buffer: inout cgss_buffer_desc) -> String {
    String(decoding: takeBuffer(&buffer), as: UTF8.self)
}

/// Both halves of a GSS status (routine error, then the mechanism's words), for logs.
func gssStatusText(major: OM_uint32, minor: OM_uint32) -> String {
    var parts: [String] = []
    for (value, type) in [(major, Int32(CGSS_C_GSS_CODE)), (minor, Int32(CGSS_C_MECH_CODE))] {
        if type == Int32(CGSS_C_MECH_CODE) && value == 0 { continue }
        var context: OM_uint32 = 0
        repeat {
            var m: OM_uint32 = 0
            var buf = cgss_buffer_desc(length: 0, value: nil)
            let st = cgss_display_status(&m, value, type, nil, &context, &buf)
            if st != CGSS_S_COMPLETE { break }
            let text = takeString(&buf)
            if !text.isEmpty { parts.append(text) }
        } while context != 0
    }
    return parts.joined(separator: ": ")
}

func isGSSError(_ major: OM_uint32) -> Bool { (major & 0xFFFF_0000) != 0 }

/// DER bodies of the OIDs tdsgate looks at.
enum OIDBytes {
    static let krb5: [UInt8] = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x12, 0x01, 0x02, 0x02]
    /// Microsoft's mis-encoded krb5 OID (1.2.840.48018.1.2.2), which Windows clients offer first.
    static let msKrb5: [UInt8] = [0x2a, 0x86, 0x48, 0x82, 0xf7, 0x12, 0x01, 0x02, 0x02]
    static let iakerb: [UInt8] = [0x2b, 0x06, 0x01, 0x05, 0x02, 0x05]
    static let spnego: [UInt8] = [0x2b, 0x06, 0x01, 0x05, 0x05, 0x02]
    /// 1.3.6.1.4.1.311.2.2.10
    static let ntlm: [UInt8] = [0x2b, 0x06, 0x01, 0x04, 0x01, 0x82, 0x37, 0x02, 0x02, 0x0a]

    static func bytes(_ oid: UnsafePointer<cgss_OID_desc>?) -> [UInt8]? {
        guard let oid, let elements = oid.pointee.elements else { return nil }
        return Array(UnsafeRawBufferPointer(start: elements, count: Int(oid.pointee.length)))
    }
}

/// An acquired credential. Shared by the acceptor (while the keytab is unchanged) and by
/// the exchanges started with it, so a keytab reload never frees a handle in use.
final class GSSCredential: @unchecked Sendable {
    // @unchecked: the handle is written once in init; MIT locks its credential internally,
    // so concurrent gss_accept_sec_context calls on one credential are safe.
    let handle: OpaquePointer?

    init(handle: OpaquePointer?) { self.handle = handle }

    deinit {
        var minor: OM_uint32 = 0
        var h = handle
        if h != nil { _ = cgss_release_cred(&minor, &h) }
    }
}

/// A security context in progress; deleted when the exchange is dropped or finishes.
final class GSSContext {
    var handle: OpaquePointer?

    func delete() {
        var minor: OM_uint32 = 0
        if handle != nil { _ = cgss_delete_sec_context(&minor, &handle) }
        handle = nil
    }

    deinit { delete() }
}

/// An imported GSS name.
final class GSSName {
    var handle: OpaquePointer?

    init(handle: OpaquePointer?) { self.handle = handle }

    var displayString: String? {
        guard handle != nil else { return nil }
        var minor: OM_uint32 = 0
        var buf = cgss_buffer_desc(length: 0, value: nil)
        guard cgss_display_name(&minor, handle, &buf) == CGSS_S_COMPLETE else { return nil }
        return takeString(&buf)
    }

    deinit {
        var minor: OM_uint32 = 0
        if handle != nil { _ = cgss_release_name(&minor, &handle) }
    }
}
