"""What a new user meets when installing: the package's metadata and the missing-extra errors.

The missing-library cases run in a subprocess that blocks the client library's import
(``sys.modules[name] = None`` makes ``import name`` fail as if it were not installed), so the
test suite's own environment, which has every extra, stays as it is.
"""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from trove_classifiers import classifiers as KNOWN_CLASSIFIERS

import satchel

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
PYPROJECT = (ROOT / "pyproject.toml").read_text()
PLACEHOLDER = "git+https://github.com/OWNER/satchel"

# scheme URL, the module its store imports, the extra that installs it
MISSING = [
    ("redis://127.0.0.1:6379/0", "redis", "redis"),
    ("rediss://127.0.0.1:6380/0", "redis", "redis"),
    ("redis+cluster://127.0.0.1:7000,127.0.0.1:7001", "redis", "redis"),
    ("postgresql://app@127.0.0.1/app", "psycopg", "postgres"),
    ("postgres:///app", "psycopg_pool", "postgres"),
    ("mysql://app@127.0.0.1/app", "pymysql", "mysql"),
    ("mariadb://app@127.0.0.1/app", "pymysql", "mysql"),
    ("memcached://127.0.0.1:11211", "pymemcache", "memcached"),
    ("cookie://", "cryptography", "crypto"),
]


