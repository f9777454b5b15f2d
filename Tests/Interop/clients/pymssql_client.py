"""pymssql client (bundled FreeTDS 1.5). FREETDSCONF in the env points at a generated
freetds.conf whose [global] section carries encryption / ca file settings.

Spec: {"server": "localhost", "port": 11001, "user": ..., "password": ..., "database": ...,
       "encryption": null | "off" | "request" | "require", "read_only": false,
       "login_timeout": 10, "query_timeout": 10, "autocommit": true, "queries": [...]}
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def connect(spec: dict):
    import pymssql

    kw = {}
    if spec.get("encryption"):
        kw["encryption"] = spec["encryption"]
    if spec.get("read_only"):
        kw["read_only"] = True
    return pymssql.connect(server=spec["server"], port=str(spec["port"]), user=spec["user"],
                           password=spec["password"], database=spec.get("database") or "",
                           appname="tdsgate-interop", login_timeout=spec.get("login_timeout", 10),
                           timeout=spec.get("query_timeout", 10),
                           autocommit=spec.get("autocommit", True), **kw)


if __name__ == "__main__":
    common.main(connect)
