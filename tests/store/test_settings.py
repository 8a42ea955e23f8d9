"""Where metadata and blobs live: arguments, then the environment, then aioflow.toml or
[tool.aioflow] found walking up; URLs opened by scheme, with one-line errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from aioflow.exceptions import StoreError
from aioflow.store import FileBlobStore, MemoryMetadataStore, SqliteMetadataStore, Store
from aioflow.store import open as store_open
from aioflow.store.objects import ObjectBlobStore
from aioflow.store.open import open_blobs, open_metadata, open_store
from aioflow.store.settings import redact, store_settings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover (3.10)
    import tomli as tomllib


@pytest.fixture(autouse=True)
def _no_store_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIOFLOW_METADATA", raising=False)
    monkeypatch.delenv("AIOFLOW_BLOBS", raising=False)


def test_nothing_configured_is_sqlite_and_files(tmp_path: Path) -> None:
    settings = store_settings(cwd=tmp_path)
    assert settings.is_default and settings.sources == {}
    store = Store(tmp_path / ".aioflow", settings=settings)
    assert isinstance(store.metadata, SqliteMetadataStore)
    assert isinstance(store.blobs, FileBlobStore)
    store.close()


def test_aioflow_toml_is_found_walking_up_and_the_environment_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / ".git").mkdir()
    (tmp_path / "aioflow.toml").write_text('blobs = "memory://"\nmetadata = "memory://"\n')
    deep = tmp_path / "a" / "b"
    deep.mkdir(parents=True)
    settings = store_settings(cwd=deep)
    assert (settings.metadata, settings.blobs) == ("memory://", "memory://")
    assert settings.sources["blobs"] == str(tmp_path / "aioflow.toml")
    monkeypatch.setenv("AIOFLOW_BLOBS", "/mnt/blobs")
    settings = store_settings(cwd=deep)
    assert settings.blobs == "/mnt/blobs" and settings.sources["blobs"] == "$AIOFLOW_BLOBS"
    settings = store_settings(blobs="s3://b/p", cwd=deep)
    assert settings.blobs == "s3://b/p" and settings.sources["blobs"] == "--blobs"


def test_pyproject_tool_table_and_the_repository_root_bound(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text('[tool.aioflow]\nblobs = "memory://"\n')
    project = tmp_path / "project"
    project.mkdir()
    # a pyproject.toml without [tool.aioflow] is passed over
    (project / "pyproject.toml").write_text('[project]\nname = "x"\n')
    assert store_settings(cwd=project).blobs == "memory://"
    (project / ".git").mkdir()  # a repository root: nothing above it is read
    assert store_settings(cwd=project).blobs is None


#: Every way TOML can spell a `[tool.aioflow]` table (as a pyproject.toml beside others).
TOOL_AIOFLOW_SPELLINGS = [
    '[tool.aioflow]\nblobs = "memory://"\n',
    '[ tool . "aioflow" ]\nblobs = "memory://"\n',
    "[tool.'aioflow']\nblobs = 'memory://'\n",
    '[tool]\nx = 1\naioflow = {blobs = "memory://"}\n',
    '[tool]\naioflow.blobs = "memory://"\n',
    '["tool"]\n"aioflow".blobs = "memory://"\n',
    'tool.aioflow.blobs = "memory://"\n',
    'tool . aioflow = {blobs = "memory://"}\n',
    'tool = {aioflow = {blobs = "memory://"}}\n',
    '"tool" = { "aioflow" = { blobs = "memory://" } }\n',
    '[tool."\\u0061ioflow"]\nblobs = "memory://"\n',
    '["\\u0074ool".aioflow]\nblobs = "memory://"\n',
    '[tool.ruff]\nline-length = 100\n[tool.aioflow]\nblobs = "memory://"\n',
]


@pytest.mark.parametrize("text", TOOL_AIOFLOW_SPELLINGS)
def test_every_spelling_of_the_pyproject_table_is_read(tmp_path: Path, text: str) -> None:
    (tmp_path / ".git").mkdir()
    other = '[project]\nname = "aioflow"\n'
    (tmp_path / "pyproject.toml").write_text(text + other)
    assert tomllib.loads(text + other)["tool"]["aioflow"]["blobs"] == "memory://"
    assert store_settings(cwd=tmp_path).blobs == "memory://"


def test_a_pyproject_that_cannot_hold_the_table_is_not_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The word may be anywhere else (a package named aioflow, its data, its import contracts):
    # such a file is passed over without a TOML parser, which would cost every run 3-5 ms.
    (tmp_path / ".git").mkdir()
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "aioflow"\n'
        "# aioflow.toml or [tool.aioflow] (aioflow/store/settings.py)\n"
        '[tool.setuptools.package-data]\naioflow = ["py.typed"]\n'
        '[tool.importlinter]\nroot_package = "aioflow"\n'
        '[[tool.importlinter.contracts]]\nsource_modules = [\n    "aioflow.graph",\n]\n'
        "[tool.ruff]\nline-length = 100\n"
    )
    monkeypatch.setitem(sys.modules, "tomllib", None)  # importing it would fail
    monkeypatch.setitem(sys.modules, "tomli", None)
    assert store_settings(cwd=tmp_path).is_default


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            'blob = "s3://b"\n',
            "Unknown key 'blob' in .*aioflow.toml: the keys are metadata, blobs.",
        ),
        ("blobs = 3\n", "blobs in .*aioflow.toml must be a non-empty string, not 3."),
        (
            'metadata = "postgresql://me:hunter2@db/runs"\n',
            "metadata in .*aioflow.toml holds a password: configuration files are committed",
        ),
        ("blobs = [\n", "Cannot read the aioflow configuration in .*aioflow.toml: "),
    ],
)
def test_a_bad_configuration_file_is_named(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "aioflow.toml").write_text(text)
    with pytest.raises(StoreError, match=message) as info:
        store_settings(cwd=tmp_path)
    assert "\n" not in str(info.value)
    assert "hunter2" not in str(info.value)


def test_urls_open_by_scheme(tmp_path: Path) -> None:
    assert isinstance(open_metadata("memory://"), MemoryMetadataStore)
    sqlite = open_metadata(f"sqlite://{tmp_path}/m.db")
    assert isinstance(sqlite, SqliteMetadataStore) and sqlite.path == tmp_path / "m.db"
    sqlite.close()
    assert isinstance(open_blobs(str(tmp_path / "b")), FileBlobStore)
    assert isinstance(open_blobs("memory://"), ObjectBlobStore)
    assert isinstance(open_blobs((tmp_path / "o").as_uri()), ObjectBlobStore)
    store = open_store("memory://", "memory://")
    assert isinstance(store.metadata, MemoryMetadataStore)
    assert isinstance(store.blobs, ObjectBlobStore)


def test_unknown_schemes_and_a_missing_backend_module_are_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(StoreError, match=r"Unknown metadata URL mysql://u:\*\*\*@h/d: use one"):
        open_metadata("mysql://u:secret@h/d")
    monkeypatch.setattr(store_open, "POSTGRES_MODULE", "aioflow.store.no_such_module")
    with pytest.raises(StoreError) as info:
        open_metadata("postgresql://u:secret@127.0.0.1/db")
    assert str(info.value) == (
        "PostgreSQL metadata (postgresql://u:***@127.0.0.1/db) is not available in this "
        "aioflow: aioflow.store.no_such_module is missing."
    )


def test_redact_hides_only_the_password() -> None:
    assert redact("postgresql://me:pw@db:5432/x") == "postgresql://me:***@db:5432/x"
    assert redact("s3://bucket/prefix") == "s3://bucket/prefix"
