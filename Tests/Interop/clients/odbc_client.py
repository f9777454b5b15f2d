"""ODBC client: mssql-python (either native provider) or pyodbc with a given driver .so.

Spec: {"lib": "mssql-python" | "pyodbc", "conn_str": "...", "driver_path": "/x.so" (pyodbc),
       "token": "<jwt>" (optional, SQL_COPT_SS_ACCESS_TOKEN), "login_timeout": 10,
       "query_timeout": 10, "autocommit": true, "queries": [...], "commit": false}
The Rust-based core is selected by MSSQL_PYTHON_NATIVE_PROVIDER in this process's env.
"""

import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

SQL_COPT_SS_ACCESS_TOKEN = 1256


def connect(spec: dict):
    kw = {}
    if spec.get("token"):
        t = spec["token"].encode("utf-16-le")
        kw["attrs_before"] = {SQL_COPT_SS_ACCESS_TOKEN: struct.pack("<I", len(t)) + t}
    autocommit = spec.get("autocommit", True)
    login_timeout = spec.get("login_timeout", 10)
    if spec["lib"] == "mssql-python":
        import mssql_python

        conn = mssql_python.connect(spec["conn_str"], autocommit=autocommit,
                                    timeout=login_timeout, **kw)
    else:
        import pyodbc

        cs = "Driver={%s};%s" % (spec["driver_path"], spec["conn_str"])
        conn = pyodbc.connect(cs, autocommit=autocommit, timeout=login_timeout, **kw)
    try:
        conn.timeout = spec.get("query_timeout", 10)
    except Exception:  # noqa: BLE001 - best effort
        pass
    return conn


if __name__ == "__main__":
    common.main(connect)
