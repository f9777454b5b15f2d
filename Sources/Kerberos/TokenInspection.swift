// Looks at a client's first SSPI token before the GSS library sees it, for the one thing
// the library cannot tell us clearly: "this client wants NTLM". MIT has no NTLM mechanism
// here, so it would only answer "defective token" or "no supported mechanism"; people
// deserve the real reason. Only structure is read; the bytes are never kept or logged.

enum FirstToken: Equatable {
    /// A raw NTLMSSP message ("NTLMSSP\0"), i.e. the client skipped SPNEGO and Kerberos.
    case ntlmssp
    /// A GSS initial-context token for SPNEGO; `mechs` is the NegTokenInit's mechTypes
    /// when they could be read.
    case spnego(mechs: [[UInt8]]?)
    /// A GSS initial-context token for krb5 (raw AP-REQ framing).
    case krb5
    case other
}

enum TokenInspection {
    static func inspect(_ token: [UInt8]) -> FirstToken {
        if token.starts(with: Array("NTLMSSP".utf8) + [0]) { return .ntlmssp }
        var r = DERReader(token[...])
        // InitialContextToken ::= [APPLICATION 0] IMPLICIT SEQUENCE { thisMech OID, innerToken }
        guard let outer = r.read(tag: 0x60) else { return .other }
        var inner = DERReader(outer)
        guard let oid = inner.read(tag: 0x06) else { return .other }
        let oidBytes = Array(oid)
        if oidBytes == OIDBytes.krb5 || oidBytes == OIDBytes.msKrb5 {
            // RFC 4121: TOK_ID 01 00 then the AP-REQ ([APPLICATION 14]). MIT reports a
            // garbled one only as "unspecified failure", so check the shape here.
            return inner.rest.starts(with: [0x01, 0x00, 0x6e]) ? .krb5 : .other
        }
        guard oidBytes == OIDBytes.spnego else { return .other }
        return .spnego(mechs: negTokenInitMechs(inner.rest))
    }

    /// NegotiationToken ::= CHOICE { negTokenInit [0] NegTokenInit, ... };
    /// NegTokenInit ::= SEQUENCE { mechTypes [0] SEQUENCE OF OID, ... }
    static func negTokenInitMechs(_ bytes: ArraySlice<UInt8>) -> [[UInt8]]? {
        var r = DERReader(bytes)
        guard let choice = r.read(tag: 0xa0) else { return nil }
        var c = DERReader(choice)
        guard let seq = c.read(tag: 0x30) else { return nil }
        var s = DERReader(seq)
        guard let mt = s.read(tag: 0xa0) else { return nil }
        var m = DERReader(mt)
        guard let list = m.read(tag: 0x30) else { return nil }
        var l = DERReader(list)
        var mechs: [[UInt8]] = []
        while !l.atEnd {
            guard let oid = l.read(tag: 0x06) else { return nil }
            mechs.append(Array(oid))
        }
        return mechs
    }

    /// True when a SPNEGO offer names NTLM and no Kerberos flavour at all.
    static func offersOnlyNTLM(_ mechs: [[UInt8]]) -> Bool {
        let kerberos = [OIDBytes.krb5, OIDBytes.msKrb5, OIDBytes.iakerb]
        return mechs.contains(OIDBytes.ntlm) && !mechs.contains(where: { kerberos.contains($0) })
    }
}

/// Minimal DER reader: definite lengths only, never trusts a length past the input.
struct DERReader {
    private var bytes: ArraySlice<UInt8>

    init(_ bytes: ArraySlice<UInt8>) { self.bytes = bytes }

    var atEnd: Bool { bytes.isEmpty }
    var rest: ArraySlice<UInt8> { bytes }

    mutating func read(tag: UInt8) -> ArraySlice<UInt8>? {
        var b = bytes
        guard let t = b.popFirst(), t == tag, let first = b.popFirst() else { return nil }
        var length = 0
        if first < 0x80 {
            length = Int(first)
        } else {
            let n = Int(first & 0x7f)
            guard n >= 1, n <= 4, b.count >= n else { return nil }
            for _ in 0..<n { length = length << 8 | Int(b.removeFirst()) }
        }
        guard length <= b.count else { return nil }
        let value = b.prefix(length)
        bytes = b.dropFirst(length)
        return value
    }
}
