"""``./scripts/demo`` installs satchel once: a restart with a complete ``.venv`` starts the demo
without any package index.

The script runs from a copy of the repository's launcher beside a ``.venv`` whose ``python``
and ``satchel`` are links to this test environment's, with pip told that no index exists: if
the script called pip, the install would fail and the demo would not start.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

from .e2e_util import Client
from .servers import LOOPBACK, free_port, port_open, wait_until

ROOT = Path(__file__).resolve().parent.parent
NO_INDEX = {"PIP_NO_INDEX": "1", "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull,
            "PIP_INDEX_URL": f"http://{LOOPBACK}:9/simple"}


def clone(tmp_path: Path, stamp: str) -> Path:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy2(ROOT / "scripts" / "demo", repo / "scripts" / "demo")
    shutil.copy2(ROOT / "pyproject.toml", repo / "pyproject.toml")
    (repo / ".venv" / "bin").mkdir(parents=True)
    for name in ("python", "satchel"):
        (repo / ".venv" / "bin" / name).symlink_to(Path(sys.executable).parent / name)
    (repo / ".venv" / stamp).touch()
    later = (repo / "pyproject.toml").stat().st_mtime + 10
    os.utime(repo / ".venv" / stamp, (later, later))
    return repo


def start_and_stop(repo: Path) -> tuple[float, str]:
    """Start the script, wait for the page, stop it; return (seconds to serve, output)."""
    port = free_port()
    log = repo / "demo.log"
    store = f"sqlite:///{repo}/sessions.db"
    started = time.monotonic()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            ["bash", str(repo / "scripts" / "demo"), "--port", str(port), "--store", store],
            env={**os.environ, **NO_INDEX}, stdout=out, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        wait_until(lambda: proc.poll() is not None or port_open(port), 30, "the demo listening")
        assert proc.poll() is None, log.read_text()
        elapsed = time.monotonic() - started
        assert Client(f"http://{LOOPBACK}:{port}").get("/").status == 200
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        proc.wait(15)
    return elapsed, log.read_text()


def test_a_restart_needs_no_package_index(tmp_path: Path) -> None:
    repo = clone(tmp_path, ".satchel-installed")
    for _ in range(2):
        elapsed, output = start_and_stop(repo)
        assert "serving on" in output and "pip" not in output.lower(), output
        assert elapsed < 15, elapsed


def test_the_test_script_s_install_counts_too(tmp_path: Path) -> None:
    repo = clone(tmp_path, ".satchel-deps")  # what ./scripts/test leaves
    _, output = start_and_stop(repo)
    assert "serving on" in output
    assert not (repo / ".venv" / ".satchel-installed").exists()