def without(module: str, code: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter where ``module`` cannot be imported."""
    prelude = f"import sys\nsys.modules[{module!r}] = None\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code), *args],
                          capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.parametrize(("url", "module", "extra"), MISSING)
def test_open_store_without_its_library_names_the_extra(url: str, module: str,
                                                        extra: str) -> None:
    result = without(module, """
        import satchel
        try:
            satchel.open_store(sys.argv[1], secret="a secret of at least 16 bytes")
        except satchel.ConfigurationError as exc:
            print(type(exc).__name__, exc, sep=": ")
            print("cause:", type(exc.__cause__).__name__)
        """, url)
    assert result.returncode == 0, result.stderr
    assert f"pip install 'satchel[{extra}]'" in result.stdout
    assert "ConfigurationError: " in result.stdout
    if extra != "crypto":  # the cookie store has its own message, naming the signed mode too
        assert f"'{module}' package, which is not installed" in result.stdout
        assert "cause: ModuleNotFoundError" in result.stdout


def test_cli_without_a_library_names_the_extra_in_one_line() -> None:
    result = without("redis", """
        from satchel.cli import main
        sys.exit(main(["count", "redis://127.0.0.1:6379/0"]))
        """)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == ("satchel: error: redis:// stores need the 'redis' package, "
                             "which is not installed: pip install 'satchel[redis]'\n")


def test_a_broken_satchel_module_is_not_blamed_on_an_extra() -> None:
    # A missing module of satchel itself is a bug or a broken install, never an extra to add.
    result = without("satchel.stores._redis_wire", """
        import satchel
        satchel.open_store("redis://127.0.0.1:6379/0")
        """)
    assert result.returncode == 1
    assert "ModuleNotFoundError" in result.stderr and "pip install" not in result.stderr


# -- the package's metadata ----------------------------------------------------------------------


def test_pip_show_displays_the_license() -> None:
    result = subprocess.run([sys.executable, "-m", "pip", "show", "satchel"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    fields = dict(line.split(": ", 1) for line in result.stdout.splitlines() if ": " in line)
    assert "MIT" in (fields.get("License-Expression"), fields.get("License"))
    assert fields["Home-page"].startswith("https://")


def test_metadata_is_ready_to_publish() -> None:
    meta = importlib.metadata.metadata("satchel")
    classifiers = meta.get_all("Classifier") or []
    assert set(classifiers) <= KNOWN_CLASSIFIERS, set(classifiers) - KNOWN_CLASSIFIERS
    for prefix in ("Development Status ::", "Operating System ::", "Environment ::",
                   "Topic :: Internet :: WWW/HTTP :: WSGI"):
        assert any(c.startswith(prefix) for c in classifiers), prefix
    # The Python versions named agree with requires-python, and CI's Debian Python is one.
    versions = sorted(c.rsplit(" ", 1)[1] for c in classifiers
                      if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c))
    assert versions == ["3.10", "3.11", "3.12", "3.13"]
    assert meta["Requires-Python"] == ">=3.10"
    assert f"{sys.version_info.major}.{sys.version_info.minor}" in versions
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL") or [])
    assert {"Homepage", "Source", "Issues", "Changelog"} <= set(urls)
    assert meta["License-Expression"] == "MIT"
    assert meta["Version"] == satchel.__version__


def test_extras_are_the_stores_and_frameworks_and_not_the_test_tools() -> None:
    extras = set(importlib.metadata.metadata("satchel").get_all("Provides-Extra") or [])
    assert extras == {"redis", "postgres", "mysql", "memcached", "crypto",
                      "flask", "django", "pyramid", "quixote", "asgi", "fastapi"}
    # The tools for working on satchel are a dependency group, which pip never offers users.
    group = PYPROJECT.split("\n[dependency-groups]\n", 1)[1].split("\n[", 1)[0]
    assert re.search(r'^dev = \[\n(\s+"[^"]+",\n)*\s+"pytest>=8",$', group, re.MULTILINE)
    requires = importlib.metadata.requires("satchel") or []
    redis = [r for r in requires if r.endswith('extra == "redis"')]
    assert any(r.startswith("redis[hiredis]") for r in redis), redis


def test_the_install_section_names_every_extra() -> None:
    install = README.split("## Install\n", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\| (.*?) \|", install, re.MULTILINE))
    listed = {extra for cell in named for extra in re.findall(r"`(\w+)`", cell)}
    extras = set(importlib.metadata.metadata("satchel").get_all("Provides-Extra") or [])
    assert extras <= listed, extras - listed


def test_changelog_has_this_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert re.search(rf"^## \[{re.escape(satchel.__version__)}\]", changelog, re.MULTILINE)
    assert "(CHANGELOG.md)" in README


def test_every_documented_pip_install_quotes_its_brackets() -> None:
    texts = {"README.md": README, **{
        str(p.relative_to(ROOT)): p.read_text() for p in (ROOT / "src").rglob("*.py")}}
    commands = [(name, m.group(0)) for name, text in texts.items()
                for m in re.finditer(r"pip install [^`\n]*", text)]
    assert len(commands) >= 6
    for name, command in commands:
        for word in command.split():
            if "[" in word:
                assert word[0] in "'\"" or word.startswith("-"), (name, command)


@pytest.mark.slow
def test_the_readme_install_from_a_git_url_installs_hiredis(tmp_path: Path) -> None:
    # The README's command, with this repository's own URL for the placeholder, into a fresh
    # virtualenv driven by the test environment's pip (pip --python).
    line = next(line for line in README.splitlines()
                if line.startswith("pip install 'satchel[redis] @ "))
    args = shlex.split(line.split("#")[0].replace(PLACEHOLDER, f"git+file://{ROOT}"))
    assert args[:2] == ["pip", "install"] and args[2].startswith("satchel[redis] @ git+file")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   timeout=60)
    python = str(venv / "bin" / "python")
    pip = [sys.executable, "-m", "pip", "--python", python]
    installed = subprocess.run([*pip, "install", "-q", *args[2:]], capture_output=True,
                               text=True, timeout=300, check=False)
    assert installed.returncode == 0, installed.stderr[-3000:]
    probe = subprocess.run(
        [python, "-c", "import redis.utils, satchel; "
                       "print(redis.utils.HIREDIS_AVAILABLE, satchel.__file__)"],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    available, location = probe.stdout.split()
    assert available == "True"
    assert location.startswith(str(venv))
    shown = subprocess.run([*pip, "show", "satchel"], capture_output=True, text=True,
                           timeout=60, check=False)
    assert "License-Expression: MIT" in shown.stdout
