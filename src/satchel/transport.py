"""Transports: where the session id travels between client and server, and in what form.

A transport parses the id out of one raw request value (the ``Cookie`` header, the query string,
or a named header) and renders the manager's decision as response headers.  It owns every
cookie attribute; it knows nothing about stores or expiry.
"""

from __future__ import annotations

import re
from typing import Protocol
from urllib.parse import parse_qsl, quote, urlencode

from .errors import ConfigurationError
from .manager import CookieOp, Decision

__all__ = [
    "CookieTransport",
    "HeaderTransport",
    "NoTransport",
    "QueryTransport",
    "Transport",
    "make_transport",
    "private_cache_control",
    "url_path",
    "with_session_headers",
]

# RFC 6265 section 4.1.1: a cookie-name is an RFC 2616 token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_SAMESITE = {"lax": "Lax", "strict": "Strict", "none": "None"}
_REVOKED = "Thu, 01 Jan 1970 00:00:00 GMT"
_VARY_COOKIE = [("Vary", "Cookie")]  # read-only: callers copy it into their header list
# A response that sets or revokes an id must never be stored by a shared cache (RFC 9111
# section 5.2.2.7): another client would be handed the same Set-Cookie.
_PRIVATE = ("Cache-Control", "private")
# Directives of an application's own Cache-Control that already keep shared caches out.
_STRICT_CACHING = re.compile(r"(?:^|,)\s*(?:private|no-store)\s*(?:[=,]|$)", re.IGNORECASE)
# Directives that invite a shared cache in: dropped when ``private`` has to be added.
_SHARED_CACHING = re.compile(r"^(?:public|s-maxage(?:=.*)?)$", re.IGNORECASE)
# Left as they are in a path: RFC 3986 pchar less ";", "=" and ",", which are also what a
# Set-Cookie Path (RFC 6265 section 4.1.1 path-value: no CTLs, no ";") and the headers that
# fold cookies on "," must not hold.  Everything else is percent-encoded.
_PATH_SAFE = "/:@!$&'()*+-._~"
_CTL = re.compile(r"[\x00-\x1f\x7f]")


def url_path(wsgi_path: str) -> str:
    """A WSGI path (``SCRIPT_NAME``, ``PATH_INFO``) as the percent-encoded path a browser sends.

    PEP 3333 gives these as the request's bytes decoded as latin-1, so they are encoded back
    to those bytes before quoting: ``/café`` arrives as ``'/caf\xc3\xa9'`` and becomes
    ``/caf%C3%A9`` (once, not twice).
    """
    try:
        raw = wsgi_path.encode("latin-1")
    except UnicodeEncodeError:  # a server that decoded the path as UTF-8 itself
        raw = wsgi_path.encode("utf-8", "replace")
    return quote(raw, safe=_PATH_SAFE)


class Transport(Protocol):
    """Carries the id.  ``source`` names the raw request value :meth:`read` expects."""

    source: str  # "cookie", "query" or "header"
    header_name: str  # the request header for "header" (else the Cookie header's name)
    vary: str | None

    def read(self, raw: str | None) -> str | None:
        """The id found in the raw request value, unvalidated, or None."""

    def render(self, decision: Decision, *, https: bool, script_name: str) -> list[tuple[str, str]]:
        """The response headers that carry ``decision`` to the client."""

    def overhead(self, decision: Decision, *, https: bool, script_name: str) -> int:
        """Bytes the header carrying ``decision``'s value adds around that value.

        A client-side store counts them against its size limit (a cookie's name and attributes
        share the 4096 bytes of RFC 6265 section 6.1 with its value).
        """


