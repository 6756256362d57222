"""Beaker's session options, mapped onto satchel's settings: one table, no second session.

Every Beaker option name is either translated into :class:`satchel.Settings` options or refused
with a ``ConfigurationError`` naming it; nothing is silently dropped.  Values may be Python
values or the strings an ``.ini`` file yields (``"true"``, ``"3600"``, ``"none"``).  The README's
"Moving from Beaker / Pylons" table is this module, in words.
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ...errors import ConfigurationError
from ...keys import MIN_SECRET_BYTES

__all__ = ["PREFIXES", "Translation", "collect", "translate"]

security_log = logging.getLogger("satchel.security")

#: Beaker reads ``beaker.session.key`` and ``session.key`` alike (and bare names in keywords).
PREFIXES = ("beaker.session.", "session.")

#: Beaker's ``type`` names -> how satchel keeps the sessions (see :func:`_store`).
TYPES = ("memory", "file", "dbm", "cookie", "ext:redis", "ext:rediscluster", "ext:memcached",
         "ext:database")

# A session's idle expiry can be off (Beaker's default ``timeout = None``); satchel then keeps
# its absolute lifetime, one day, unless a longer Beaker timeout asks for more.
_DEFAULT_ABSOLUTE = 86400
# save_accessed_time = false: access times are never written (a touch interval of ~68 years).
_NEVER = float(2**31)
_STRETCH_ROUNDS = 200_000

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


@dataclass
class Translation:
    """What :func:`translate` returns: satchel settings plus the facade's own two flags."""

    settings: dict[str, Any] = field(default_factory=dict)
    auto: bool = False
    webtest_varname: str | None = None
    #: Beaker's own ``secret``, kept as given, when ``legacy_ids`` must read the old cookies
    #: Beaker signed with it (see :func:`satchel.compat.beaker.middleware.unsign_cookie`).
    legacy_secret: str | None = None


