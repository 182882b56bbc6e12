"""T-SQL error classification from real pyodbc error objects (needs the unixODBC driver manager)."""

from __future__ import annotations

import os

import pytest

from shared.sql_dialect import TSQLDialect

try:
    import pyodbc
except ImportError as exc:  # pyodbc loads libodbc.so.2 (Debian: unixodbc) when imported
    if os.environ.get("CI") == "true":
        raise
    pytest.skip(f"pyodbc needs the ODBC driver manager (apt-get install unixodbc): {exc}", allow_module_level=True)


@pytest.mark.parametrize(
    ("error", "transient", "unique"),
    [
        (pyodbc.OperationalError("08S01", "[08S01] Communication link failure (10054)"), True, False),
        (pyodbc.Error("40001", "[40001] Transaction was deadlocked (1205) (SQLExecDirectW)"), True, False),
        (pyodbc.Error("42000", "[42000] Resource ID : 1. The request limit is 30 (10928)"), True, False),
        (pyodbc.IntegrityError("23000", "[23000] Violation of UNIQUE KEY constraint (2627)"), False, True),
        (pyodbc.IntegrityError("23000", "[23000] Cannot insert duplicate key row (2601)"), False, True),
        (pyodbc.ProgrammingError("42S02", "[42S02] Invalid object name 'x'. (208)"), False, False),
    ],
)
def test_tsql_error_classification(error: Exception, transient: bool, unique: bool) -> None:
    dialect = TSQLDialect()
    assert dialect.is_transient(error) is transient
    assert dialect.is_unique_violation(error) is unique
