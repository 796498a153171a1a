"""The private MariaDB that `quality serve` runs without QUALITY_DATABASE_URL."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from quality import localdb
from quality.localdb import LocalDatabaseError, LocalMariaDB
from tests.conftest import execute, run_async


def test_shared_by_processes_and_stopped_by_the_last(tmp_path: Path) -> None:
    first, second = LocalMariaDB(tmp_path), LocalMariaDB(tmp_path)
    first.ensure_running()
    try:
        assert first.started_here
        pid = first._pid()
        second.ensure_running()
        assert not second.started_here and second._pid() == pid  # found it, did not start another
        (rows,) = run_async(execute(second.url(), "SELECT DATABASE(), @@skip_networking"))
        assert rows == [("quality", 1)]  # the app's database, on the socket only
        first.release()
        assert second.is_running()  # still in use by the second
    finally:
        second.release()
        first.release()
    assert not first.is_running()


def test_data_survives_a_restart(tmp_path: Path) -> None:
    server = LocalMariaDB(tmp_path)
    server.ensure_running()
    run_async(execute(server.url(), "CREATE TABLE kept (n INT)", "INSERT INTO kept VALUES (5)"))
    server.release()
    server.ensure_running()
    try:
        (rows,) = run_async(execute(server.url(), "SELECT n FROM kept"))
        assert rows == [(5,)]
    finally:
        server.release()


def test_missing_server_names_the_binary_and_its_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(localdb, "_SEARCH_PATH", str(tmp_path))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(LocalDatabaseError, match="apt-get install mariadb-server-core") as error:
        LocalMariaDB(tmp_path).ensure_running()
    assert str(error.value).startswith("mariadbd not found") and "\n" not in str(error.value)


def test_missing_client_tool_is_named_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The server package alone: mariadb-install-db would need my_print_defaults.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("mariadbd", "mariadb-install-db"):
        real = shutil.which(name, path=localdb._SEARCH_PATH)
        assert real, f"{name} is needed to run this test"
        (bin_dir / name).symlink_to(real)
    monkeypatch.setattr(localdb, "_SEARCH_PATH", str(bin_dir))
    monkeypatch.setenv("PATH", str(bin_dir))
    server = LocalMariaDB(tmp_path)
    try:
        with pytest.raises(LocalDatabaseError) as error:
            server.ensure_running()
    finally:
        server.stop()
    assert str(error.value).startswith("my_print_defaults not found: install the package mariadb-client-core")
    assert not server.datadir.exists()  # mariadb-install-db never ran
