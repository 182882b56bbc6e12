"""T-SQL error classification from real pyodbc error objects (needs the unixODBC driver manager).

pyodbc formats each diagnostic record as "[SQLSTATE] message (native) (SQLFunction)" and appends
further records as "; [SQLSTATE] message (native)" (mkey/pyodbc src/errors.cpp, GetErrorFromHandle):
the native error number is the parenthesised integer at the end of a record, never digits that
happen to appear inside the message text.
"""

from __future__ import annotations

import os

import pytest

from shared.sql_dialect import TSQL_TRANSIENT_NUMBERS, TSQLDialect, odbc_state_and_numbers

try:
    import pyodbc
except ImportError as exc:  # pyodbc loads libodbc.so.2 (Debian: unixodbc) when imported
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(f"pyodbc needs the ODBC driver manager (apt-get install unixodbc): {exc}", allow_module_level=True)

MS = "[Microsoft][ODBC Driver 18 for SQL Server]"


@pytest.mark.parametrize(
    ("error", "transient", "unique"),
    [
        (pyodbc.OperationalError("08S01", f"[08S01] {MS}TCP Provider: Error code 0x2746 (10054) (SQLExecDirectW)"),
         True, False),
        (pyodbc.Error("40001", f"[40001] {MS}[SQL Server]Transaction (Process ID 52) was deadlocked on lock"
                               " resources with another process and has been chosen as the deadlock victim."
                               " Rerun the transaction. (1205) (SQLExecDirectW)"), True, False),
        (pyodbc.ProgrammingError("42000", f"[42000] {MS}[SQL Server]Resource ID : 1. The request limit for the"
                                          " database is 30 and has been reached. (10928) (SQLExecDirectW)"),
         True, False),
        (pyodbc.OperationalError("HYT00", f"[HYT00] {MS}Query timeout expired (0) (SQLExecDirectW)"), True, False),
        (pyodbc.Error("HY000", f"[HY000] {MS}[SQL Server]The service has encountered an error processing your"
                               " request. Please try again. (40540) (SQLExecDirectW)"), True, False),
        (pyodbc.Error("HY000", f"[HY000] {MS}[SQL Server]The instance of the SQL Server Database Engine cannot"
                               " obtain a LOCK resource at this time. (1204) (SQLExecDirectW)"), True, False),
        # Error 40613 arrives as the second record of a failed login.
        (pyodbc.InterfaceError("42000", f"[42000] {MS}[SQL Server]Login failed. (18456) (SQLDriverConnect);"
                                        f" [42000] {MS}[SQL Server]Database 'imgpipe' on server 'x' is not"
                                        " currently available. (40613)"), True, False),
        (pyodbc.IntegrityError("23000", f"[23000] {MS}[SQL Server]Violation of PRIMARY KEY constraint"
                                        " 'PK_webhook_deliveries'. Cannot insert duplicate key in object"
                                        " 'dbo.webhook_deliveries'. The duplicate key value is (abc, 1)."
                                        " (2627) (SQLExecDirectW)"), False, True),
        # A duplicate key whose value holds a transient-looking number is still a duplicate key.
        (pyodbc.IntegrityError("23000", f"[23000] {MS}[SQL Server]Cannot insert duplicate key row in object"
                                        " 'dbo.requests' with unique index 'UX_requests_idempotency_key'."
                                        " The duplicate key value is (40613). (2601) (SQLExecDirectW)"),
         False, True),
        (pyodbc.ProgrammingError("42S02", f"[42S02] {MS}[SQL Server]Invalid object name 'x'. (208)"
                                          " (SQLExecDirectW)"), False, False),
        (pyodbc.DataError("22001", f"[22001] {MS}[SQL Server]String or binary data would be truncated in"
                                   " table 'imgpipe.dbo.products', column 'name'. (2628) (SQLExecDirectW)"),
         False, False),
    ],
)  # fmt: skip
def test_tsql_error_classification(error: Exception, transient: bool, unique: bool) -> None:
    dialect = TSQLDialect()
    assert dialect.is_transient(error) is transient
    assert dialect.is_unique_violation(error) is unique


def test_digits_in_message_text_are_not_error_numbers() -> None:
    error = pyodbc.IntegrityError(
        "23000", f"[23000] {MS}[SQL Server]The duplicate key value is (40613). (2601) (SQLExecDirectW)"
    )
    assert odbc_state_and_numbers(error) == ("23000", frozenset({2601}))


def test_numbers_of_a_real_driver_error() -> None:
    """A real error raised by pyodbc through a real ODBC driver (SQLite's, which ends its own message
    text with "(1)" as well), so the format above is the driver manager's and pyodbc's, not ours."""
    connection = pyodbc.connect("Driver=SQLite3;Database=:memory:", autocommit=True)
    try:
        with pytest.raises(pyodbc.Error) as caught:
            connection.execute("SELECT * FROM no_such_table")
    finally:
        connection.close()
    state, numbers = odbc_state_and_numbers(caught.value)
    assert state == "HY000" and numbers == frozenset({1})
    assert not TSQLDialect().is_transient(caught.value)


def test_a_real_refused_connection_is_transient() -> None:
    """FreeTDS refusing a loopback port nobody listens on: SQLSTATE 08S01, native 20009."""
    with pytest.raises(pyodbc.Error) as caught:
        pyodbc.connect("Driver=FreeTDS;Server=127.0.0.1;Port=9;TDS_Version=7.4;UID=x;PWD=y", timeout=3)
    assert odbc_state_and_numbers(caught.value)[0] == "08S01"
    assert TSQLDialect().is_transient(caught.value)


def test_the_transient_list_holds_microsofts_documented_numbers() -> None:
    # dotnet/SqlClient SqlConfigurableRetryFactory's baseline list, plus 64 and 20.
    documented = {1204, 1205, 1222, 49918, 49919, 49920, 4060, 4221, 40143, 40613, 40501, 40540, 40197,
                  10929, 10928, 10060, 10054, 10053, 997, 233, 64, 20}  # fmt: skip
    assert documented <= TSQL_TRANSIENT_NUMBERS