def collect(config: Mapping[str, Any] | None, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Beaker's rule for where options come from.

    From ``config`` (a Pylons or PasteDeploy configuration shared by many components) only the
    prefixed keys; from keyword arguments the prefixed keys and the bare ones.  Keywords win.
    """
    options: dict[str, Any] = {}
    for source, bare in ((config or {}, False), (kwargs, True)):
        for key, value in source.items():
            for prefix in PREFIXES:
                if key.startswith(prefix):
                    options[key[len(prefix):]] = value
                    break
            else:
                if bare:
                    options[key] = value
    return options


def translate(options: Mapping[str, Any]) -> Translation:
    """Map Beaker options onto satchel settings; raise ``ConfigurationError`` naming any option
    that satchel cannot honour."""
    opts = dict(options)
    known = set(_HANDLERS) | set(_STORE_OPTIONS) | set(_PASSTHROUGH)
    unknown = sorted(set(opts) - known)
    if unknown:
        raise ConfigurationError(
            f"Beaker option(s) {', '.join(unknown)} are unknown to satchel.compat.beaker; "
            f"known: {', '.join(sorted(known))}"
        )
    out = Translation()
    settings = out.settings
    settings["cookie_name"] = "beaker.session.id"
    settings["cookie_path"] = "/"  # Beaker's default: one cookie for the whole site
    settings["explicit_save"] = True
    settings["save_empty"] = True  # Beaker stores every session it saves, empty or not
    settings["idle_timeout"] = None
    for name, value in opts.items():
        handler = _HANDLERS.get(name)
        if handler is not None:
            handler(name, value, out)
        elif name in _PASSTHROUGH:
            settings[name] = _PASSTHROUGH[name](name, value)
    _store(opts, settings)
    if settings.get("transport") == "none" and settings["store"] == "cookie://":
        raise ConfigurationError(
            "Beaker options use_cookies = false and type = cookie contradict each other: "
            "a cookie session lives in its cookie"
        )
    _timeouts(opts, settings)
    if settings.get("legacy_ids"):
        out.legacy_secret = _text("secret", opts.get("secret"))
    return out


# -- value coercion ------------------------------------------------------------------------------

def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise ConfigurationError(f"Beaker option {name} must be true or false, not {value!r}")


def _none(value: Any) -> bool:
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))


def _seconds(name: str, value: Any) -> float | None:
    if _none(value):
        return None
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                return float(value.strip())
            except ValueError:
                pass
    raise ConfigurationError(f"Beaker option {name} must be a number of seconds, not {value!r}")


def _text(name: str, value: Any) -> str | None:
    if _none(value):
        return None
    if isinstance(value, str):
        return value.strip()
    raise ConfigurationError(f"Beaker option {name} must be a string, not {type(value).__name__}")


def _key(name: str, value: Any) -> str | bytes | None:
    """A Beaker key or secret, as a satchel secret.

    Beaker takes keys of any length; satchel's secrets are at least 16 bytes.  A shorter key is
    stretched with PBKDF2-HMAC-SHA256 (which slows guessing, but adds no entropy) and a warning
    says to replace it.
    """
    text = _text(name, value) if not isinstance(value, bytes) else value
    if text is None:
        return None
    raw = text.encode("utf-8") if isinstance(text, str) else text
    if not raw:
        raise ConfigurationError(f"Beaker option {name} is empty")
    if len(raw) >= MIN_SECRET_BYTES:
        return text
    security_log.warning(
        "Beaker option %s is shorter than %d bytes; it is stretched with PBKDF2, but replace it "
        "with a long random one (secrets.token_urlsafe(32))", name, MIN_SECRET_BYTES)
    return _stretch(raw)


@functools.lru_cache(maxsize=16)
def _stretch(raw: bytes) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", raw, b"satchel.compat.beaker", _STRETCH_ROUNDS)


# -- one handler per Beaker option ---------------------------------------------------------------

def _set(target: str, coerce: Callable[[str, Any], Any]) -> Callable[[str, Any, Translation], None]:
    def handle(name: str, value: Any, out: Translation) -> None:
        out.settings[target] = coerce(name, value)
    return handle


def _refuse(reason: str) -> Callable[[str, Any, Translation], None]:
    def handle(name: str, value: Any, out: Translation) -> None:
        raise ConfigurationError(f"Beaker option {name} is not supported: {reason}")
    return handle


def _only(allowed: set[Any], reason: str) -> Callable[[str, Any, Translation], None]:
    def handle(name: str, value: Any, out: Translation) -> None:
        given = value.strip().lower() if isinstance(value, str) else value
        if given not in allowed and not (None in allowed and _none(value)):
            raise ConfigurationError(f"Beaker option {name} = {value!r} is not supported: {reason}")
    return handle


def _auto(name: str, value: Any, out: Translation) -> None:
    out.auto = _bool(name, value)
    out.settings["explicit_save"] = not out.auto


def _secure(name: str, value: Any, out: Translation) -> None:
    # Beaker's false means "never Secure"; satchel's None still sets it on https requests,
    # where it can only help (the cookie is then never sent over plain http).
    out.settings["cookie_secure"] = True if _bool(name, value) else None


def _samesite(name: str, value: Any, out: Translation) -> None:
    # Only Python's None (or an empty value) means "no attribute": the string "None" is
    # SameSite=None, as Beaker passes it on.
    if value is None or (isinstance(value, str) and not value.strip()):
        out.settings["cookie_samesite"] = None
        return
    if not isinstance(value, str):
        raise ConfigurationError(f"Beaker option {name} must be Lax, Strict, None or empty")
    out.settings["cookie_samesite"] = value.strip()


def _cookie_expires(name: str, value: Any, out: Translation) -> None:
    # True: a browser-session cookie.  False, seconds or a timedelta: a persistent cookie whose
    # Max-Age is the session's remaining lifetime; a cookie that outlives its session is of no
    # use, and one that dies first only logs the user out early (that is the timeout's job).
    if isinstance(value, _dt.datetime):
        raise ConfigurationError(
            f"Beaker option {name} as a fixed date is not supported: the cookie follows the "
            "session's expiry; give true (browser session) or false (persistent)"
        )
    if isinstance(value, (bool, str)) and (isinstance(value, bool)
                                           or value.strip().lower() in _TRUE | _FALSE):
        out.settings["persistent"] = not _bool(name, value)
        return
    seconds = _seconds(name, value)
    if seconds is None or seconds <= 0:
        raise ConfigurationError(f"Beaker option {name} must be true, false or seconds > 0")
    out.settings["persistent"] = True


def _save_accessed_time(name: str, value: Any, out: Translation) -> None:
    if not _bool(name, value):
        out.settings["touch_interval"] = _NEVER


def _serializer(name: str, value: Any, out: Translation) -> None:
    if isinstance(value, str):
        kind = value.strip().lower()
        if kind == "json":
            out.settings["pickle"] = False
            return
        if kind == "pickle":
            # Naming pickle is the opt-in; satchel then signs every pickled value with the
            # secret and never unpickles one whose signature fails.
            out.settings["pickle"] = True
            return
    elif all(callable(getattr(value, m, None)) for m in ("encode", "decode", "check")):
        out.settings["codec"] = value  # a satchel codec
        return
    raise ConfigurationError(
        f"Beaker option {name} = {value!r} is not supported: use json (satchel's tagged JSON, "
        "the default), pickle (signed), or a satchel codec object"
    )


def _use_cookies(name: str, value: Any, out: Translation) -> None:
    out.settings["transport"] = "cookie" if _bool(name, value) else "none"


def _webtest(name: str, value: Any, out: Translation) -> None:
    out.webtest_varname = _text(name, value)


_HANDLERS: dict[str, Callable[[str, Any, Translation], None]] = {
    "key": _set("cookie_name", _text),
    "cookie_domain": _set("cookie_domain", _text),
    "cookie_path": _set("cookie_path", _text),
    "secure": _secure,
    "httponly": _set("cookie_httponly", _bool),
    "samesite": _samesite,
    "cookie_expires": _cookie_expires,
    "auto": _auto,
    "save_accessed_time": _save_accessed_time,
    "data_serializer": _serializer,
    "use_cookies": _use_cookies,
    "webtest_varname": _webtest,
    "invalidate_corrupt": _only(
        {True, "true", "yes", "on", "1"},
        "satchel always reads a corrupt or tampered session as a new one (with a warning on "
        "the satchel.security logger); raising instead would let any client cause errors",
    ),
    "crypto_type": _only(
        {"default", "cryptography"},
        "satchel seals cookies with the cryptography package's AES-256-GCM only",
    ),
    "log_file": _only({None}, "satchel logs through the logging module (logger 'satchel')"),
    "id": _refuse("a fixed id, given in advance, is what session fixation exploits; "
                  "use get_by_id() to reach an existing session"),
    "id_generator": _refuse("satchel's ids are 256 random bits from the secrets module"),
    "encrypt_nonce_bits": _refuse("AES-GCM's nonce is 96 random bits, not configurable"),
    "namespace_class": _refuse("satchel's stores are chosen by type or store URL"),
    "session_class": _refuse("satchel has one session class"),
}

# Options read together by _store and _timeouts.
_STORE_OPTIONS = ("type", "data_dir", "url", "table_name", "lock_dir", "memcache_module",
                  "secret", "validate_key", "encrypt_key", "timeout")


def _passthrough_number(name: str, value: Any) -> float | None:
    return _seconds(name, value)


def _passthrough_text(name: str, value: Any) -> str | None:
    return _text(name, value)


# satchel's own options that Beaker lacks, accepted under the same prefixes.
_PASSTHROUGH: dict[str, Callable[[str, Any], Any]] = {
    "legacy_ids": _bool,
    "absolute_timeout": _passthrough_number,
    "touch_interval": _passthrough_number,
    "auto_purge_every": _passthrough_number,
    "on_unavailable": _passthrough_text,
}


def _timeouts(opts: Mapping[str, Any], settings: dict[str, Any]) -> None:
    timeout = _seconds("timeout", opts.get("timeout"))
    if timeout is not None and timeout <= 0:
        raise ConfigurationError("Beaker option timeout must be a number of seconds > 0")
    if timeout is not None and settings.get("touch_interval") == _NEVER:
        raise ConfigurationError(
            "Beaker options timeout and save_accessed_time = false contradict each other: "
            "an idle timeout needs the access time (Beaker refuses them too)"
        )
    settings["idle_timeout"] = timeout
    if "absolute_timeout" not in settings:
        longer = timeout is not None and timeout > _DEFAULT_ABSOLUTE
        settings["absolute_timeout"] = None if longer else _DEFAULT_ABSOLUTE


# -- the store -----------------------------------------------------------------------------------

def _store(opts: Mapping[str, Any], settings: dict[str, Any]) -> None:
    kind = _text("type", opts.get("type"))
    data_dir = _text("data_dir", opts.get("data_dir"))
    url = _text("url", opts.get("url"))
    table = _text("table_name", opts.get("table_name"))
    _text("lock_dir", opts.get("lock_dir"))  # satchel locks in place; no lock directory needed
    module = _text("memcache_module", opts.get("memcache_module"))
    secret = _key("secret", opts.get("secret"))
    validate_key = _key("validate_key", opts.get("validate_key"))
    encrypt_key = _key("encrypt_key", opts.get("encrypt_key"))
    if kind is None:
        kind = "file" if data_dir else "memory"  # Beaker's rule
    kind_l = kind.lower()
    if table is not None and kind_l != "ext:database":
        raise ConfigurationError("Beaker option table_name applies only to type = ext:database")
    if module not in (None, "auto"):
        raise ConfigurationError(
            f"Beaker option memcache_module = {module!r} is not supported: satchel talks to "
            "memcached through pymemcache (pip install 'satchel[memcached]')"
        )
    if encrypt_key is not None and kind_l != "cookie":
        raise ConfigurationError(
            "Beaker option encrypt_key is supported only with type = cookie: satchel does not "
            "encrypt server-side records (keep the store's access private instead)"
        )
    if kind_l == "cookie":
        keys = [k for k in (encrypt_key, validate_key, secret) if k is not None]
        if not keys:
            raise ConfigurationError(
                "Beaker option type = cookie needs validate_key (or encrypt_key or secret): "
                "the key that seals the cookie"
            )
        # The first key seals, every key opens; satchel always encrypts (AES-256-GCM).
        settings["secret"] = list(dict.fromkeys(keys))
        settings["store"] = "cookie://"
        return
    secret_keys = [k for k in (secret, validate_key) if k is not None]
    if secret_keys:
        settings["secret"] = list(dict.fromkeys(secret_keys))
    settings["store"] = _server_store(kind, kind_l, data_dir, url, table)


def _server_store(kind: str, kind_l: str, data_dir: str | None, url: str | None,
                  table: str | None) -> str:
    if "://" in kind:
        return kind  # a satchel store URL
    if kind_l == "memory":
        return "memory://"
    if kind_l in ("file", "dbm"):
        if not data_dir:
            raise ConfigurationError(f"Beaker option type = {kind} needs data_dir")
        directory = os.path.abspath(data_dir)
        if kind_l == "file":
            return "file://" + directory
        # dbm: one embedded database file; satchel's embedded database is SQLite.
        os.makedirs(directory, mode=0o700, exist_ok=True)
        return "sqlite:///" + os.path.join(directory, "sessions.sqlite3")
    if kind_l not in ("ext:redis", "ext:rediscluster", "ext:memcached", "ext:database"):
        raise ConfigurationError(
            f"Beaker option type = {kind!r} is not supported; use one of {', '.join(TYPES)} "
            "or a satchel store URL (sqlite:///..., postgresql://..., ...)"
        )
    if not url:
        raise ConfigurationError(f"Beaker option type = {kind} needs url")
    if kind_l == "ext:redis":
        return url if "://" in url else "redis://" + url
    if kind_l == "ext:rediscluster":
        # Beaker: redis URLs separated by commas; satchel: one URL listing host:port pairs.
        nodes = (u.strip().split("://", 1)[-1].split("/", 1)[0] for u in url.split(","))
        return "redis+cluster://" + ",".join(n for n in nodes if n)
    if kind_l == "ext:memcached":
        # Beaker: host:port pairs separated by semicolons.
        return "memcached://" + ",".join(u.strip() for u in url.split(";") if u.strip())
    return _database_url(url, table)


def _database_url(url: str, table: str | None) -> str:
    """An SQLAlchemy URL (Beaker's ext:database) as a satchel store URL."""
    scheme, sep, rest = url.partition("://")
    dialect = scheme.split("+", 1)[0].lower()
    if not sep or dialect not in ("postgresql", "postgres", "mysql", "mariadb", "sqlite"):
        raise ConfigurationError(
            "Beaker option url for ext:database must be a PostgreSQL, MySQL/MariaDB or SQLite "
            "SQLAlchemy URL (postgresql://..., mysql+pymysql://..., sqlite:///...)"
        )
    if dialect == "sqlite":
        if table is not None:
            raise ConfigurationError(
                "Beaker option table_name is not supported with SQLite: satchel's SQLite "
                "store keeps its own two tables"
            )
        return "sqlite://" + rest
    target = "postgresql" if dialect in ("postgresql", "postgres") else "mysql"
    if table is not None:
        rest += ("&" if "?" in rest else "?") + "table=" + table
    return f"{target}://{rest}"
