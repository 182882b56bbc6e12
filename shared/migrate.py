"""Versioned schema migrations: ``migrations/NNNN_name.{sqlite,tsql}.sql``, recorded in ``schema_version``.

Every migration exists for both dialects under the same number, and every statement in it is
guarded (or, on SQLite, tolerated when its change is already there), so running the chain on a
database made by an older build adopts it as it is and applies only what is missing. Each
migration runs in one transaction together with its ``schema_version`` row.

On SQL Server the app's identity needs no DDL rights: an operator (or the deployment) runs
``python -m shared.migrate`` with an identity that has them, and the app only checks the version
(``Store.ensure_schema``), refusing to start with a ``ConfigError`` when the database is behind.
A local SQLite database is migrated by the app itself.

    python -m shared.migrate            # apply what is missing (SQLSERVER_CONNECTION_STRING, else SQLite)
    python -m shared.migrate --check    # exit 1 if the database is behind
    python -m shared.migrate --script   # print the whole T-SQL chain as one sqlcmd script
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from shared.database import Database, rows_of, sqlite_connector, sqlserver_connector
from shared.errors import ConfigError
from shared.settings import Settings
from shared.sql_dialect import DBAPICursor, Dialect

logger = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"
_FILE_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.(sqlite|tsql)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path

    def statements(self, dialect: Dialect) -> tuple[str, ...]:
        return dialect.split_script(self.path.read_text(encoding="utf-8"))


def migrations(dialect_name: str, directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The dialect's migrations in order; their numbers must run 1, 2, 3... without a gap."""
    found = []
    for path in directory.iterdir():
        match = _FILE_NAME.match(path.name)
        if match and match.group(3) == dialect_name:
            found.append(Migration(int(match.group(1)), match.group(2), path))
    found.sort(key=lambda migration: migration.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise ConfigError(f"{dialect_name} migrations in {directory} are not numbered 1..{len(found)}")
    return found


def latest_version(dialect_name: str) -> int:
    return len(migrations(dialect_name))


def _current(cursor: DBAPICursor, dialect: Dialect) -> int:
    cursor.execute(dialect.schema_version_exists)
    exists = rows_of(cursor)
    if not exists or not exists[0]["present"]:
        return 0
    cursor.execute("SELECT MAX(version) AS version FROM schema_version")
    rows = rows_of(cursor)
    return int(rows[0]["version"]) if rows and rows[0]["version"] is not None else 0


def current_version(db: Database) -> int:
    """The highest version applied (0 for a database that predates ``schema_version``)."""
    return db.run(lambda cursor: _current(cursor, db.dialect), write=False)


def require_current(db: Database) -> None:
    """Raise ``ConfigError`` unless every migration has been applied."""
    have, need = current_version(db), latest_version(db.dialect.name)
    if have < need:
        raise ConfigError(
            f"the database schema is at version {have}, this build needs {need}:"
            " run `python -m shared.migrate` with an identity allowed to change the schema"
        )


def _apply(db: Database, migration: Migration) -> bool:
    dialect = db.dialect

    def work(cursor: DBAPICursor) -> bool:
        if dialect.migration_lock:
            cursor.execute(dialect.migration_lock)
        if _current(cursor, dialect) >= migration.version:
            return False  # another migrator applied it while this one waited
        for statement in migration.statements(dialect):
            try:
                cursor.execute(statement)
            except Exception as exc:
                if not dialect.is_already_exists(exc):
                    raise
        cursor.execute(
            "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
            (migration.version, migration.name, dialect.to_db(datetime.now(UTC))),
        )
        return True

    return db.run(work, write=True)


def migrate(db: Database) -> list[int]:
    """Apply every migration the database lacks, in order; the versions applied by this call."""
    applied = []
    for migration in migrations(db.dialect.name):
        if migration.version > current_version(db) and _apply(db, migration):
            logger.info("applied migration %04d_%s", migration.version, migration.name)
            applied.append(migration.version)
    return applied


def tsql_script() -> str:
    """The T-SQL chain as one re-runnable sqlcmd script, recording each version it applies."""
    parts = [
        "-- imgpipe schema for SQL Server / Azure SQL Database: every migrations/*.tsql.sql in order, each\n"
        "-- recorded in schema_version. GENERATED by `python -m shared.migrate --script > schema.sql`: edit\n"
        "-- the migrations, not this file (tests/unit/test_tsql.py checks the two agree). Re-runnable.\n"
    ]
    for migration in migrations("tsql"):
        parts.append(f"-- {migration.path.name}\n{migration.path.read_text(encoding='utf-8').rstrip()}\n")
        # version and name come from the file name (\d{4}_[a-z0-9_]+), never from input.
        parts.append(
            f"IF NOT EXISTS (SELECT 1 FROM dbo.schema_version WHERE version = {migration.version})\n"  # noqa: S608
            "INSERT INTO dbo.schema_version (version, name, applied_at)"
            f" VALUES ({migration.version}, N'{migration.name}', SYSUTCDATETIME());\nGO\n"
        )
    return "\n".join(parts)


def database_for(settings: Settings) -> Database:
    """The configured database, with no statement timeout: rebuilding a key may take long."""
    if settings.sqlserver_connection_string:
        connection_string = str(settings.sqlserver_connection_string)
        return Database(*sqlserver_connector(connection_string, 0, settings.sqlserver_retry_budget_s))
    return Database(*sqlite_connector(settings.sqlite_path))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.migrate", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report; exit 1 if behind")
    parser.add_argument("--script", action="store_true", help="print the T-SQL chain for sqlcmd")
    args = parser.parse_args(argv)
    if args.script:
        sys.stdout.write(tsql_script())
        return 0
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    # Only the database settings matter here; the storage account need not be configured.
    env = dict(os.environ)
    env.setdefault("AzureWebJobsStorage", "UseDevelopmentStorage=true")
    db = database_for(Settings.from_env(env))
    try:
        if args.check:
            have, need = current_version(db), latest_version(db.dialect.name)
            print(f"schema version {have}, this build needs {need}")
            return 0 if have >= need else 1
        applied = migrate(db)
        print(f"applied {applied or 'nothing'}; schema version {current_version(db)}")
        return 0
    finally:
        db.close()


if __name__ == "__main__":
    sys.exit(main())
