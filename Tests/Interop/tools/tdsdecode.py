"""Small, independent TDS decoder for client->server packets.

Used by capture_server.py to compute the fields in Fixtures/index.json and by the
interop tests to read fixture files. It deliberately shares no code with the Swift
implementation: it is a second opinion written from MS-TDS.
"""

from __future__ import annotations

import struct
from typing import Any

PACKET_TYPES = {
    0x01: "sql_batch",
    0x02: "pre_tds7_login",
    0x03: "rpc",
    0x04: "tabular_result",
    0x06: "attention",
    0x07: "bulk_load",
    0x08: "fedauth_token",
    0x0E: "transaction_manager",
    0x10: "login7",
    0x11: "sspi",
    0x12: "prelogin",
}

PRELOGIN_OPTIONS = {
    0x00: "version",
    0x01: "encryption",
    0x02: "instopt",
    0x03: "threadid",
    0x04: "mars",
    0x05: "traceid",
    0x06: "fedauthrequired",
    0x07: "nonceopt",
}

ENCRYPTION_NAMES = {0x00: "off", 0x01: "on", 0x02: "not_sup", 0x03: "req"}

FEATURE_NAMES = {
    0x01: "SESSIONRECOVERY",
    0x02: "FEDAUTH",
    0x04: "COLUMNENCRYPTION",
    0x05: "GLOBALTRANSACTIONS",
    0x08: "AZURESQLSUPPORT",
    0x09: "DATACLASSIFICATION",
    0x0A: "UTF8_SUPPORT",
    0x0B: "AZURESQLDNSCACHING",
    0x0D: "JSONSUPPORT",
    0x0E: "VECTORSUPPORT",
    0x0F: "ENHANCEDROUTING",
    0x10: "USERAGENT",
}

RPC_PROC_IDS = {
    1: "sp_cursor",
    2: "sp_cursoropen",
    3: "sp_cursorprepare",
    4: "sp_cursorexecute",
    5: "sp_cursorprepexec",
    6: "sp_cursorunprepare",
    7: "sp_cursorfetch",
    8: "sp_cursoroption",
    9: "sp_cursorclose",
    10: "sp_executesql",
    11: "sp_prepare",
    12: "sp_execute",
    13: "sp_prepexec",
    14: "sp_prepexecrpc",
    15: "sp_unprepare",
}

TM_REQUESTS = {
    0: "TM_GET_DTC_ADDRESS",
    1: "TM_PROPAGATE_XACT",
    5: "TM_BEGIN_XACT",
    6: "TM_PROMOTE_XACT",
    7: "TM_COMMIT_XACT",
    8: "TM_ROLLBACK_XACT",
    9: "TM_SAVE_XACT",
}

ISOLATION_LEVELS = {
    0: "no_change",
    1: "read_uncommitted",
    2: "read_committed",
    3: "repeatable_read",
    4: "serializable",
    5: "snapshot",
}


# --------------------------------------------------------------------------------------
# Packets and messages
# --------------------------------------------------------------------------------------

def split_packets(stream: bytes) -> list[bytes]:
    """Split a byte stream into whole TDS packets (by the big-endian length field)."""
    out = []
    pos = 0
    while pos + 8 <= len(stream):
        length = struct.unpack_from(">H", stream, pos + 2)[0]
        if length < 8 or pos + length > len(stream):
            raise ValueError(f"bad packet length {length} at {pos}")
        out.append(stream[pos : pos + length])
        pos += length
    if pos != len(stream):
        raise ValueError("trailing bytes after last packet")
    return out


def header(packet: bytes) -> dict[str, int]:
    ptype, status, length, spid, pid, window = struct.unpack_from(">BBHHBB", packet, 0)
    return {"type": ptype, "status": status, "length": length, "spid": spid,
            "packet_id": pid, "window": window}


