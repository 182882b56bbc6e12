"""Where compressed images go: a local folder or a Blob container, behind one small protocol.

Names are chosen by the caller and deterministic (``<request_id>/<seq:05d>.<ext>``), so a retried
image overwrites its earlier output instead of leaving a second copy. A name must be relative,
``/``-separated, without ``.``/``..`` segments, empty segments or backslashes.

Storage errors are raised as TransientFailure (a full disk or an unreachable storage account may
recover); the messages never carry the connection string.
"""

from __future__ import annotations

import logging
import os
import threading
import uuid
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import ContainerClient, ContentSettings

from shared.azure_storage import storage_client_options
from shared.errors import TransientFailure
from shared.settings import Settings

logger = logging.getLogger(__name__)


class OutputStorage(Protocol):
    def put(self, name: str, data: bytes, content_type: str) -> str:
        """Store ``data`` under ``name`` (replacing what was there); return the URL to record."""
        ...

    def prepare(self) -> None:
        """Create the folder or container, so a deployment can be checked before any image."""
        ...


def check_name(name: str) -> str:
    """Return ``name`` if it is a safe relative object name, else raise ValueError."""
    segments = name.split("/")
    if (
        not name
        or name.startswith("/")
        or "\\" in name
        or "\0" in name
        or any(segment in ("", ".", "..") for segment in segments)
    ):
        raise ValueError(f"unsafe output name {name!r}: must be relative, without '.', '..' or empty parts")
    return name


class LocalOutputStorage:
    """Files in a folder; each written to a temporary name and renamed, so none is ever half-written."""

    def __init__(self, directory: Path, public_base_url: str = "") -> None:
        self._directory = Path(directory).resolve()
        self._public_base_url = public_base_url.rstrip("/")

    def prepare(self) -> None:
        self._directory.mkdir(parents=True, exist_ok=True)

    def put(self, name: str, data: bytes, content_type: str) -> str:
        path = self._directory.joinpath(*check_name(name).split("/"))
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(temporary, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            logger.warning("could not write output %s", name, exc_info=True)
            raise TransientFailure(
                f"could not store the output: {exc.strerror or type(exc).__name__}"
            ) from None
        if self._public_base_url:
            return f"{self._public_base_url}/{quote(name)}"
        return path.as_uri()


class BlobOutputStorage:
    """Blobs in one container, created on first use with public read access to its blobs."""

    def __init__(self, container: ContainerClient) -> None:
        self._container = container
        self._container_ready = False
        self._lock = threading.Lock()

    @classmethod
    def from_connection_string(cls, conn: str, container_name: str) -> BlobOutputStorage:
        return cls(ContainerClient.from_connection_string(conn, container_name, **storage_client_options(16)))

    def put(self, name: str, data: bytes, content_type: str) -> str:
        blob = self._container.get_blob_client(check_name(name))
        settings = ContentSettings(content_type=content_type)
        try:
            self._ensure_container()
            try:
                blob.upload_blob(data, overwrite=True, content_settings=settings)
            except ResourceNotFoundError:
                # The container went away since we checked (deleted, or an emulator restarted).
                self._container_ready = False
                self._ensure_container()
                blob.upload_blob(data, overwrite=True, content_settings=settings)
        except AzureError as exc:
            logger.warning("could not upload output %s", name, exc_info=True)
            raise TransientFailure(
                f"could not store the output in Blob storage: {type(exc).__name__}"
            ) from None
        return str(blob.url)

    def prepare(self) -> None:
        try:
            self._ensure_container()
        except AzureError as exc:
            raise TransientFailure(f"could not create the output container: {type(exc).__name__}") from None

    def _ensure_container(self) -> None:
        if self._container_ready:
            return
        with self._lock:
            if self._container_ready:
                return
            try:
                # Public read for blobs only (not listing), so the recorded URL works for the client.
                self._container.create_container(public_access="blob")
                logger.info("created output container %s", self._container.container_name)
            except ResourceExistsError:
                pass  # an existing container keeps the access level its owner chose
            self._container_ready = True


def build_output_storage(settings: Settings) -> OutputStorage:
    if settings.output_storage == "blob":
        return BlobOutputStorage.from_connection_string(
            settings.storage_connection_string, settings.output_container
        )
    return LocalOutputStorage(settings.output_dir, settings.output_public_base_url)
