"""Shared bits of the driver client scripts (run in their own process by interop.py).

A client script reads one JSON spec from argv[1], connects with a real driver, runs the
queries, and prints one line "INTEROP-RESULT {json}" on stdout:

  {"connected": bool, "connect_error": ERR|null, "connect_seconds": float,
   "results": [ {"rows": [[...], ...]} | {"rowcount": n} | {"error": ERR} ], "closed": bool}

  ERR = {"type": "OperationalError", "message": "...", "numbers": [18456, ...]}

Spec keys every client understands: "queries": list of {"sql": str, "params": list|null},
"commit": bool (commit after the queries), "autocommit": bool.
"""

from __future__ import annotations

import datetime
import decimal
import json
import re
import sys
import time
import traceback
import uuid
from typing import Any, Callable

_NUM_PATTERNS = [
    re.compile(r"\((\d{3,6})\)"),                      # pyodbc: "... (18456) (SQLDriverConnect)"
    re.compile(r"\bMsg\s+(\d{3,6})\b"),                 # tsql / FreeTDS
    re.compile(r"\b[Ee]rror(?:\s+number)?[:\s]+(\d{3,6})\b"),
    re.compile(r"\bNativeError[=:\s]+(\d{3,6})\b"),
]


def error_info(exc: BaseException) -> dict[str, Any]:
    # pytds retries errors it deems transient (40613, 40501, ...) until its login timeout
    # and then raises a bare TimeoutError from the last one: report that one.
    cause = exc.__cause__
    if isinstance(exc, TimeoutError) and cause is not None:
        info = error_info(cause)
        info["message"] = f"{type(exc).__name__} after: {info['message']}"
        return info
    numbers: list[int] = []
    for attr in ("number", "msg_no", "native_error"):
        v = getattr(exc, attr, None)
        if isinstance(v, int) and v not in numbers:
            numbers.append(v)
    texts = [str(exc)]
    for a in getattr(exc, "args", ()):
        if isinstance(a, int) and a > 0 and a not in numbers:
            numbers.append(a)
        elif isinstance(a, tuple):
            for x in a:
                if isinstance(x, int) and x > 0 and x not in numbers:
                    numbers.append(x)
                elif isinstance(x, bytes):
                    texts.append(x.decode("utf-8", "replace"))
        elif isinstance(a, bytes):
            texts.append(a.decode("utf-8", "replace"))
    text = " ".join(texts)
    for pat in _NUM_PATTERNS:
        for m in pat.finditer(text):
            n = int(m.group(1))
            if n not in numbers:
                numbers.append(n)
    return {"type": type(exc).__name__, "message": text[:2000], "numbers": numbers}


def plain(v: Any) -> Any:
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, decimal.Decimal):
        return int(v) if v == int(v) else float(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    if isinstance(v, (datetime.date, datetime.time, datetime.datetime)):
        return v.isoformat()
    if isinstance(v, uuid.UUID):
        return str(v)
    return str(v)


def run(connect: Callable[[dict], Any], spec: dict, param_style: str = "qmark") -> dict:
    out: dict[str, Any] = {"connected": False, "connect_error": None, "results": [],
                           "closed": False}
    t0 = time.monotonic()
    try:
        conn = connect(spec)
    except BaseException as e:  # noqa: BLE001 - report everything
        out["connect_error"] = error_info(e)
        out["connect_seconds"] = round(time.monotonic() - t0, 3)
        return out
    out["connected"] = True
    out["connect_seconds"] = round(time.monotonic() - t0, 3)
    for q in spec.get("queries", []):
        sql = q["sql"]
        params = q.get("params")
        try:
            cur = conn.cursor()
            if params is None:
                cur.execute(sql)
            else:
                cur.execute(sql, tuple(params))
            if cur.description:
                rows = [[plain(v) for v in row] for row in cur.fetchall()]
                out["results"].append({"rows": rows})
            else:
                out["results"].append({"rowcount": cur.rowcount})
            try:
                cur.close()
            except Exception:  # noqa: BLE001
                pass
        except BaseException as e:  # noqa: BLE001
            out["results"].append({"error": error_info(e)})
    if spec.get("commit"):
        try:
            conn.commit()
            out["committed"] = True
        except BaseException as e:  # noqa: BLE001
            out["commit_error"] = error_info(e)
    try:
        conn.close()
        out["closed"] = True
    except BaseException as e:  # noqa: BLE001
        out["close_error"] = error_info(e)
    return out


def main(connect: Callable[[dict], Any]) -> None:
    spec = json.loads(sys.argv[1])
    try:
        result = run(connect, spec)
    except BaseException as e:  # noqa: BLE001
        result = {"connected": False, "connect_error": error_info(e),
                  "traceback": traceback.format_exc(), "results": []}
    sys.stdout.write("INTEROP-RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()