def reassemble(packets: list[bytes]) -> list[dict[str, Any]]:
    """Group packets into messages: payloads concatenated up to the EOM packet.

    Returns dicts with type (int), payload (bytes), packet_count, first_packet (index),
    status (status byte of the first packet).
    """
    messages = []
    current = None
    for i, pkt in enumerate(packets):
        h = header(pkt)
        if current is None:
            current = {"type": h["type"], "payload": b"", "packet_count": 0,
                       "first_packet": i, "status": h["status"]}
        elif h["type"] != current["type"]:
            # A new message type before EOM: close what we had (should not happen).
            current["incomplete"] = True
            messages.append(current)
            current = {"type": h["type"], "payload": b"", "packet_count": 0,
                       "first_packet": i, "status": h["status"]}
        current["payload"] += pkt[8:]
        current["packet_count"] += 1
        if h["status"] & 0x01:
            messages.append(current)
            current = None
    if current is not None:
        current["incomplete"] = True
        messages.append(current)
    return messages


# --------------------------------------------------------------------------------------
# PRELOGIN
# --------------------------------------------------------------------------------------

def parse_prelogin_options(payload: bytes) -> list[tuple[int, bytes]]:
    opts = []
    pos = 0
    while pos < len(payload) and payload[pos] != 0xFF:
        token = payload[pos]
        off, ln = struct.unpack_from(">HH", payload, pos + 1)
        opts.append((token, payload[off : off + ln]))
        pos += 5
    return opts


def decode_prelogin(payload: bytes) -> dict[str, Any]:
    if payload[:1] == b"\x16":
        return {"tls_record": True}
    fields: dict[str, Any] = {"option_order": []}
    for token, data in parse_prelogin_options(payload):
        name = PRELOGIN_OPTIONS.get(token, f"0x{token:02x}")
        fields["option_order"].append(name)
        if token == 0x00 and len(data) >= 6:
            major, minor, build, sub = struct.unpack(">BBHH", data[:6])
            fields["version"] = f"{major}.{minor}.{build}.{sub}"
        elif token == 0x01 and data:
            fields["encryption"] = f"0x{data[0]:02x}"
            fields["encryption_name"] = ENCRYPTION_NAMES.get(data[0] & 0x7F, "unknown") + (
                "+client_cert" if data[0] & 0x80 else "")
        elif token == 0x02:
            fields["instopt"] = data.rstrip(b"\x00").decode("latin-1")
        elif token == 0x03:
            fields["threadid"] = struct.unpack("<I", data)[0] if len(data) == 4 else None
        elif token == 0x04 and data:
            fields["mars"] = data[0]
        elif token == 0x05:
            fields["traceid_length"] = len(data)
        elif token == 0x06 and data:
            fields["fedauthrequired"] = data[0]
        elif token == 0x07:
            fields["nonce_length"] = len(data)
    return fields


# --------------------------------------------------------------------------------------
# LOGIN7
# --------------------------------------------------------------------------------------

def decode_password(raw: bytes) -> str:
    out = bytearray()
    for b in raw:
        b ^= 0xA5
        out.append(((b & 0x0F) << 4) | (b >> 4))
    return out.decode("utf-16-le", errors="replace")


