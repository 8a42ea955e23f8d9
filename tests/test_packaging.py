"""The wheel and the sdist `python -m build` makes install and run in a brand-new virtualenv.

The virtualenv sees no site-packages but its own, and the dependencies come from the package
index, as for any user: a dependency missing from `pyproject.toml`, a module left out of the
wheel or a version told in two places fails here rather than after a release. The package is
installed from the wheel, checked, then replaced by the sdist's build and checked again.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import textwrap
import zipfile
from pathlib import Path

import pytest

import aioflow

# Building twice and installing the dependencies from the index: about a minute when quiet.
pytestmark = pytest.mark.timeout(900)

REPO = Path(__file__).resolve().parent.parent

FLOW = textwrap.dedent(
    """
    from aioflow import FlowSpec, step


    class PackagedFlow(FlowSpec):
        @step
        def start(self):
            self.items = [1, 2, 3]
            self.next(self.square, foreach="items")

        @step
        def square(self):
            self.value = self.input**2
            self.next(self.join)

        @step
        def join(self, inputs):
            print("total", sum(i.value for i in inputs))
            self.next(self.end)

        @step
        def end(self):
            pass
    """
)


def run(argv: list[str | Path], cwd: Path, timeout: float = 600) -> str:
    """Run a command with no trace of the checkout in its environment; its stdout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["AIOFLOW_ROOT"] = str(cwd / "store")
    done = subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{argv} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


def check_installed(venv: Path, work: Path) -> None:
    """The installed package runs a flow, tells the checkout's version and finds the chart
    libraries it vendors, from the venv."""
    scripts = venv / ("Scripts" if os.name == "nt" else "bin")
    python = scripts / "python"
    where = run([python, "-c", "import aioflow; print(aioflow.__file__)"], work)
    assert Path(where.strip()).is_relative_to(venv), where  # not the checkout
    size = run(
        [python, "-c", "from aioflow.card_html import chart_scripts as c; print(len(c()))"], work
    )
    assert int(size) > 800_000, size
    assert run([scripts / "aioflow", "--version"], work) == f"aioflow {aioflow.__version__}\n"
    out = run([scripts / "aioflow", "run", "flow.py"], work)
    assert re.search(r"\[\d+/join/\d+\] total 14$", out, re.M), out


def test_the_wheel_and_the_sdist_install_and_run_in_a_fresh_virtualenv(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    run([sys.executable, "-m", "build", "--outdir", dist, REPO], tmp_path)
    (wheel,) = dist.glob("*.whl")
    (sdist,) = dist.glob("*.tar.gz")
    version = aioflow.__version__
    assert wheel.name == f"aioflow-{version}-py3-none-any.whl"
    assert sdist.name == f"aioflow-{version}.tar.gz"

    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert f"aioflow-{version}.dist-info/licenses/LICENSE" in names
    assert "aioflow/py.typed" in names
    # The chart libraries a card with a VegaChart inlines, with their licenses.
    vendored = {
        f"aioflow/cards_static/{name}"
        for name in (
            "vega.min.js",
            "vega-lite.min.js",
            "vega-embed.min.js",
            "LICENSE-vega.txt",
            "LICENSE-vega-lite.txt",
            "LICENSE-vega-embed.txt",
            "THIRD_PARTY_LICENSES.txt",
        )
    }
    assert vendored <= names, vendored - names
    assert f"aioflow-{version}.dist-info/licenses/aioflow/cards_static/LICENSE-vega.txt" in names
    packaged = {n for n in names if n.startswith("aioflow/") and n.endswith(".py")}
    tracked = subprocess.run(
        ["git", "ls-files", "aioflow/*.py"], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    assert set(tracked) <= packaged, set(tracked) - packaged

    with tarfile.open(sdist) as archive:
        members = {m.name.split("/", 1)[1] for m in archive.getmembers() if "/" in m.name}
    assert {"LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml"} <= members
    assert vendored <= members, vendored - members
    # MANIFEST.in keeps the checkout-only folders out on purpose.
    assert not [m for m in members if m.split("/")[0] in {"tests", "examples", "benchmarks"}]

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", venv], tmp_path)  # without --system-site-packages
    pip = [venv / ("Scripts" if os.name == "nt" else "bin") / "python", "-m", "pip"]
    work = tmp_path / "work"
    work.mkdir()
    (work / "flow.py").write_text(FLOW)

    run([*pip, "install", "--quiet", "--disable-pip-version-check", wheel], work)
    check_installed(venv, work)

    run([*pip, "install", "--quiet", "--force-reinstall", "--no-deps", sdist], work)
    check_installed(venv, work)
