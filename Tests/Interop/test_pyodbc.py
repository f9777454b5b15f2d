"""pyodbc loading an ODBC driver library by path (Driver=/full/path.so): Microsoft ODBC
Driver 18 from the mssql-python-odbc wheel, and the Rust-based mssqlodbc.so from
mssql-python-rs. pyodbc runs sp_datatype_info_100 at connect (SQLGetTypeInfo)."""

import pytest

import odbc_common as oc
from interop import identity_token_cases

LIB = "pyodbc"
PROVIDERS = ["msodbcsql18", "mssql-odbc"]
pytestmark = pytest.mark.parametrize("provider", PROVIDERS)


def test_encrypt_no_plaintext(deployment, provider):
    oc.check_plaintext(deployment, LIB, provider)


def test_encrypt_no_login_only_tls(deployment, provider):
    oc.check_login_only(deployment, LIB, provider)


def test_encrypt_yes_trusted_ca(deployment, provider):
    oc.check_encrypt_yes(deployment, LIB, provider)


def test_encrypt_strict_trusted_ca(deployment, provider):
    oc.check_strict_ca(deployment, LIB, provider)


def test_encrypt_strict_server_certificate(deployment, provider, tmp_path):
    oc.check_strict_server_certificate(deployment, LIB, provider, tmp_path)


def test_access_token_from_imds(deployment, provider, imds_token):
    oc.check_access_token(deployment, LIB, provider, imds_token,
                          identity_token_cases(deployment))


def test_read_only_intent_lands_on_secondary(deployment, provider):
    oc.check_read_only_intent(deployment, LIB, provider, numbers=True)


def test_wrong_password_login_failed(deployment, provider):
    oc.check_wrong_password(deployment, LIB, provider, numbers=True)


def test_key_value_table(deployment, provider):
    oc.check_key_value(deployment, LIB, provider)