def _guess_text(data: bytes) -> str | None:
    """USERAGENT data seen from ODBC 18 is UTF-16LE text ("1|MS-ODBC|18.6...")."""
    if len(data) >= 2 and len(data) % 2 == 0 and data[1::2].count(0) >= len(data) // 2 - 1:
        return data.decode("utf-16-le", errors="replace")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def decode_login7(payload: bytes, packet_count: int = 1) -> dict[str, Any]:
    (length, tds_version, packet_size, prog_ver, pid, conn_id, of1, of2, tf, of3, tz,
     lcid) = struct.unpack_from("<IIIIIIBBBBiI", payload, 0)
    pos = 36
    names = ["host_name", "user_name", "password", "app_name", "server_name",
             "extension", "client_interface", "language", "database"]
    offs = {}
    for n in names:
        offs[n] = struct.unpack_from("<HH", payload, pos)
        pos += 4
    client_id = payload[pos : pos + 6]
    pos += 6
    sspi_off, sspi_len = struct.unpack_from("<HH", payload, pos)
    pos += 4
    atch_off, atch_len = struct.unpack_from("<HH", payload, pos)
    pos += 4
    chg_off, chg_len = struct.unpack_from("<HH", payload, pos)
    pos += 4
    sspi_long = struct.unpack_from("<I", payload, pos)[0] if len(payload) >= pos + 4 else 0

    def s(name: str) -> str:
        off, ln = offs[name]
        return payload[off : off + 2 * ln].decode("utf-16-le", errors="replace")

    fields: dict[str, Any] = {
        "length": length,
        "tds_version": f"0x{tds_version:08x}",
        "packet_size": packet_size,
        "client_prog_ver": f"0x{prog_ver:08x}",
        "client_pid": pid,
        "option_flags1": f"0x{of1:02x}",
        "option_flags2": f"0x{of2:02x}",
        "type_flags": f"0x{tf:02x}",
        "option_flags3": f"0x{of3:02x}",
        "client_time_zone": tz,
        "lcid": f"0x{lcid:08x}",
        "integrated_security": bool(of2 & 0x80),
        "odbc_flag": bool(of2 & 0x02),
        "read_only_intent": bool(tf & 0x20),
        "host_name": s("host_name"),
        "user_name": s("user_name"),
        "password": decode_password(payload[offs["password"][0]:
                                            offs["password"][0] + 2 * offs["password"][1]]),
        "app_name": s("app_name"),
        "server_name": s("server_name"),
        "client_interface": s("client_interface"),
        "language": s("language"),
        "database": s("database"),
        "client_id": client_id.hex(),
        "sspi_length": sspi_len or sspi_long,
        "packet_count": packet_count,
        "message_length": len(payload),
    }
    feature_ids: list[int] = []
    features: list[dict[str, Any]] = []
    has_token = False
    if of3 & 0x10:
        ext_off, ext_len = offs["extension"]
        if ext_len >= 4:
            fe_off = struct.unpack_from("<I", payload, ext_off)[0]
            fields["feature_ext_offset"] = fe_off
            p = fe_off
            while p < len(payload) and payload[p] != 0xFF:
                fid = payload[p]
                flen = struct.unpack_from("<I", payload, p + 1)[0]
                data = payload[p + 5 : p + 5 + flen]
                feature_ids.append(fid)
                f: dict[str, Any] = {"id": fid, "name": FEATURE_NAMES.get(fid, f"0x{fid:02x}"),
                                     "length": flen}
                if fid == 0x02 and data:
                    opt = data[0]
                    f["library"] = opt >> 1
                    f["echo"] = opt & 0x01
                    if opt >> 1 == 0x01 and len(data) >= 5:
                        tlen = struct.unpack_from("<I", data, 1)[0]
                        f["token_length"] = tlen
                        f["nonce_present"] = len(data) > 5 + tlen
                        has_token = tlen > 0
                    elif opt >> 1 == 0x02 and len(data) >= 2:
                        f["workflow"] = data[1]
                elif fid == 0x10:
                    f["data_hex"] = data.hex()
                    f["text"] = _guess_text(data)
                elif flen <= 64:
                    f["data_hex"] = data.hex()
                features.append(f)
                p += 5 + flen
            fields["feature_ext_terminated"] = p < len(payload) and payload[p] == 0xFF
    fields["feature_ids"] = feature_ids
    fields["features"] = features
    fields["has_fedauth_token"] = has_token
    return fields


# --------------------------------------------------------------------------------------
# ALL_HEADERS, SQL batch, RPC, transaction manager
# --------------------------------------------------------------------------------------

def decode_all_headers(payload: bytes) -> tuple[dict[str, Any], int]:
    """Return (headers, offset after ALL_HEADERS). Tolerates their absence."""
    if len(payload) < 4:
        return {}, 0
    total = struct.unpack_from("<I", payload, 0)[0]
    if total < 4 or total > len(payload):
        return {}, 0
    out: dict[str, Any] = {}
    p = 4
    while p + 6 <= total:
        hlen, htype = struct.unpack_from("<IH", payload, p)
        data = payload[p + 6 : p + hlen]
        if htype == 2 and len(data) >= 12:
            out["transaction_descriptor"] = data[:8].hex()
            out["outstanding_requests"] = struct.unpack_from("<I", data, 8)[0]
        elif htype == 1:
            out["query_notifications"] = True
        elif htype == 3:
            out["trace_activity"] = True
        if hlen < 6:
            break
        p += hlen
    return out, total


def decode_sql_batch(payload: bytes) -> dict[str, Any]:
    headers, off = decode_all_headers(payload)
    text = payload[off:].decode("utf-16-le", errors="replace")
    return {"text": text, "headers": headers}


