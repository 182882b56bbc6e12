"""The azd post-provision hook, run with stand-ins for sqlcmd, az and curl on PATH.

It cannot reach Azure here; what it can prove offline is the order and the arguments: the firewall
opened for this machine and closed again, schema.sql (or the migrations) applied with -I before the
app's database user is created, and the user given read/write/execute and no DDL.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests.infra.bicep_model import INFRA, ROOT

SCRIPT = INFRA / "scripts" / "postprovision.sh"
APP_USER_SQL = INFRA / "scripts" / "app_user.sql"

AZD_ENV = {
    "AZURE_SQL_SERVER_NAME": "sql-abc",
    "AZURE_SQL_SERVER_FQDN": "sql-abc.database.windows.net",
    "AZURE_SQL_DATABASE_NAME": "imgpipe",
    "AZURE_RESOURCE_GROUP": "rg-test",
    "APP_IDENTITY_NAME": "id-imgpipe-abc",
    "APP_IDENTITY_PRINCIPAL_ID": "00000000-1111-2222-3333-444444444444",
}


def _stand_ins(bin_dir: Path, log: Path, *, sqlcmd_exit: int = 0) -> None:
    bin_dir.mkdir()
    for tool, body in {
        "sqlcmd": f'echo "sqlcmd $*" >> "{log}"; exit {sqlcmd_exit}',
        "az": f'echo "az $*" >> "{log}"',
        "curl": f'echo "curl $*" >> "{log}"; echo 203.0.113.7',
    }.items():
        path = bin_dir / tool
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(path.stat().st_mode | stat.S_IXUSR)


def _run(tmp_path: Path, extra: dict[str, str] | None = None, *, sqlcmd_exit: int = 0) -> tuple[int, list[str]]:
    log = tmp_path / "calls.log"
    _stand_ins(tmp_path / "bin", log, sqlcmd_exit=sqlcmd_exit)
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path), **AZD_ENV, **(extra or {})}
    # azure.yaml runs the hook with `sh`; so does the test.
    result = subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=30, check=False)
    calls = log.read_text().splitlines() if log.exists() else []
    return result.returncode, calls


def test_opens_the_firewall_applies_the_schema_then_creates_the_user_and_closes_it(tmp_path: Path) -> None:
    code, calls = _run(tmp_path)
    assert code == 0, calls
    tools = [call.split()[0] for call in calls]
    assert tools == ["curl", "az", "sqlcmd", "sqlcmd", "az"]
    assert "firewall-rule create" in calls[1] and "--start-ip-address 203.0.113.7" in calls[1]
    assert "firewall-rule delete" in calls[4]
    schema, user = calls[2], calls[3]
    assert " -I " in f"{schema} " and "-i schema.sql" in schema and "-d imgpipe" in schema
    assert "--authentication-method ActiveDirectoryDefault" in schema
    assert "-i infra/scripts/app_user.sql" in user
    assert f"APP_IDENTITY_PRINCIPAL_ID={AZD_ENV['APP_IDENTITY_PRINCIPAL_ID']}" in user


def test_applies_migrations_in_name_order_when_pointed_at_them(tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    for name in ("0002_add_index.sql", "0001_initial.sql", "0010_later.sql", "notes.txt"):
        (migrations / name).write_text("SELECT 1;\n")
    code, calls = _run(tmp_path, {"SQL_MIGRATIONS_DIR": str(migrations), "SKIP_FIREWALL_RULE": "1"})
    assert code == 0, calls
    applied = [call.split(" -i ")[1] for call in calls if call.startswith("sqlcmd")]
    expected = ["0001_initial.sql", "0002_add_index.sql", "0010_later.sql", "app_user.sql"]
    assert [Path(p).name for p in applied] == expected
    assert not any(call.startswith(("az", "curl")) for call in calls)


def test_a_failing_script_stops_the_hook_and_still_closes_the_firewall(tmp_path: Path) -> None:
    code, calls = _run(tmp_path, sqlcmd_exit=1)
    assert code != 0
    assert [call.split()[0] for call in calls] == ["curl", "az", "sqlcmd", "az"]
    assert "firewall-rule delete" in calls[-1]


@pytest.mark.parametrize("missing", sorted(AZD_ENV))
def test_refuses_to_run_without_the_azd_outputs(tmp_path: Path, missing: str) -> None:
    env = {k: v for k, v in AZD_ENV.items() if k != missing}
    log = tmp_path / "calls.log"
    _stand_ins(tmp_path / "bin", log)
    result = subprocess.run(["sh", str(SCRIPT)], env={"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", **env},
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode != 0 and missing in result.stderr
    assert not log.exists()


def test_the_app_user_gets_read_write_execute_and_no_ddl() -> None:
    sql = "\n".join(line for line in APP_USER_SQL.read_text().splitlines() if not line.lstrip().startswith("--"))
    assert "FROM EXTERNAL PROVIDER WITH OBJECT_ID = '$(APP_IDENTITY_PRINCIPAL_ID)'" in sql
    assert "ALTER ROLE db_datareader ADD MEMBER" in sql
    assert "ALTER ROLE db_datawriter ADD MEMBER" in sql
    assert "GRANT EXECUTE TO" in sql
    upper = sql.upper()
    for forbidden in ("DB_DDLADMIN ADD", "DB_OWNER ADD", "GRANT ALTER", "GRANT CONTROL", "GRANT CREATE"):
        assert forbidden not in upper, forbidden
    assert "DB_DDLADMIN DROP MEMBER" in upper  # an identity given DDL earlier loses it


def test_the_script_is_executable_posix_sh() -> None:
    assert os.access(SCRIPT, os.X_OK)
    subprocess.run(["sh", "-n", str(SCRIPT)], check=True, timeout=10)
    assert SCRIPT.read_text().startswith("#!/bin/sh\n")
    assert (ROOT / "schema.sql").is_file()
