"""The ``satchel`` command: the demo server and small operations over a store URL.

Every failure the operator can fix (a bad URL, a store that cannot be reached, a port in use)
is one line on stderr and an exit status scripts can trust:

- 0: done;
- 1: not found (no such session, no session of that user), a migration that could not copy
  every session, or the demo's port in use;
- 2: a usage or configuration mistake (a bad URL or option, a store that does not exist, a
  store that cannot do this: memcached cannot list its sessions);
- 3: the store is unavailable (unreachable, timed out, failed).

Tracebacks are kept for satchel's own bugs.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from . import __version__
from .errors import ConfigurationError, SatchelError
from .operations import add_commands, open_existing
from .stores import Store, masked_url, open_store

__all__ = ["default_demo_store_url", "main"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3

DEMO_DATA_DIR = "satchel-data"
DEMO_DB_NAME = "demo-sessions.sqlite3"


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    command: Callable[[argparse.Namespace], int] = args.func
    try:
        return command(args)
    except ConfigurationError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except NotImplementedError as exc:
        # A store that cannot do this operation (memcached cannot list its keys).
        _error(str(exc) or f"the store cannot {args.command}")
        return EXIT_USAGE
    except SatchelError as exc:
        _error(f"store error: {exc}")
        return EXIT_UNAVAILABLE
    except OSError as exc:
        _error(exc.strerror or str(exc))
        return EXIT_FAILURE


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="satchel", description="Persistent sessions for Python web applications.")
    parser.add_argument("--version", action="version", version=f"satchel {__version__}")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)

    demo = sub.add_parser("demo", help="serve the demo application",
                          description="Serve the demo application (Ctrl-C to stop).")
    demo.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    demo.add_argument("--port", type=int, default=8080, help="port to bind (default: %(default)s)")
    demo.add_argument("--store", metavar="URL", default=None,
                      help=f"store URL (default: SQLite in ./{DEMO_DATA_DIR}/{DEMO_DB_NAME})")
    demo.add_argument("--quixote", action="store_true",
                      help="serve the demo as a Quixote application (needs satchel[quixote])")
    demo.set_defaults(func=_demo, command="demo")

    for name, func, text in (
        ("purge", _purge, "remove expired sessions and print how many were removed"),
        ("count", _count, "print how many live sessions the store holds"),
        ("setup", _setup, "create the store's tables or indexes, where it has any"),
    ):
        cmd = sub.add_parser(name, help=text, description=text[0].upper() + text[1:] + ".")
        cmd.add_argument("url", metavar="URL", help="store URL, e.g. sqlite:////var/lib/app.db")
        cmd.set_defaults(func=func, command=name)

    add_commands(sub)

    migrate = sub.add_parser("migrate", help="copy live sessions from Beaker, Session3, Pesto "
                             "or another store", description=_migrate_doc())
    _migrate_arguments(migrate)
    migrate.set_defaults(func=_migrate, command="migrate")
    return parser


# -- commands ------------------------------------------------------------------------------------


def _demo(args: argparse.Namespace) -> int:
    from .demo import bind, make_app, serve

    if not 0 <= args.port <= 65535:
        raise ConfigurationError(f"--port {args.port} is not a TCP port number")
    if args.quixote:
        try:
            from .demo_quixote import make_app as make_quixote_app
        except ImportError as exc:
            raise ConfigurationError(
                "the Quixote demo needs Quixote: pip install 'satchel[quixote]'") from exc
    server = bind(args.host, args.port)  # first: a busy port leaves nothing behind
    try:
        url = args.store or default_demo_store_url()
        app = make_quixote_app(url) if args.quixote else make_app(url)
    except BaseException:
        server.server_close()
        raise
    kind = " (Quixote)" if args.quixote else ""
    print(f"satchel demo{kind}: sessions kept in {masked_url(url)}", flush=True)
    serve(app, out=sys.stdout, server=server)
    return EXIT_OK


def _purge(args: argparse.Namespace) -> int:
    with open_existing(args.url, "purge") as store:
        removed = store.purge()
    print(f"removed {removed} expired session{'' if removed == 1 else 's'}")
    return EXIT_OK


def _count(args: argparse.Namespace) -> int:
    with open_existing(args.url, "count") as store:
        print(store.count())
    return EXIT_OK


def _setup(args: argparse.Namespace) -> int:
    with _open(args.url) as store:
        setup = getattr(store, "setup", None)
        if not callable(setup):
            print(f"nothing to set up: {type(store).__name__} needs no separate set-up step")
            return EXIT_OK
        setup()
    print(f"{type(store).__name__} is set up")
    return EXIT_OK


def _migrate(args: argparse.Namespace) -> int:
    from .migrate import run

    return run(args)


def _migrate_arguments(cmd: argparse.ArgumentParser) -> None:
    from .migrate import add_arguments

    add_arguments(cmd)


def _migrate_doc() -> str:
    return ("Copy live sessions into a satchel store, keeping browsers logged in; the source is "
            "only read. Exit status 1 when any session could not be copied.")


# -- helpers -------------------------------------------------------------------------------------


def default_demo_store_url() -> str:
    """A SQLite file in ``./satchel-data/`` (created, private to this user)."""
    directory = Path.cwd() / DEMO_DATA_DIR
    directory.mkdir(mode=0o700, exist_ok=True)
    return "sqlite:///" + str(directory / DEMO_DB_NAME)


def _open(url: str) -> Store:
    return open_store(url)


def _error(message: str) -> None:
    print(f"satchel: error: {message}", file=sys.stderr)
