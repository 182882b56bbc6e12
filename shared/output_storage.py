"""Where compressed images go: a local folder or a Blob container, behind one small protocol.

Names are chosen by the caller and deterministic (``<request_id>/<seq:05d>.<ext>``), so a retried
image overwrites its earlier output instead of leaving a second copy. A name must be relative,
``/``-separated, without ``.``/``..`` segments, empty segments or backslashes.

Storage errors are raised as TransientFailure (a full disk or an unreachable storage account may
recover), except those no retry can fix (PermanentFailure) and a missing container
(DependencyMissing); the messages never carry the connection string.
"""

from __future__ import annotations

import logging
import os
import uuid
from contextlib import suppress
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContentSettings

from shared.azure_storage import StorageAccount, storage_client_options
from shared.blob_urls import BlobUrls, PublicBaseUrls, SasUrls
from shared.errors import DependencyMissing, ImgpipeError, PermanentFailure, TransientFailure
from shared.models import ImageRecord
from shared.settings import Settings

logger = logging.getLogger(__name__)

# Blob error codes that no retry can fix (a setting of the account, not a blip).
PERMANENT_BLOB_ERRORS = frozenset({"PublicAccessNotPermitted"})


class OutputStorage(Protocol):
    def put(self, name: str, data: bytes, content_type: str) -> str:
        """Store ``data`` under ``name`` (replacing what was there); return the URL to record."""
        ...

    def prepare(self) -> None:
        """Create the folder or container, so a deployment can be checked before any image."""
        ...

    def check(self) -> None:
        """Raise unless outputs can be stored now (DependencyMissing when the place is missing)."""
        ...

    def presentable(self, recorded_url: str) -> str:
        """The URL to hand a client for a recorded output URL (with a fresh SAS where one is needed)."""
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

    def presentable(self, recorded_url: str) -> str:
        return recorded_url

    def check(self) -> None:
        with suppress(OSError):  # a folder that can be made is fine: put() makes it too
            self.prepare()
        if not os.access(self._directory, os.W_OK):
            raise DependencyMissing(f"output folder {self._directory.name!r} is missing or not writable")

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
            _fsync_directory(path.parent)
        except OSError as exc:
            temporary.unlink(missing_ok=True)
            logger.warning("could not write output %s", name, exc_info=True)
            raise TransientFailure(
                f"could not store the output: {exc.strerror or type(exc).__name__}"
            ) from None
        if self._public_base_url:
            return f"{self._public_base_url}/{quote(name)}"
        return path.as_uri()


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable: the file's own fsync does not cover its new name."""
    descriptor = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class BlobOutputStorage:
    """Blobs in one private container; the recorded URL comes from ``urls`` (a SAS or a public base).

    The container is never created with public access. ``create_container`` (local runs only)
    lets a missing container be created, private; in Azure the deployment creates it and a
    missing one is a ``DependencyMissing`` (503 / retried), not something the app papers over.
    """

    def __init__(self, container: ContainerClient, urls: BlobUrls, *, create_container: bool = False) -> None:
        self._container = container
        self._urls = urls
        self._create_container = create_container

    @classmethod
    def from_connection_string(
        cls, conn: str, container_name: str, *, ttl: timedelta = timedelta(hours=1)
    ) -> BlobOutputStorage:
        service = BlobServiceClient.from_connection_string(conn, **storage_client_options(16))
        container = service.get_container_client(container_name)
        return cls(container, SasUrls(service, container_name, ttl), create_container=True)

    def put(self, name: str, data: bytes, content_type: str) -> str:
        blob = self._container.get_blob_client(check_name(name))
        settings = ContentSettings(content_type=content_type)
        try:
            try:
                blob.upload_blob(data, overwrite=True, content_settings=settings)
            except ResourceNotFoundError:
                if not self._create_container:
                    raise self._missing() from None
                self._create_private_container()
                blob.upload_blob(data, overwrite=True, content_settings=settings)
            return self._urls.recorded_url(name, str(blob.url))
        except AzureError as exc:
            logger.warning("could not upload output %s", name, exc_info=True)
            raise storage_failure(exc, "could not store the output in Blob storage") from None

    def presentable(self, recorded_url: str) -> str:
        return self._urls.presentable(recorded_url)

    def prepare(self) -> None:
        try:
            self._create_private_container()
        except AzureError as exc:
            raise storage_failure(exc, "could not create the output container") from None

    def check(self) -> None:
        """Raise DependencyMissing if the container does not exist, TransientFailure if unreachable."""
        try:
            self._container.get_container_properties()
        except ResourceNotFoundError:
            raise self._missing() from None
        except AzureError as exc:
            raise storage_failure(exc, "could not reach the output container") from None

    def _missing(self) -> DependencyMissing:
        return DependencyMissing(
            f"output container '{self._container.container_name}' does not exist (create it with the deployment)"
        )

    def _create_private_container(self) -> None:
        try:
            # No public_access: the URLs handed out carry a SAS or go through a configured front.
            self._container.create_container()
            logger.info("created the private output container %s", self._container.container_name)
        except ResourceExistsError:
            pass  # an existing container keeps the access level its owner chose


def storage_failure(exc: AzureError, what: str) -> ImgpipeError:
    """A Blob error as a failure: permanent when retrying cannot help, else transient.

    409 PublicAccessNotPermitted means the account forbids public access (the default for new
    accounts): retrying every image into the poison queue would only hide a deployment mistake.
    """
    code = getattr(exc, "error_code", None)
    if code in PERMANENT_BLOB_ERRORS:
        return PermanentFailure(f"{what}: {code} (the storage account refuses this; retrying cannot help)")
    return TransientFailure(f"{what}: {type(exc).__name__}")


def build_output_storage(settings: Settings, account: StorageAccount | None = None) -> OutputStorage:
    """The configured output storage; ``account`` carries the identity-based clients when there are any."""
    if settings.output_storage != "blob":
        return LocalOutputStorage(settings.output_dir, settings.output_public_base_url)
    if account is None:
        account = StorageAccount(connection_string=settings.storage_connection_string)
    service = account.blob_service_client(pool_size=16)
    urls: BlobUrls
    if settings.output_url_mode == "public":
        urls = PublicBaseUrls(settings.output_public_base_url)
    else:
        urls = SasUrls(service, settings.output_container, timedelta(seconds=settings.output_sas_ttl_s))
    return BlobOutputStorage(
        service.get_container_client(settings.output_container), urls, create_container=not settings.running_in_azure
    )


def with_presentable_urls(images: list[ImageRecord], storage: OutputStorage) -> list[ImageRecord]:
    """``images`` with each output URL as a client can fetch it now (a fresh SAS, for a private container)."""
    return [replace(image, output_url=storage.presentable(image.output_url)) if image.output_url else image
            for image in images]  # fmt: skip
