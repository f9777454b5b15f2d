"""MARS client: two cursors with interleaved active result sets on one ODBC connection
(pyodbc or mssql-python, ODBC Driver 18 with MARS_Connection=yes), a transaction spanning
both, and the same work done one statement at a time for comparison.

Spec: odbc_client.py's keys plus {"rows": N, "table": "name", "interleave": bool}.
With "interleave": cursor 1 opens SELECT * FROM tdsgate.rows(N) and fetches 5 rows, cursor
2 then runs its statements (which needs MARS), then cursor 1 finishes. Without it every
statement is fetched to the end before the next one (works without MARS).
Result: {"connected", "connect_error", "steps": {...}, "error": ERR|null}
"""

import json
import os
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402
from odbc_client import connect as odbc_connect  # noqa: E402

SQL_COPT_SS_MARS_ENABLED = 1224


def connect(spec: dict):
    # mssql-python validates connection-string keywords and has no MARS_Connection; the
    # ODBC attribute SQL_COPT_SS_MARS_ENABLED set before connecting is the other way in.
    if spec.get("mars_attr") and spec["lib"] == "mssql-python":
        import mssql_python

        return mssql_python.connect(spec["conn_str"], autocommit=spec.get("autocommit", True),
                                    timeout=spec.get("login_timeout", 10),
                                    attrs_before={SQL_COPT_SS_MARS_ENABLED: 1})
    return odbc_connect(spec)


def rows(cur):
    return [[common.plain(v) for v in r] for r in cur.fetchall()]


def scenario(conn, spec: dict) -> dict:
    n = spec["rows"]
    table = spec["table"]
    steps: dict = {}
    setup = conn.cursor()
    setup.execute(f"CREATE TABLE {table} (k NVARCHAR(64) NOT NULL PRIMARY KEY, v NVARCHAR(256) NULL)")
    conn.commit()

    big = conn.cursor()
    other = conn.cursor()
    big.execute(f"SELECT * FROM tdsgate.rows({n})")
    head = [[common.plain(v) for v in r] for r in big.fetchmany(5)]
    if not spec.get("interleave"):
        head += rows(big)
    # Cursor 2 works while cursor 1's result is still open (MARS), inside the transaction
    # (autocommit off) that cursor 1's statement started.
    other.execute(f"INSERT INTO {table} (k, v) VALUES (?, ?)", ("mars", "both"))
    steps["insert_rowcount"] = other.rowcount
    other.execute(f"SELECT v FROM {table} WHERE k = ?", ("mars",))
    steps["other_select"] = rows(other)
    other.execute("SELECT @@TRANCOUNT, SUSER_SNAME(), DB_NAME()")
    steps["session"] = rows(other)
    rest = rows(big) if spec.get("interleave") else []
    all_rows = head + rest
    steps["big_count"] = len(all_rows)
    steps["big_first"] = all_rows[:3]
    steps["big_last"] = all_rows[-1:]
    steps["big_id_sum"] = sum(int(r[0]) for r in all_rows)
    # The row inserted on cursor 2 is visible on cursor 1: one transaction.
    big.execute(f"SELECT v FROM {table} WHERE k = ?", ("mars",))
    steps["big_sees_insert"] = rows(big)
    conn.rollback()
    other.execute(f"SELECT COUNT(*) FROM {table}")
    steps["after_rollback"] = rows(other)
    conn.commit()
    return steps


def main() -> None:
    spec = json.loads(sys.argv[1])
    out = {"connected": False, "connect_error": None, "steps": None, "error": None}
    try:
        conn = connect(spec)
    except BaseException as e:  # noqa: BLE001
        out["connect_error"] = common.error_info(e)
    else:
        out["connected"] = True
        try:
            out["steps"] = scenario(conn, spec)
        except BaseException as e:  # noqa: BLE001
            out["error"] = common.error_info(e)
            out["traceback"] = traceback.format_exc()
        try:
            conn.close()
        except BaseException:  # noqa: BLE001
            pass
    sys.stdout.write("INTEROP-RESULT " + json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
