"""A store's async face, called from blocking code, so that the store contract drives the face.

Each call runs as a coroutine on an event loop of its own thread, awaiting the face exactly as
the ASGI front door does (``stores.aio``: inline for memory, a thread pool for the others).
"""

from __future__ import annotations

import asyncio
import threading
from types import TracebackType
from typing import Any

from satchel.stores.aio import async_face

__all__ = ["FaceBridge"]

# What the engine and the admin tools call; everything else (capabilities, helpers a test module
# uses) is read from the store itself.
STORE_CALLS = frozenset({
    "load", "save", "update", "move", "touch", "delete", "exists", "purge", "count", "ids",
    "user_sessions", "delete_user", "open", "seal",
})


class FaceBridge:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.face = async_face(store)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="face-bridge",
                                        daemon=True)
        self._thread.start()

    def __getattr__(self, name: str) -> Any:
        if name not in STORE_CALLS:
            return getattr(self.store, name)
        method = getattr(self.face, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return asyncio.run_coroutine_threadsafe(method(*args, **kwargs), self.loop).result()

        return call

    def close(self) -> None:
        """Stop the loop, release the face's threads, close the store."""
        if self.loop.is_running():
            aclose = getattr(self.face, "aclose", None)
            if aclose is not None:
                asyncio.run_coroutine_threadsafe(aclose(), self.loop).result()
            else:
                self.store.close()
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
            self.loop.close()

    def __enter__(self) -> FaceBridge:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<async face of {self.store!r}>"