class CookieTransport:
    """The id in a cookie (the default).

    Attributes follow RFC 6265 section 4.1: ``HttpOnly`` and ``SameSite=Lax`` by default,
    ``Secure`` on https requests (or always/never when ``secure`` is True/False), ``Path`` from
    the application's mount point (``SCRIPT_NAME``) unless given, ``Domain`` only when given,
    and ``Max-Age`` only for persistent sessions.
    """

    source = "cookie"
    header_name = "Cookie"
    vary = "Cookie"

    def __init__(
        self,
        name: str = "satchel",
        *,
        path: str | None = None,
        domain: str | None = None,
        secure: bool | None = None,
        httponly: bool = True,
        samesite: str | None = "Lax",
        partitioned: bool = False,
    ) -> None:
        if not isinstance(name, str) or not _TOKEN.fullmatch(name):
            raise ConfigurationError(f"cookie_name {name!r} is not a valid cookie name (RFC 6265)")
        _check_path(path)
        _check_domain(domain)
        if samesite is not None:
            key = str(samesite).lower()
            if key not in _SAMESITE:
                raise ConfigurationError("cookie_samesite must be 'Lax', 'Strict', 'None' or None")
            samesite = _SAMESITE[key]
            if samesite == "None" and secure is False:
                raise ConfigurationError("cookie_samesite='None' requires a Secure cookie")
        # Browsers match the prefixes without regard to case (RFC 6265bis section 4.1.3).
        prefix = name[:9].lower()
        if prefix.startswith("__host-"):
            # RFC 6265bis section 4.1.3.2: Secure, Path=/ and no Domain.
            if secure is False or domain is not None or (path not in (None, "/")):
                raise ConfigurationError("a __Host- cookie must be Secure, Path=/, with no Domain")
            secure, path = True, "/"
        elif prefix == "__secure-":
            if secure is False:
                raise ConfigurationError("a __Secure- cookie must be Secure")
            secure = True
        if partitioned:
            # CHIPS: browsers drop a Partitioned cookie that is not also Secure.
            if secure is False:
                raise ConfigurationError("cookie_partitioned requires a Secure cookie; "
                                         "do not set cookie_secure=False with it")
            secure = True
        if samesite == "None":
            secure = True
        self.name = name
        self.path = path
        self.domain = domain
        self.secure = secure
        self.httponly = bool(httponly)
        self.samesite = samesite
        self.partitioned = bool(partitioned)
        self._prefix = name + "="
        tail = ""
        if httponly:
            tail += "; HttpOnly"
        if samesite:
            tail += f"; SameSite={samesite}"
        if partitioned:
            tail += "; Partitioned"
        self._flags = tail
        if domain:
            tail = f"; Domain={domain}" + tail
        self._tail = tail  # built once; per request only Path, Secure and Max-Age vary
        self._overheads: dict[tuple[int, bool, str], int] = {}

    def read(self, raw: str | None) -> str | None:
        """The first value of our cookie in a ``Cookie`` header (RFC 6265 section 5.4 order)."""
        if not raw:
            return None
        prefix = self._prefix
        if prefix not in raw:
            return None
        for part in raw.split(";"):
            part = part.strip()
            if part.startswith(prefix):
                value = part[len(prefix):]
                if len(value) >= 2 and value[0] == value[-1] == '"':
                    value = value[1:-1]
                return value
        return None

    def render(self, decision: Decision, *, https: bool, script_name: str) -> list[tuple[str, str]]:
        op = decision.cookie
        if op is CookieOp.KEEP:
            return _VARY_COOKIE if decision.vary else []
        headers: list[tuple[str, str]] = []
        if decision.vary:
            headers.append(("Vary", "Cookie"))
        if op is CookieOp.SET:
            value = self._set_cookie(decision.value, decision.max_age, https, script_name,
                                     domain=decision.domain, path=decision.path)
        else:
            value = self._set_cookie("", None, https, script_name, revoke=True,
                                     domain=decision.domain, path=decision.path)
        headers.append(("Set-Cookie", value))
        headers.append(_PRIVATE)
        return headers

    def overhead(self, decision: Decision, *, https: bool, script_name: str) -> int:
        max_age = decision.max_age
        if decision.domain is not None or decision.path is not None:
            return len(self._set_cookie("", max_age, https, script_name,
                                        domain=decision.domain, path=decision.path).encode())
        # Only the number of Max-Age digits changes the length: remember each combination.
        key = (-1 if max_age is None else len(str(max_age)), https, script_name)
        found = self._overheads.get(key)
        if found is None:
            found = len(self._set_cookie("", max_age, https, script_name).encode())
            if len(self._overheads) < 256:
                self._overheads[key] = found
        return found

    def attributes(self, *, https: bool, script_name: str) -> dict[str, str | bool | None]:
        """The cookie's attributes as keyword arguments, for a framework that writes the
        ``Set-Cookie`` header itself (Quixote's ``response.set_cookie``): ``path``, ``domain``,
        ``secure``, ``httponly`` and ``samesite``, by the same rules as :meth:`render`."""
        return {
            "path": self.path or url_path(script_name) or "/",
            "domain": self.domain,
            "secure": https if self.secure is None else self.secure,
            "httponly": self.httponly,
            "samesite": self.samesite,
        }

    def _set_cookie(self, value: str | None, max_age: int | None, https: bool,
                    script_name: str, *, revoke: bool = False, domain: str | None = None,
                    path: str | None = None) -> str:
        if path is not None:
            _check_path(path)
        else:
            path = self.path or url_path(script_name) or "/"
        tail = self._tail
        if domain is not None:
            _check_domain(domain)
            tail = f"; Domain={domain}{self._flags}"
        header = f"{self.name}={value or ''}; Path={path}{tail}"
        if revoke:
            header += f"; Max-Age=0; Expires={_REVOKED}"
        elif max_age is not None:
            header += f"; Max-Age={max_age}"
        secure = https if self.secure is None else self.secure
        if secure:
            header += "; Secure"
        return header


