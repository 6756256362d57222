"""What a new user meets when installing: the package's metadata and the missing-extra errors.

The missing-library cases run in a subprocess that blocks the client library's import
(``sys.modules[name] = None`` makes ``import name`` fail as if it were not installed), so the
test suite's own environment, which has every extra, stays as it is.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

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
