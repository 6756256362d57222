"""RedisStore: one session is one Redis hash, saved field by field, expired by Redis's own TTL.

Layout, under a configurable prefix (default ``satchel:``):

* ``satchel:s:{<sid>}`` — a hash.  Session keys are fields ``d:<key>`` holding the codec's text;
  metadata are ``m:created``, ``m:accessed``, ``m:expires`` and ``m:user``.  The ``d:``/``m:``
  split means no user key can collide with metadata.  The braces are a Redis Cluster hash tag,
  so everything about one session lives in one slot.  ``PEXPIREAT`` on ``expires`` lets Redis
  drop the session by itself.
* ``satchel:u:{<user>}`` — a set of the user's session ids, for "log out everywhere".  It is
  maintained lazily: a save adds the id; a session that expires, is deleted or changes user
  leaves a stale member that :meth:`RedisStore.user_sessions` and :meth:`RedisStore.purge`
  check against the session and remove.

Round trips: ``load`` is one ``HGETALL``; ``save``, ``update`` and ``touch`` are one
``EVALSHA`` of a small Lua script that checks the session is there (so a deleted session is
never resurrected) and applies ``HDEL``/``HSET``/``PEXPIREAT`` atomically, so concurrent writers
of different keys never overwrite each other.  ``update`` (a blind write) reads the stored
``m:created`` inside its script to cap the expiry, so it needs no ``load`` first.  In a cluster
the user set lives in another slot: its ``SADD`` rides in the same pipeline round as the script,
sent to its own node.

How the scripts and the hot commands reach the server (the ``EVALSHA``/``EVAL`` fallback, and
on a single server a fast lane past redis-py's per-command layers) is in
:mod:`satchel.stores._redis_wire`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any, cast
from urllib.parse import SplitResult, unquote

import redis
from redis.backoff import NoBackoff
from redis.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AuthenticationError,
    AuthorizationError,
    NoScriptError,
    RedisClusterException,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ..errors import ConfigurationError, SatchelError, StoreTimeout, StoreUnavailable
from ..record import Changes, SessionMeta, SessionRecord, security_log, stored_record
from ._faults import misconfigured
from ._redis_wire import MOVE, SAVE, TAKE, TOUCH, UPDATE, Client, Connections, Script
from .base import BaseStore, url_options

__all__ = ["RedisStore", "from_url"]

# What redis-py raises when Redis cannot serve; RedisClusterException (no RedisError) covers a
# cluster that cannot be reached or does not cover every slot.
_FAILURES = (RedisError, RedisClusterException)

_CREATED, _ACCESSED, _EXPIRES, _USER = "m:created", "m:accessed", "m:expires", "m:user"


def _unavailable(exc: Exception) -> SatchelError:
    """The satchel error for a redis-py failure (raise it ``from exc``): a refused password,
    user or database number is a setting to fix (``StoreMisconfigured``), not an outage."""
    if isinstance(exc, RedisTimeoutError):
        return StoreTimeout(f"redis store timed out ({type(exc).__name__})")
    if isinstance(exc, (AuthenticationError, AuthorizationError)) or (
            isinstance(exc, ResponseError) and str(exc).startswith(_REFUSED)):
        return misconfigured("Redis", exc)
    return StoreUnavailable(f"redis store unavailable ({type(exc).__name__}: {exc})")


# Replies that mean the settings are wrong: the password or user, and the database number.
_REFUSED = ("NOAUTH", "WRONGPASS", "NOPERM", "invalid password", "DB index is out of range",
            "invalid DB index", "ERR DB index")


def _blocking(client: redis.Redis, size: int, timeout: float) -> redis.BlockingConnectionPool:
    """A pool of at most ``size`` connections like ``client``'s (its address, credentials,
    timeouts and TLS), where a caller waits up to ``timeout`` for a free one."""
    pool = client.connection_pool
    return redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
        max_connections=size, timeout=timeout,
        connection_class=pool.connection_class, **pool.connection_kwargs)


def _save_args(sid: str, changes: Changes, meta: SessionMeta) -> list[Any]:
    """The arguments of the SAVE and MOVE scripts (see ``_redis_wire``)."""
    user = meta.user
    deleted = [] if changes.cleared else ["d:" + k for k in changes.deleted]
    if user is None:
        deleted.append(_USER)
    args: list[Any] = [
        "1" if changes.create else "0", "1" if changes.cleared else "0",
        int(meta.expires * 1000), sid, meta.accessed, len(deleted), *deleted,
        _CREATED, repr(meta.created), _ACCESSED, repr(meta.accessed),
        _EXPIRES, repr(meta.expires),
    ]
    if user is not None:
        args += (_USER, user)
    for k, v in changes.set.items():
        args += ("d:" + k, v)
    return args


def _number(text: str | None) -> float | None:
    """A stored time; None when it is missing or not a number (``stored_record`` refuses it)."""
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class RedisStore(BaseStore):
    """Sessions in Redis or Redis Cluster, one hash per session, expired by Redis itself.

    Args:
        host, port, db: the single server to use (ignored with ``cluster`` or ``client``).
        cluster: ``(host, port)`` startup nodes of a Redis Cluster.
        client: an existing ``redis.Redis`` or ``RedisCluster`` to use as is (not closed here);
            it must decode responses (``decode_responses=True``), and its timeouts are its own.
        prefix: prepended to every key; may not contain braces (they are the hash tags).
        max_connections: the size of the connection pool (per node in a cluster; on a single
            server, of each of the two pools: the hot commands' and the others').  When every
            connection is busy a caller waits for one, up to ``timeout``.
        connect_timeout, timeout: seconds to connect and to wait for a reply; an outage or a
            frozen server surfaces as ``StoreUnavailable``/``StoreTimeout`` within them.  A
            session command takes a millisecond or less: a second is ample, and a server that
            stops answering costs a touched request about one second.
        **client_options: passed to redis-py (``username``, ``password``, ``ssl``, ``ssl_*``).
    """

    thread_safe = True
    multiprocess_safe = True
    native_expiry = True

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 6379,
        db: int = 0,
        *,
        cluster: Sequence[tuple[str, int]] | None = None,
        client: Client | None = None,
        prefix: str = "satchel:",
        max_connections: int = 50,
        connect_timeout: float = 1.0,
        timeout: float = 1.0,
        **client_options: Any,
    ) -> None:
        if not isinstance(prefix, str) or "{" in prefix or "}" in prefix:
            raise ConfigurationError("RedisStore: prefix must be a string without braces")
        if not isinstance(max_connections, int) or max_connections < 1:
            raise ConfigurationError("RedisStore: max_connections must be a positive integer")
        for name, value in (("connect_timeout", connect_timeout), ("timeout", timeout)):
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigurationError(f"RedisStore: {name} must be a number of seconds > 0")
        if client is not None and not client.get_encoder().decode_responses:
            raise ConfigurationError("RedisStore: the client must use decode_responses=True")
        self.prefix = prefix
        self._lock = threading.Lock()
        self._owns_client = client is None
        self.is_cluster = isinstance(client, RedisCluster) or (client is None and bool(cluster))
        self._where = "client" if client is not None else (
            ",".join(f"{h}:{p}" for h, p in cluster) if cluster else f"{host}:{port}/{db}")
        # One retry without backoff: enough to replace a pooled connection that died with a
        # restarted server, yet a down server fails fast.  Timeouts are not retried, so a
        # frozen server costs one timeout, and a write that may have landed is not repeated.
        options: dict[str, Any] = {
            "socket_connect_timeout": connect_timeout,
            "socket_timeout": timeout,
            "max_connections": max_connections,
            "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            "decode_responses": True,
            **client_options,
        }
        self._client: Client | None = client
        self._nodes = [(h, int(p)) for h, p in cluster] if cluster else []
        self._options = options
        # The fast lane, for a single server whose client is ours: a given client keeps its
        # own per-command options (retries, single connection), so it takes the usual path.
        self._direct: Connections | None = None
        if client is None and not cluster:
            # redis-py's pools connect lazily and replace their connections after a fork.  A
            # full pool makes a caller wait (up to ``timeout``) rather than fail: a threaded
            # server may run more requests at once than there are connections.  The fast
            # lane keeps its connections, so it has a pool of its own.
            plain = redis.Redis(host=host, port=port, db=db, **options)
            self._client = redis.Redis(connection_pool=_blocking(plain, max_connections, timeout))
            self._direct = Connections(_blocking(plain, max_connections, timeout),
                                       max_connections, timeout)

    # -- the client ---------------------------------------------------------------------------

    def client(self) -> Client:
        """The redis-py client; a cluster's is built on first use, so a cluster that is down at
        start-up fails the requests that need it rather than the application's start."""
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                try:
                    nodes = [ClusterNode(h, p) for h, p in self._nodes]  # type: ignore[no-untyped-call]
                    self._client = RedisCluster(startup_nodes=nodes, **self._options)
                except _FAILURES as exc:
                    raise _unavailable(exc) from exc
            return self._client

    def session_key(self, sid: str) -> str:
        """The Redis key of a session: ``<prefix>s:{<sid>}``; the braces pin it to one slot."""
        return f"{self.prefix}s:{{{sid}}}"

    def user_key(self, user: str) -> str:
        """The Redis key of a user's set of session ids."""
        return f"{self.prefix}u:{{{user}}}"

    def _script(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run ``script`` on the server of its keys (a single server, or one cluster slot)."""
        direct = self._direct
        if direct is None:
            return script.run(self.client(), keys, args)
        return direct.run(script, keys, args)

    # -- the contract -------------------------------------------------------------------------

    def load(self, sid: str) -> SessionRecord | None:
        key = self.session_key(sid)
        direct = self._direct
        try:
            try:
                if direct is None:
                    raw = cast("dict[str, str]", self.client().hgetall(key))
                else:
                    raw = direct.hgetall(key)
            except UnicodeDecodeError:
                raw = self._hgetall_text(key)
        except _FAILURES as exc:
            raise _unavailable(exc) from exc
        expires = raw.pop(_EXPIRES, None)
        if expires is None:
            return None
        user = raw.pop(_USER, None)
        created, accessed = raw.pop(_CREATED, None), raw.pop(_ACCESSED, None)
        data = {field[2:]: value for field, value in raw.items() if field[:2] == "d:"}
        record = stored_record(data, _number(created), _number(accessed), _number(expires),
                               user, "RedisStore")
        if record is None or record.expires <= time.time():
            return None
        return record

    def _hgetall_text(self, key: str) -> dict[str, str]:
        """``HGETALL`` read as bytes, keeping the fields and values that are UTF-8 text.

        Whoever reaches Redis can store any bytes; what is not text is no session's (the
        client decodes every reply, so one such value would otherwise fail the whole load).
        """
        direct = self._direct
        if direct is None:
            reply: Any = self.client().execute_command(  # type: ignore[no-untyped-call]
                "HGETALL", key, NEVER_DECODE=True)
        else:
            reply = direct.call("HGETALL", key, decode=False)
        pairs = list(reply.items()) if isinstance(reply, dict) else list(zip(
            reply[::2], reply[1::2], strict=True))
        text = {}
        for field, value in pairs:
            try:
                text[field.decode()] = value.decode()
            except UnicodeDecodeError:
                continue
        if len(text) < len(pairs):
            security_log.warning("RedisStore: dropped %d stored field(s) that are not UTF-8 text",
                                 len(pairs) - len(text))
        return text

    def save(self, sid: str, changes: Changes, meta: SessionMeta) -> bool:
        key = self.session_key(sid)
        user = meta.user
        args = _save_args(sid, changes, meta)
        try:
            if user is None:
                done = self._script(SAVE, [key], args)
            elif not self.is_cluster:
                done = self._script(SAVE, [key, self.user_key(user)], args)
            else:
                done = self._save_cluster(self.client(), key, self.user_key(user), sid, args)
        except _FAILURES as exc:
            raise _unavailable(exc) from exc
        return bool(done)

    def _save_cluster(self, client: Client, key: str, user_key: str, sid: str,
                      args: list[Any]) -> Any:
        # The user set is in another slot: its SADD is a separate command in the same round.
        # A SADD for a save that did not happen leaves a stale member, cleaned when read.
        # The script's node is named: left to find it, redis-py's cluster pipeline would first
        # ask the server for the keys of EVALSHA (COMMAND GETKEYS), an extra round trip.
        node = cast("RedisCluster", client).get_node_from_key(key)  # type: ignore[no-untyped-call]
        for command, script in (("EVALSHA", SAVE.sha), ("EVAL", SAVE.text)):
            pipe = client.pipeline(transaction=False)
            pipe.execute_command(command, script, 1, key, *args, target_nodes=node)
            pipe.sadd(user_key, sid)
            done, added = pipe.execute(raise_on_error=False)
            for result in (done, added):
                if isinstance(result, NoScriptError):
                    break
                if isinstance(result, Exception):
                    raise result
            else:
                return done
        raise RedisError("the save script could not be run")  # EVAL never answers NOSCRIPT

    def move(self, old: str, new: str, changes: Changes, meta: SessionMeta) -> bool:
        """On one server, one script renames the hash and applies the changes (a write to
        ``old`` runs wholly before it, or finds nothing).  A cluster keeps the two ids in
        different slots: a script takes the hash (reads and deletes it at once), then the
        changed session is saved under ``new``; a write to ``old`` after the take finds
        nothing.  (Should the save fail, the session is lost: its user logs in again.)"""
        if self.is_cluster:
            return self._move_across(old, new, changes, meta)
        keys = [self.session_key(old), self.session_key(new)]
        if meta.user is not None:
            keys.append(self.user_key(meta.user))
        try:
            return bool(self._script(MOVE, keys, _save_args(new, changes, meta)))
        except _FAILURES as exc:
            raise _unavailable(exc) from exc

    def _move_across(self, old: str, new: str, changes: Changes, meta: SessionMeta) -> bool:
        try:
            taken = self._script(TAKE, [self.session_key(old)], [meta.accessed])
        except _FAILURES as exc:
            raise _unavailable(exc) from exc
        if not taken:
            return False
        fields = dict(zip(taken[::2], taken[1::2], strict=True)) if isinstance(
            taken, list) else dict(taken)
        data = {field[2:]: value for field, value in fields.items() if field[:2] == "d:"}
        whole = Changes(set=changes.apply(data), cleared=True, create=True)
        return self.save(new, whole, meta)

    def update(self, sid: str, changes: Changes, accessed: float, expires: float,
               lifetime: float | None) -> bool:
        """A blind write in one ``EVALSHA``: the script reads the stored created time itself
        to cap the expiry, and keeps the stored created time and user (see
        ``_redis_wire.UPDATE``)."""
        deleted = () if changes.cleared else ["d:" + k for k in changes.deleted]
        # Floats go as they are: redis-py and hiredis both write a float as its repr.
        args: list[Any] = [
            accessed, accessed, expires, "" if lifetime is None else lifetime,
            "1" if changes.cleared else "0", "" if expires == math.inf else int(expires * 1000),
            len(deleted), *deleted,
        ]
        for k, v in changes.set.items():
            args += ("d:" + k, v)
        try:
            done = self._script(UPDATE, [self.session_key(sid)], args)
        except _FAILURES as exc:
            raise _unavailable(exc) from exc
        return bool(done)

    def touch(self, sid: str, accessed: float, expires: float) -> bool:
        args = [repr(accessed), repr(expires), int(expires * 1000)]
        try:
            done = self._script(TOUCH, [self.session_key(sid)], args)
        except _FAILURES as exc:
            raise _unavailable(exc) from exc
        return bool(done)

    def delete(self, sid: str) -> bool:
        try:
            return bool(self.client().delete(self.session_key(sid)))
        except _FAILURES as exc:
            raise _unavailable(exc) from exc

    def exists(self, sid: str) -> bool:
        try:
            return bool(self.client().exists(self.session_key(sid)))
        except _FAILURES as exc:
            raise _unavailable(exc) from exc

    def purge(self, now: float | None = None) -> int:
        """Redis expires sessions by itself, so this only removes stale members of the user
        index (sessions that expired, were deleted or changed user).  Its cost grows with the
        number of users, not of sessions.  Returns 0: no session is removed here.
        """
        try:
            users = [key[len(self.prefix) + 3:-1] for key in self._scan("u:{*}")]
        except _FAILURES as exc:
            raise _unavailable(exc) from exc
        for user in users:
            self.user_sessions(user)
        return 0

    def ids(self) -> Iterator[str]:
        """Scan (every master, in a cluster) for session keys; the order is Redis's."""
        start = len(self.prefix) + 3
        try:
            for key in self._scan("s:{*}"):
                yield key[start:-1]
        except _FAILURES as exc:
            raise _unavailable(exc) from exc

    def count(self) -> int:
        return sum(1 for _ in self.ids())

    def _scan(self, pattern: str) -> Iterator[str]:
        match = _glob_escape(self.prefix) + pattern
        client = self.client()
        if isinstance(client, RedisCluster):
            return cast("Iterator[str]", client.scan_iter(
                match=match, count=1000, target_nodes=RedisCluster.PRIMARIES))
        return cast("Iterator[str]", client.scan_iter(match=match, count=1000))

    def user_sessions(self, user: str) -> list[str]:
        """The user's live session ids; members that no longer belong to the user are removed."""
        user_key = self.user_key(user)
        try:
            client = self.client()
            sids = sorted(cast("set[str]", client.smembers(user_key)))
            if not sids:
                return []
            pipe = client.pipeline(transaction=False)
            for sid in sids:
                pipe.hget(self.session_key(sid), _USER)
            owners = pipe.execute()
            live = [sid for sid, owner in zip(sids, owners, strict=True) if owner == user]
            stale = [sid for sid, owner in zip(sids, owners, strict=True) if owner != user]
            if stale:
                client.srem(user_key, *stale)
        except _FAILURES as exc:
            raise _unavailable(exc) from exc
        return live

    def delete_user(self, user: str) -> int:
        """Delete every session of ``user`` in one pipelined round; return how many."""
        sids = self.user_sessions(user)
        if not sids:
            return 0
        try:
            client = self.client()
            pipe = client.pipeline(transaction=False)
            for sid in sids:
                pipe.delete(self.session_key(sid))
            pipe.srem(self.user_key(user), *sids)
            removed = pipe.execute()[:-1]
        except _FAILURES as exc:
            raise _unavailable(exc) from exc
        return sum(1 for n in removed if n)

    def close(self) -> None:
        # redis-py reconnects a closed client on use; the contract asks no more of close().
        client = self._client
        if self._direct is not None:
            self._direct.close()
        if client is not None and self._owns_client:
            client.close()

    def __enter__(self) -> RedisStore:
        return self

    def __repr__(self) -> str:
        kind = "cluster" if self.is_cluster else "server"
        return f"<RedisStore {kind} {self._where} prefix={self.prefix!r}>"