class _Reader:
    def __init__(self, data: bytes, pos: int = 0):
        self.d = data
        self.p = pos

    def u8(self) -> int:
        v = self.d[self.p]
        self.p += 1
        return v

    def u16(self) -> int:
        v = struct.unpack_from("<H", self.d, self.p)[0]
        self.p += 2
        return v

    def u32(self) -> int:
        v = struct.unpack_from("<I", self.d, self.p)[0]
        self.p += 4
        return v

    def take(self, n: int) -> bytes:
        v = self.d[self.p : self.p + n]
        if len(v) != n:
            raise ValueError("truncated")
        self.p += n
        return v

    def b_varchar(self) -> str:
        n = self.u8()
        return self.take(2 * n).decode("utf-16-le", errors="replace")


# type id -> (name, kind) where kind tells how TYPE_INFO and the value are laid out
_FIXED = {0x1F: ("null", 0), 0x30: ("tinyint", 1), 0x32: ("bit", 1), 0x34: ("smallint", 2),
          0x38: ("int", 4), 0x3A: ("smalldatetime", 4), 0x3B: ("real", 4),
          0x3C: ("money", 8), 0x3D: ("datetime", 8), 0x3E: ("float", 8),
          0x7A: ("smallmoney", 4), 0x7F: ("bigint", 8)}
_BYTELEN = {0x24: "uniqueidentifier", 0x26: "intn", 0x68: "bitn", 0x6D: "floatn",
            0x6E: "moneyn", 0x6F: "datetimen"}
_USHORTLEN_COLLATED = {0xA7: "varchar", 0xAF: "char", 0xE7: "nvarchar", 0xEF: "nchar"}
_USHORTLEN = {0xA5: "varbinary", 0xAD: "binary"}


def _read_plp(r: _Reader) -> bytes | None:
    total = struct.unpack_from("<Q", r.d, r.p)[0]
    r.p += 8
    if total == 0xFFFFFFFFFFFFFFFF:
        return None
    out = b""
    while True:
        n = r.u32()
        if n == 0:
            break
        out += r.take(n)
    return out


def _read_param_value(r: _Reader) -> tuple[str, Any]:
    t = r.u8()
    if t in _FIXED:
        name, n = _FIXED[t]
        raw = r.take(n)
        if t == 0x38:
            return name, struct.unpack("<i", raw)[0]
        if t == 0x7F:
            return name, struct.unpack("<q", raw)[0]
        return name, raw.hex()
    if t in _BYTELEN:
        maxlen = r.u8()
        n = r.u8()
        raw = r.take(n)
        name = _BYTELEN[t]
        if t == 0x26 and n in (1, 2, 4, 8):
            return f"{name}({maxlen})", int.from_bytes(raw, "little", signed=True)
        if t == 0x68 and n == 1:
            return f"{name}({maxlen})", bool(raw[0])
        if t == 0x6D and n in (4, 8):
            return f"{name}({maxlen})", struct.unpack("<f" if n == 4 else "<d", raw)[0]
        return f"{name}({maxlen})", raw.hex() if n else None
    if t in (0x6A, 0x6C):  # decimal/numeric
        maxlen = r.u8()
        prec = r.u8()
        scale = r.u8()
        n = r.u8()
        raw = r.take(n)
        return f"decimal({prec},{scale})", raw.hex() if n else None
    if t in _USHORTLEN_COLLATED:
        maxlen = r.u16()
        r.take(5)  # collation
        name = _USHORTLEN_COLLATED[t]
        if maxlen == 0xFFFF:
            raw = _read_plp(r)
            label = f"{name}(max)"
        else:
            n = r.u16()
            raw = None if n == 0xFFFF else r.take(n)
            label = f"{name}({maxlen if t in (0xA7, 0xAF) else maxlen // 2})"
        if raw is None:
            return label, None
        enc = "utf-16-le" if t in (0xE7, 0xEF) else "latin-1"
        return label, raw.decode(enc, errors="replace")
    if t in _USHORTLEN:
        maxlen = r.u16()
        if maxlen == 0xFFFF:
            raw = _read_plp(r)
        else:
            n = r.u16()
            raw = None if n == 0xFFFF else r.take(n)
        return _USHORTLEN[t], None if raw is None else raw.hex()
    if t == 0x28:  # date
        n = r.u8()
        return "date", r.take(n).hex()
    if t in (0x29, 0x2A, 0x2B):  # time, datetime2, datetimeoffset
        scale = r.u8()
        n = r.u8()
        return {0x29: "time", 0x2A: "datetime2", 0x2B: "datetimeoffset"}[t], r.take(n).hex()
    raise ValueError(f"unsupported type 0x{t:02x}")


