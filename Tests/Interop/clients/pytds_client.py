"""python-tds (pytds) client.

Spec: {"server": "localhost", "port": 11001, "user": ..., "password": ..., "database": ...,
       "token": "<jwt>" (uses access_token_callable), "cafile": "/ca.pem",
       "enc_login_only": false, "validate_host": true, "readonly": false,
       "login_timeout": 10, "query_timeout": 10, "autocommit": true, "queries": [...]}
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402


def connect(spec: dict):
    import pytds

    kw = {}
    if spec.get("token"):
        token = spec["token"]
        kw["access_token_callable"] = lambda: token
    else:
        kw["user"] = spec["user"]
        kw["password"] = spec["password"]
    if spec.get("cafile"):
        kw["cafile"] = spec["cafile"]
        kw["validate_host"] = spec.get("validate_host", True)
        kw["enc_login_only"] = spec.get("enc_login_only", False)
    if spec.get("readonly"):
        kw["readonly"] = True
    return pytds.connect(dsn=spec["server"], port=int(spec["port"]),
                         database=spec.get("database"), appname="tdsgate-interop",
                         login_timeout=spec.get("login_timeout", 10),
                         timeout=spec.get("query_timeout", 10),
                         autocommit=spec.get("autocommit", True),
                         disable_connect_retry=True, **kw)


if __name__ == "__main__":
    common.main(connect)