def from_url(parsed: SplitResult, **options: Any) -> RedisStore:
    """``redis://[user:password@]host[:port][/db]``, ``rediss://...`` (TLS) and
    ``redis+cluster://host:port,host:port,...``.

    Query parameters: ``prefix``, ``max_connections``, ``timeout``, ``connect_timeout``, and for
    TLS ``ssl_ca_certs``, ``ssl_certfile``, ``ssl_keyfile``, ``ssl_cert_reqs``
    (``required``/``optional``/``none``), ``ssl_check_hostname``; ``ssl=true`` enables TLS in a
    cluster.  Keyword ``options`` override the URL.
    """
    scheme = parsed.scheme.lower()
    query = url_options(parsed)
    kwargs: dict[str, Any] = {}
    for name, convert in (("prefix", str), ("max_connections", int), ("timeout", float),
                          ("connect_timeout", float), ("ssl_ca_certs", str),
                          ("ssl_certfile", str), ("ssl_keyfile", str), ("ssl_cert_reqs", str),
                          ("ssl_check_hostname", _flag), ("ssl", _flag)):
        if name in query:
            try:
                kwargs[name] = convert(query.pop(name))
            except ValueError:
                raise ConfigurationError(f"{scheme}://: {name} has a malformed value") from None
    if query:
        raise ConfigurationError(f"{scheme}://: unknown option(s) {sorted(query)}")
    if scheme == "rediss":
        kwargs["ssl"] = True
    userinfo, _, hosts = parsed.netloc.rpartition("@")
    if userinfo:
        username, has_password, password = userinfo.partition(":")
        if username:
            kwargs["username"] = unquote(username)
        if has_password:
            kwargs["password"] = unquote(password)
    nodes = [_host_port(part, scheme) for part in hosts.split(",")] if hosts else []
    path = parsed.path.strip("/")
    if scheme == "redis+cluster":
        if not nodes:
            raise ConfigurationError("redis+cluster:// needs at least one host:port")
        if path not in ("", "0"):
            raise ConfigurationError("redis+cluster:// has only database 0")
        kwargs["cluster"] = nodes
    else:
        if len(nodes) > 1:
            raise ConfigurationError(f"{scheme}:// takes one host (use redis+cluster://)")
        if nodes:
            kwargs["host"], kwargs["port"] = nodes[0]
        if path:
            if not path.isdigit():
                raise ConfigurationError(f"{scheme}://: the path must be a database number")
            kwargs["db"] = int(path)
    kwargs.update(options)
    return RedisStore(**kwargs)


def _host_port(text: str, scheme: str) -> tuple[str, int]:
    host, port = text, "6379"
    if text.startswith("["):  # [IPv6]:port
        host, _, rest = text[1:].partition("]")
        if rest:
            port = rest.removeprefix(":")
    elif ":" in text:
        host, _, port = text.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigurationError(f"{scheme}://: {text!r} is not host:port")
    return host, int(port)


def _flag(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(text)
