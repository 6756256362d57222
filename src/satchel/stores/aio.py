"""Async faces of stores: what the ASGI front door awaits, one face per store.

A face has the store's methods as coroutines, under the same names, so the engine's steps run
unchanged on either face (``engine.run`` on the store, ``engine.run_async`` on its face).
A store whose calls never wait on I/O (``blocking = False``: memory) is called inline; a store
that offers a native face (``store.async_face()``) gives it; any other store runs in a bounded
pool of threads, so the event loop never waits on a socket, a file lock or a disk.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any

__all__ = ["DEFAULT_THREADS", "DirectFace", "ThreadFace", "async_face"]

#: Threads per process that may wait on a sync store at once; more calls queue for a thread.
DEFAULT_THREADS = 16

AsyncCall = Callable[..., Awaitable[Any]]


def async_face(store: Any, *, threads: int = DEFAULT_THREADS) -> Any:
    """The async face of ``store``: native if it has one, inline if it never blocks, else
    its calls in a pool of at most ``threads`` threads."""
    native = getattr(store, "async_face", None)
    if native is not None:
        return native()
    if not getattr(store, "blocking", True):
        return DirectFace(store)
    return ThreadFace(store, threads=threads)


class DirectFace:
    """A store whose calls never wait on I/O, awaited as it is: no thread hop."""

    def __init__(self, store: Any) -> None:
        self.store = store

    def __getattr__(self, name: str) -> AsyncCall:
        method = getattr(self.store, name)

        async def direct(*args: Any, **kwargs: Any) -> Any:
            return method(*args, **kwargs)

        setattr(self, name, direct)  # made once per method
        return direct

    async def aclose(self) -> None:
        """Close the store."""
        self.store.close()


class ThreadFace:
    """Any sync store, run in a bounded pool of threads.

    The pool is made on first use in each process: a child after ``fork`` never waits on its
    parent's threads (which it does not have).  The store must be ``thread_safe``.
    """

    def __init__(self, store: Any, *, threads: int = DEFAULT_THREADS) -> None:
        if type(threads) is not int or threads < 1:
            from ..errors import ConfigurationError

            raise ConfigurationError("threads must be a positive integer")
        if not getattr(store, "thread_safe", False):
            from ..errors import ConfigurationError

            raise ConfigurationError(
                f"{type(store).__name__} is not thread_safe: it cannot be run in threads"
            )
        self.store = store
        self.threads = threads
        self._pool: ThreadPoolExecutor | None = None
        self._pid = 0
        self._lock = threading.Lock()

    def _executor(self) -> ThreadPoolExecutor:
        pool = self._pool
        if pool is None or self._pid != os.getpid():
            with self._lock:
                if self._pool is None or self._pid != os.getpid():
                    self._pool = ThreadPoolExecutor(self.threads, "satchel-store")
                    self._pid = os.getpid()
                pool = self._pool
        return pool

    def __getattr__(self, name: str) -> AsyncCall:
        method = getattr(self.store, name)

        async def offloaded(*args: Any, **kwargs: Any) -> Any:
            call = partial(method, *args, **kwargs) if kwargs else partial(method, *args)
            return await asyncio.get_running_loop().run_in_executor(self._executor(), call)

        setattr(self, name, offloaded)  # made once per method
        return offloaded

    async def aclose(self) -> None:
        """Close the store in a thread, then let the pool's threads end."""
        await self.close()
        pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.shutdown(wait=False)