def decode_rpc(payload: bytes) -> dict[str, Any]:
    headers, off = decode_all_headers(payload)
    r = _Reader(payload, off)
    fields: dict[str, Any] = {"headers": headers}
    n = r.u16()
    if n == 0xFFFF:
        pid = r.u16()
        fields["proc_id"] = pid
        fields["proc_id_name"] = RPC_PROC_IDS.get(pid, "?")
    else:
        fields["proc_name"] = r.take(2 * n).decode("utf-16-le", errors="replace")
    fields["option_flags"] = f"0x{r.u16():04x}"
    params = []
    try:
        while r.p < len(payload):
            if payload[r.p] in (0x80, 0xFF):  # batch separator (0x80 in 7.2+, 0xFF older)
                fields["batched"] = True
                break
            name = r.b_varchar()
            status = r.u8()
            tname, value = _read_param_value(r)
            params.append({"name": name, "output": bool(status & 0x01), "type": tname,
                           "value": value})
        fields["params"] = params
    except (ValueError, IndexError, struct.error) as e:
        fields["params"] = params
        fields["params_error"] = str(e)
    return fields


def decode_transaction_manager(payload: bytes) -> dict[str, Any]:
    headers, off = decode_all_headers(payload)
    r = _Reader(payload, off)
    req = r.u16()
    fields: dict[str, Any] = {"request_type": req, "request": TM_REQUESTS.get(req, "?"),
                              "headers": headers}
    try:
        if req == 5:  # begin
            iso = r.u8()
            fields["isolation_level"] = ISOLATION_LEVELS.get(iso, iso)
            fields["name"] = r.b_varchar()
        elif req in (7, 8):  # commit / rollback
            fields["name"] = r.b_varchar()
            flags = r.u8()
            fields["begin_new"] = bool(flags & 0x01)
            if flags & 0x01:
                iso = r.u8()
                fields["new_isolation_level"] = ISOLATION_LEVELS.get(iso, iso)
                fields["new_name"] = r.b_varchar()
        elif req == 9:
            fields["name"] = r.b_varchar()
        elif req in (0, 1, 6):
            fields["data_hex"] = payload[r.p :].hex()
    except (ValueError, IndexError, struct.error) as e:
        fields["error"] = str(e)
    return fields


def decode_message(msg: dict[str, Any]) -> dict[str, Any]:
    t = msg["type"]
    payload = msg["payload"]
    kind = PACKET_TYPES.get(t, f"0x{t:02x}")
    if t == 0x12:
        fields = decode_prelogin(payload)
        if fields.get("tls_record"):
            kind = "prelogin_tls"
    elif t == 0x10:
        fields = decode_login7(payload, msg["packet_count"])
    elif t == 0x01:
        fields = decode_sql_batch(payload)
    elif t == 0x03:
        fields = decode_rpc(payload)
    elif t == 0x0E:
        fields = decode_transaction_manager(payload)
    else:
        fields = {"payload_hex": payload.hex()}
    if msg.get("packet_count", 1) != 1 and "packet_count" not in fields:
        fields["packet_count"] = msg["packet_count"]
    if msg.get("status", 0) & 0x18:
        fields["reset_connection"] = True
    if msg.get("incomplete"):
        fields["incomplete"] = True
    return {"type": kind, "fields": fields}


def decode_packets(packets: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for i, msg in enumerate(reassemble(packets)):
        d = decode_message(msg)
        d = {"index": i, **d}
        out.append(d)
    return out


def read_fixture(path: str) -> tuple[list[str], list[bytes]]:
    """Read a Fixtures/*.hex file: (comment lines, packets)."""
    comments, packets = [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if line.startswith("#"):
                comments.append(line[1:].strip())
            else:
                packets.append(bytes.fromhex(line))
    return comments, packets
