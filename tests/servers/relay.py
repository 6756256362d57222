"""A TCP relay that counts round trips at the wire, where a server's own counters cannot.

memcached's ``stats`` count commands, so two sent in one packet (``touch ... noreply`` then
``append``) look like two exchanges.  The relay counts, per client connection, each time the
client speaks after the server last did (or for the first time): one wait for the server.  Two
sends with no reply between them are one round trip; a reply in many chunks adds none.

One thread runs a ``select`` loop over the listener and every connection (non-blocking sockets;
a side is read only once what it sent before has been passed on), so :meth:`Relay.stop` ends
within a select timeout.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from collections.abc import Callable

from . import LOOPBACK, free_port

__all__ = ["Relay"]

CHUNK = 65536
TICK = 0.05  # seconds a select may wait before the loop looks at the stop flag again


class _Link:
    """One client connection and its connection to the target; who spoke last on it."""

    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.client, self.server = client, server
        self.pending = {client: bytearray(), server: bytearray()}  # bytes waiting to be sent to
        self.client_spoke_last: bool | None = None

    def peer(self, sock: socket.socket) -> socket.socket:
        return self.server if sock is self.client else self.client

    def close(self, links: dict[socket.socket, _Link]) -> None:
        """One side closed or the relay stops: close both, as the other side would see it."""
        for sock in (self.client, self.server):
            links.pop(sock, None)
            sock.close()


class Relay:
    """Forwards a loopback port to ``(target_host, target_port)`` and counts round trips.

    Args:
        target_port: the server's port.
        target_host: the server's address (loopback by default).
    """

    def __init__(self, target_port: int, target_host: str = LOOPBACK) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._trips = self._asked = self._answered = 0  # guarded by _cond
        self._cond = threading.Condition()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._wake: tuple[socket.socket, socket.socket] | None = None

    @property
    def host_port(self) -> str:
        """``host:port`` to hand a client instead of the server's."""
        return f"{LOOPBACK}:{self.port}"

    @property
    def round_trips(self) -> int:
        """Round trips counted so far, over all connections."""
        with self._cond:
            return self._trips

    def count(self, action: Callable[[], object]) -> int:
        """The round trips ``action`` makes through the relay, read once it has been settled."""
        before = self.round_trips
        action()
        self.settle()
        return self.round_trips - before

    def settle(self, timeout: float = 2.0) -> None:
        """Wait until the relay has read what clients had sent by now, so that bytes sent with
        no reply awaited (``noreply``) are counted too: one pass of the loop that began later."""
        with self._cond:
            self._asked += 1
            ticket = self._asked
        if self._wake is None or self._thread is None:
            return
        with contextlib.suppress(OSError):  # the loop may be waiting in select: wake it now
            self._wake[1].send(b"\0")
        with self._cond:
            self._cond.wait_for(
                lambda: self._answered >= ticket or self._stopping.is_set(), timeout)

    def start(self) -> None:
        listener = socket.create_server((LOOPBACK, self.port))  # SO_REUSEADDR: restartable
        self._wake = wake = socket.socketpair()
        for sock in (listener, *wake):
            sock.setblocking(False)
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, args=(listener, wake),
                                        name=f"relay-{self.port}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Close the listener and every connection; wait (boundedly) for the loop to end."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError(f"relay on port {self.port} did not stop in {timeout} s")
            self._thread = None

    def __enter__(self) -> Relay:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self, listener: socket.socket, wake: tuple[socket.socket, socket.socket]) -> None:
        links: dict[socket.socket, _Link] = {}
        woken = False
        try:
            while not self._stopping.is_set():
                with self._cond:
                    ticket = self._asked
                idle = [s for s, ln in links.items() if not ln.pending[ln.peer(s)]]
                writers = [s for s, ln in links.items() if ln.pending[s]]
                readers = [listener, wake[0], *idle]
                readable, writable, _ = select.select(readers, writers, [], 0 if woken else TICK)
                woken = False
                for sock in writable:
                    if sock in links and not self._pump(sock, links[sock], reading=False):
                        links[sock].close(links)
                for sock in readable:
                    if sock is listener:
                        self._accept(listener, links)
                    elif sock is wake[0]:  # settle(): answer in a pass begun after it asked
                        woken = bool(wake[0].recv(CHUNK))
                    elif sock in links and not self._pump(sock, links[sock], reading=True):
                        links[sock].close(links)
                with self._cond:
                    self._answered = ticket
                    self._cond.notify_all()
        finally:
            for link in set(links.values()):
                link.close(links)
            for sock in (listener, *wake):
                sock.close()
            self._wake = None
            with self._cond:
                self._cond.notify_all()

    def _accept(self, listener: socket.socket, links: dict[socket.socket, _Link]) -> None:
        try:
            client, _ = listener.accept()
        except BlockingIOError:
            return
        try:
            server = socket.create_connection(self.target, timeout=2)
        except OSError:
            client.close()  # the target is down: the client sees its connection closed
            return
        for sock in (client, server):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setblocking(False)
        links[client] = links[server] = _Link(client, server)

    def _pump(self, sock: socket.socket, link: _Link, reading: bool) -> bool:
        """Send ``sock`` what waits for it, or read what it sent, counting a round trip when the
        client speaks up after the server; False when the connection is over."""
        try:
            if not reading:
                del link.pending[sock][:sock.send(link.pending[sock])]
                return True
            data = sock.recv(CHUNK)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        from_client = sock is link.client
        if from_client and link.client_spoke_last is not True:
            with self._cond:
                self._trips += 1
        link.client_spoke_last = from_client
        link.pending[link.peer(sock)] += data
        return True