def private_cache_control(app_value: str | None) -> str | None:
    """The Cache-Control a response that sets or revokes an id must carry, given the one the
    application set (None: it set none); None when the application's value stands.

    The application's own value wins when it already keeps shared caches out (``private`` or
    ``no-store``, with whatever else it says).  Any other one (``public, max-age=600``,
    ``no-cache``) keeps its directives but ``public`` and ``s-maxage``, and gains ``private``:
    no shared cache may store a ``Set-Cookie`` and hand it to another client.
    """
    if app_value is None:
        return "private"
    if _STRICT_CACHING.search(app_value):
        return None
    kept = [d.strip() for d in app_value.split(",")
            if d.strip() and not _SHARED_CACHING.match(d.strip())]
    return ", ".join(["private", *kept])


def with_session_headers(headers: list[tuple[str, str]],
                         extra: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """The application's response headers with the transport's ``extra`` headers added,
    its Cache-Control merged by :func:`private_cache_control`.  Every front door applies
    the transport's headers through this (or that) function, so all follow one rule."""
    if _PRIVATE not in extra:
        return [*headers, *extra]
    found = [i for i, (k, _) in enumerate(headers) if k.lower() == "cache-control"]
    if not found:
        return [*headers, *extra]
    extra = [h for h in extra if h != _PRIVATE]
    merged = private_cache_control(", ".join(headers[i][1] for i in found))
    if merged is None:
        return [*headers, *extra]
    out = [h for i, h in enumerate(headers) if i not in found]
    return [*out, ("Cache-Control", merged), *extra]


def _check_path(path: str | None) -> None:
    if path is not None and (not isinstance(path, str) or not path.startswith("/")
                             or ";" in path or _CTL.search(path)):
        raise ConfigurationError(
            "cookie_path must start with '/' and hold no ';' or control character"
        )


def _check_domain(domain: str | None) -> None:
    if domain is not None and (not isinstance(domain, str) or not domain
                               or any(c in domain for c in "; \r\n/")):
        raise ConfigurationError("cookie_domain must be a bare host name such as example.com")


class QueryTransport:
    """The id in the query string (Pesto's ``persist='querystring'``).

    The application must put ``session.id`` into every link it makes.  A GET that arrives
    without an id is redirected to the same URL with a fresh id added.
    """

    source = "query"
    header_name = ""
    vary = None

    def __init__(self, param: str = "satchel_session") -> None:
        if not isinstance(param, str) or not param or any(c in param for c in "&=#?+ %"):
            raise ConfigurationError(f"query_param {param!r} is not a usable parameter name")
        self.param = param
        self._needle = param + "="

    def read(self, raw: str | None) -> str | None:
        if not raw or self._needle not in raw:
            return None
        for key, value in parse_qsl(raw, keep_blank_values=True):
            if key == self.param:
                return value
        return None

    def redirect_query(self, raw: str, sid: str) -> str:
        """The query string of the redirect that adds ``sid`` (other parameters kept)."""
        pairs = [(k, v) for k, v in parse_qsl(raw, keep_blank_values=True) if k != self.param]
        pairs.append((self.param, sid))
        return urlencode(pairs)

    def redirect_location(self, script_name: str, path_info: str, raw_query: str,
                          sid: str) -> str:
        """The ``Location`` that sends the client back to the URL it asked for, plus ``sid``.

        Always origin-relative: the path is percent-encoded (a backslash too) and starts with
        exactly one slash, so nothing the request's path holds (``//evil.example``,
        ``/\\evil.example``) can make the browser read it as another host.
        """
        path = "/" + url_path(script_name + path_info).lstrip("/")
        return f"{path}?{self.redirect_query(raw_query, sid)}"

    def render(self, decision: Decision, *, https: bool, script_name: str) -> list[tuple[str, str]]:
        return []

    def overhead(self, decision: Decision, *, https: bool, script_name: str) -> int:
        return 0


class HeaderTransport:
    """The id in a request header, answered in the same response header (for APIs).

    A revoked id is answered with an empty header value.
    """

    source = "header"
    vary: str | None

    def __init__(self, header_name: str = "X-Session-Id") -> None:
        if not isinstance(header_name, str) or not _TOKEN.fullmatch(header_name):
            raise ConfigurationError(f"header_name {header_name!r} is not a valid header name")
        self.header_name = header_name
        self.vary = header_name

    def read(self, raw: str | None) -> str | None:
        return raw.strip() if raw else None

    def render(self, decision: Decision, *, https: bool, script_name: str) -> list[tuple[str, str]]:
        headers: list[tuple[str, str]] = []
        if decision.vary:
            headers.append(("Vary", self.header_name))
        if decision.cookie is CookieOp.SET:
            headers.append((self.header_name, decision.value or ""))
            headers.append(_PRIVATE)
        elif decision.cookie is CookieOp.REVOKE:
            headers.append((self.header_name, ""))
            headers.append(_PRIVATE)
        return headers

    def overhead(self, decision: Decision, *, https: bool, script_name: str) -> int:
        return 0


class NoTransport:
    """No id travels: the application keeps and passes ids itself (Beaker's
    ``use_cookies = false``).  Nothing is read from the request; nothing is sent back."""

    source = "none"
    header_name = ""
    vary = None

    def read(self, raw: str | None) -> str | None:
        return None

    def render(self, decision: Decision, *, https: bool, script_name: str) -> list[tuple[str, str]]:
        return []

    def overhead(self, decision: Decision, *, https: bool, script_name: str) -> int:
        return 0


def make_transport(
    kind: str,
    *,
    cookie_name: str = "satchel",
    cookie_path: str | None = None,
    cookie_domain: str | None = None,
    cookie_secure: bool | None = None,
    cookie_httponly: bool = True,
    cookie_samesite: str | None = "Lax",
    cookie_partitioned: bool = False,
    query_param: str = "satchel_session",
    header_name: str = "X-Session-Id",
) -> CookieTransport | QueryTransport | HeaderTransport | NoTransport:
    """Build the transport named by the ``transport`` option (``persist`` in Pesto's words)."""
    if kind == "cookie":
        return CookieTransport(cookie_name, path=cookie_path, domain=cookie_domain,
                               secure=cookie_secure, httponly=cookie_httponly,
                               samesite=cookie_samesite, partitioned=cookie_partitioned)
    if kind == "querystring":
        return QueryTransport(query_param)
    if kind == "header":
        return HeaderTransport(header_name)
    if kind == "none":
        return NoTransport()
    raise ConfigurationError(
        f"transport {kind!r} is unknown; use 'cookie', 'querystring', 'header' or 'none'"
    )
