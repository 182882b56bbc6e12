"""Identity-based storage settings, the credential they name, and the SQL access-token packing."""

from __future__ import annotations

import struct

import pytest
from azure.core.credentials import AccessToken
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

from shared.credentials import (
    SQL_COPT_SS_ACCESS_TOKEN,
    SQL_TOKEN_SCOPE,
    StorageIdentity,
    build_credential,
    pack_sql_access_token,
    sql_connection_names_auth,
    sql_token_attributes,
)
from shared.errors import ConfigError
from shared.settings import Settings

BICEP_SETTINGS = {  # what infra/ sets on the Function App
    "AzureWebJobsStorage__credential": "managedidentity",
    "AzureWebJobsStorage__clientId": "0d9b4e31-6f1c-4b9a-8a57-2f4e1c3d5b6a",
    "AzureWebJobsStorage__blobServiceUri": "https://stimg.blob.core.windows.net",
    "AzureWebJobsStorage__queueServiceUri": "https://stimg.queue.core.windows.net/",
}


def test_the_templates_identity_settings_select_keyless_access() -> None:
    settings = Settings.from_env(BICEP_SETTINGS)
    assert settings.storage_connection_string == ""
    assert settings.storage_identity == StorageIdentity(
        "https://stimg.blob.core.windows.net", "https://stimg.queue.core.windows.net",
        "managedidentity", "0d9b4e31-6f1c-4b9a-8a57-2f4e1c3d5b6a",
    )


def test_an_account_name_implies_the_public_cloud_endpoints() -> None:
    identity = StorageIdentity.from_env({"AzureWebJobsStorage__accountName": "stimg"})
    assert identity is not None
    assert identity.blob_service_uri == "https://stimg.blob.core.windows.net"
    assert identity.queue_service_uri == "https://stimg.queue.core.windows.net"
    assert identity.credential == ""  # DefaultAzureCredential


def test_a_connection_string_still_wins_and_nothing_at_all_is_a_clear_error() -> None:
    settings = Settings.from_env({"AzureWebJobsStorage": "UseDevelopmentStorage=true", **BICEP_SETTINGS})
    assert settings.storage_identity is None and "devstoreaccount1" in settings.storage_connection_string
    with pytest.raises(ConfigError, match="AzureWebJobsStorage is not set.*__accountName"):
        Settings.from_env({})


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"AzureWebJobsStorage__blobServiceUri": "https://a.blob.core.windows.net"}, "__queueServiceUri"),
        ({"AzureWebJobsStorage__clientId": "x"}, "which storage account"),
        (
            {"AzureWebJobsStorage__accountName": "a", "AzureWebJobsStorage__credential": "clientsecret"},
            "managedidentity",
        ),
        (
            {"AzureWebJobsStorage__blobServiceUri": "http://a.blob.core.windows.net",
             "AzureWebJobsStorage__queueServiceUri": "https://a.queue.core.windows.net"},
            "must be an https:// URL",
        ),
    ],
)
def test_incomplete_or_unsafe_identity_settings_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_the_credential_is_the_one_the_settings_name() -> None:
    managed = build_credential("managedidentity", "0d9b4e31-6f1c-4b9a-8a57-2f4e1c3d5b6a")
    assert isinstance(managed, ManagedIdentityCredential)
    assert isinstance(build_credential("", ""), DefaultAzureCredential)


def test_a_sql_token_is_packed_as_the_odbc_driver_reads_it() -> None:
    packed = pack_sql_access_token("eyJ0b2tlbg")
    (length,) = struct.unpack_from("<I", packed)
    assert length == len("eyJ0b2tlbg") * 2 == len(packed) - 4
    assert packed[4:].decode("utf-16-le") == "eyJ0b2tlbg"
    assert packed[:6] == b"\x14\x00\x00\x00e\x00"  # little-endian length, then UTF-16-LE


def test_sql_token_attributes_ask_for_the_database_scope() -> None:
    asked: list[tuple[str, ...]] = []

    class Credential:
        def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
            asked.append(scopes)
            return AccessToken("tok", 2**31 - 1)

    attributes = sql_token_attributes(Credential())  # type: ignore[arg-type]
    assert asked == [(SQL_TOKEN_SCOPE,)]
    assert SQL_COPT_SS_ACCESS_TOKEN == 1256
    assert attributes == {1256: pack_sql_access_token("tok")}


@pytest.mark.parametrize(
    ("connection_string", "names_auth"),
    [
        ("Driver={ODBC Driver 18 for SQL Server};Server=tcp:s.database.windows.net,1433;Database=d;"
         "Authentication=ActiveDirectoryMsi;UID=0d9b4e31", True),
        ("Driver={FreeTDS};Server=127.0.0.1;Port=1433;UID=sa;PWD=x", True),
        ("Driver={ODBC Driver 18 for SQL Server};Server=tcp:s.database.windows.net,1433;Database=d;Encrypt=yes", False),
    ],
)
def test_a_token_is_brought_only_when_the_connection_string_names_no_login(
    connection_string: str, names_auth: bool
) -> None:
    assert sql_connection_names_auth(connection_string) is names_auth


def test_sqlserver_connections_log_in_with_a_fresh_token_each(monkeypatch: pytest.MonkeyPatch) -> None:
    from shared.database import sqlserver_connector

    pyodbc = pytest.importorskip("pyodbc")  # needs the ODBC driver manager (unixodbc)

    tokens = iter(["first-token", "second-token"])
    calls: list[dict[str, object]] = []

    class Credential:
        def get_token(self, *scopes: str, **kwargs: object) -> AccessToken:
            return AccessToken(next(tokens), 2**31 - 1)

    monkeypatch.setattr(pyodbc, "connect", lambda *args, **kwargs: calls.append(kwargs) or object())
    connect, _ = sqlserver_connector(
        "Driver={ODBC Driver 18 for SQL Server};Server=tcp:s,1433", token_source=Credential()  # type: ignore[arg-type]
    )
    connect()
    connect()
    assert [call["attrs_before"] for call in calls] == [
        {1256: pack_sql_access_token("first-token")}, {1256: pack_sql_access_token("second-token")},
    ]
    connect_with_password, _ = sqlserver_connector("Driver={FreeTDS};Server=s;UID=sa;PWD=x")
    connect_with_password()
    assert calls[-1]["attrs_before"] is None
