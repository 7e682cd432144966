"""Fixtures that start the local Globus service (the emulator) in-process.

``emulator``: a started ``Emulator`` on a free loopback port with two
collections (``src_id``/``src_root`` and ``dst_id``/``dst_root``), a native
client (``native_client_id``) and a confidential client
(``confidential_client_id``, ``confidential_client_secret``).
``globus_env``: the same, with globus-sdk pointed at it through
``GLOBUS_SDK_SERVICE_URL_TRANSFER`` and ``GLOBUS_SDK_SERVICE_URL_AUTH``.

Both collections are GCSv5 mapped collections, not high assurance, so, as on
the real service, each needs a data_access consent from the start. Limits are
the real ones (a 24 h task deadline, a 60 s retry back-off): a test that
needs them short says so with ``set_limits``.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from globus_auto.emulator import Emulator

__all__ = ["TestEmulator", "emulator", "globus_env", "managed"]

T = TypeVar("T")


class TestEmulator(Emulator):
    """An ``Emulator`` that also names its two collections and two clients."""

    __test__ = False  # not a pytest test class

    def __init__(self, base: Path) -> None:
        self.src_id = str(uuid.uuid4())
        self.dst_id = str(uuid.uuid4())
        self.src_root = base / "src-collection"
        self.dst_root = base / "dst-collection"
        self.src_root.mkdir(parents=True)
        self.dst_root.mkdir(parents=True)
        self.native_client_id = str(uuid.uuid4())
        self.confidential_client_id = str(uuid.uuid4())
        self.confidential_client_secret = "emulator-secret-" + uuid.uuid4().hex
        super().__init__(
            collections={self.src_id: self.src_root, self.dst_id: self.dst_root},
            clients={
                self.native_client_id: None,
                self.confidential_client_id: self.confidential_client_secret,
            },
            collection_options={
                self.src_id: {"display_name": "Emulated source"},
                self.dst_id: {"display_name": "Emulated destination"},
            },
        )


@pytest.fixture
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestEmulator]:
    """A started emulator; stopped at the end of the test."""
    emu = TestEmulator(tmp_path_factory.mktemp("emulator"))
    emu.start()
    try:
        yield emu
    finally:
        emu.stop()


@pytest.fixture
def globus_env(emulator: TestEmulator, monkeypatch: pytest.MonkeyPatch) -> TestEmulator:
    """The emulator, with globus-sdk's service URLs pointing at it."""
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_TRANSFER", emulator.url)
    monkeypatch.setenv("GLOBUS_SDK_SERVICE_URL_AUTH", emulator.url)
    return emulator


def managed(sdk_object: T) -> contextlib.AbstractContextManager[T]:
    """A globus-sdk client or app as a context manager where it is one.

    globus-sdk's clients and apps became context managers after 4.0.0, the
    lowest release the project allows (and CI runs the suite on): there
    the object is used as it is.
    """
    if hasattr(sdk_object, "__enter__"):
        return sdk_object  # type: ignore[return-value]
    return contextlib.nullcontext(sdk_object)
