"""Private redis-server processes: one server (plain or TLS) or a three-master Redis Cluster.

None persists anything.  Never the machine's own Redis: each process binds 127.0.0.1 on a free
port, in a temporary directory, and is stopped by its pid.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from . import LOOPBACK, ServerProcess, find_binary, free_port, port_open, wait_until

__all__ = ["CommandLog", "RedisClusterServers", "RedisServer", "RedisTLSServer", "redis_command",
           "running_cluster", "running_server"]


def redis_command(port: int, *args: str, timeout: float = 2.0) -> str:
    """Send one command over a raw socket (RESP) and return the reply's text (tests only)."""
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    with socket.create_connection((LOOPBACK, port), timeout=timeout) as sock:
        sock.sendall(b"".join(parts))
        reply = b""
        while True:
            chunk = sock.recv(65536)
            reply += chunk
            if not chunk or _complete(reply):
                break
    return reply.decode(errors="replace")


def _complete(reply: bytes) -> bool:
    if reply[:1] in (b"+", b"-", b":"):
        return reply.endswith(b"\r\n")
    if reply[:1] == b"$":
        if b"\r\n" not in reply:
            return False
        header, _, rest = reply.partition(b"\r\n")
        size = int(header[1:])
        return size < 0 or len(rest) >= size + 2
    return reply.endswith(b"\r\n")


class RedisServer(ServerProcess):
    """``redis-server`` on a free loopback port, no RDB, no AOF."""

    name = "redis"
    start_timeout = 15.0

    def __init__(self, *extra: str) -> None:
        super().__init__()
        self.extra = list(extra)

    def command(self) -> list[str]:
        return [
            find_binary("redis-server"), "--port", str(self.port), "--bind", LOOPBACK,
            "--save", "", "--appendonly", "no", "--dir", str(self.dir),
            "--protected-mode", "yes", "--daemonize", "no", *self.extra,
        ]

    def ready(self) -> bool:
        return redis_command(self.port, "PING", timeout=0.5).startswith("+PONG")

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def flush(self) -> None:
        reply = redis_command(self.port, "FLUSHALL")
        if not reply.startswith("+OK"):
            raise RuntimeError(f"FLUSHALL failed: {reply!r}")


class RedisClusterServers:
    """Three cluster-enabled masters joined with ``redis-cli --cluster create``."""

    def __init__(self) -> None:
        self.nodes: list[RedisServer] = []
        for _ in range(3):
            node = RedisServer()
            node.port = _cluster_port()
            node.extra = ["--cluster-enabled", "yes",
                          "--cluster-config-file", str(node.dir / "nodes.conf"),
                          "--cluster-node-timeout", "2000"]
            self.nodes.append(node)

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"{LOOPBACK}:{p}" for p in self.ports)

    def start(self) -> None:
        try:
            for node in self.nodes:
                node.start()
            subprocess.run(
                [find_binary("redis-cli"), "--cluster", "create",
                 *(f"{LOOPBACK}:{p}" for p in self.ports),
                 "--cluster-replicas", "0", "--cluster-yes"],
                check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL,
            )
            for port in self.ports:
                wait_until(lambda port=port: "cluster_state:ok" in redis_command(
                    port, "CLUSTER", "INFO"), 30, f"redis cluster node {port} reporting ok")
        except BaseException:
            self.cleanup()
            raise

    def flush(self) -> None:
        for port in self.ports:
            reply = redis_command(port, "FLUSHALL")
            if not reply.startswith("+OK"):
                raise RuntimeError(f"FLUSHALL failed on {port}: {reply!r}")

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too, as Redis Cluster requires."""
    for _ in range(200):
        port = free_port()
        if port > 55535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((LOOPBACK, port + 10000))
            except OSError:
                continue
        return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


@contextlib.contextmanager
def running_server(*extra: str) -> Iterator[RedisServer]:
    """A started :class:`RedisServer`, stopped and removed afterwards."""
    server = RedisServer(*extra)
    with server:
        yield server


@contextlib.contextmanager
def running_cluster() -> Iterator[RedisClusterServers]:
    """A started three-master cluster, stopped and removed afterwards."""
    cluster = RedisClusterServers()
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.cleanup()


class CommandLog:
    """The commands Redis servers receive while the block runs, read with ``MONITOR``.

    ``calls`` lists the top-level commands (one per request the client sent; none of ours
    are MULTI blocks), ``lua`` those a script ran.  A marker ``ECHO`` closes each log, so no
    sleeping is needed to know the log is complete.
    """

    def __init__(self, *ports: int) -> None:
        self.ports = ports
        self.socks: list[socket.socket] = []
        self.calls: list[str] = []
        self.lua: list[str] = []

    def __enter__(self) -> CommandLog:
        for port in self.ports:
            sock = socket.create_connection((LOOPBACK, port), timeout=5)
            sock.sendall(b"*1\r\n$7\r\nMONITOR\r\n")
            if not sock.recv(5).startswith(b"+OK"):
                raise RuntimeError("MONITOR refused")
            self.socks.append(sock)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if exc[0] is None:
                for port, sock in zip(self.ports, self.socks, strict=True):
                    self._collect(port, sock)
        finally:
            for sock in self.socks:
                sock.close()

    def _collect(self, port: int, sock: socket.socket) -> None:
        marker = f"satchel-log-end-{port}"
        redis_command(port, "ECHO", marker)
        buffer = b""
        for _ in range(10_000):
            if marker.encode() in buffer and buffer.endswith(b"\r\n"):
                break
            buffer += sock.recv(65536)
        for line in buffer.decode(errors="replace").split("\r\n"):
            if not line or marker in line:
                continue
            # +1700000000.123456 [0 127.0.0.1:54321] "HGETALL" "satchel:s:{...}"
            where, _, args = line.partition("] ")
            name = args.split('"')[1].upper()
            (self.lua if where.endswith(" lua") else self.calls).append(name)


class RedisTLSServer(RedisServer):
    """``redis-server`` speaking only TLS, with a fresh self-signed certificate for 127.0.0.1.

    ``ca_file`` is the certificate a client must trust (``rediss://...?ssl_ca_certs=``).
    """

    name = "redis-tls"

    def prepare(self) -> None:
        import datetime
        import ipaddress

        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, LOOPBACK)])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address(LOOPBACK))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256())
        )
        self.ca_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.key_file.write_bytes(key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))

    @property
    def ca_file(self) -> Path:
        return self.dir / "cert.pem"

    @property
    def key_file(self) -> Path:
        return self.dir / "key.pem"

    def command(self) -> list[str]:
        return [
            find_binary("redis-server"), "--port", "0", "--tls-port", str(self.port),
            "--bind", LOOPBACK, "--tls-cert-file", str(self.ca_file),
            "--tls-key-file", str(self.key_file), "--tls-ca-cert-file", str(self.ca_file),
            "--tls-auth-clients", "no", "--save", "", "--appendonly", "no",
            "--dir", str(self.dir), "--daemonize", "no",
        ]

    def ready(self) -> bool:
        return port_open(self.port)

    @property
    def url(self) -> str:
        return f"rediss://{LOOPBACK}:{self.port}/0?ssl_ca_certs={self.ca_file}"
