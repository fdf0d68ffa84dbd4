"""tcpscope serve's HTTP side: /metrics for Prometheus, with TLS and basic auth
configured as Prometheus' own exporters configure them (a web configuration
file: tls_server_config, basic_auth_users)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .errors import MissingFeature, UsageError
from .net import DEFAULT_LISTEN

__all__ = ["WebConfig", "load_web_config", "MetricsServer"]

log = logging.getLogger("tcpscope.serve")

CLIENT_TIMEOUT = 10.0  # seconds a client may take to send its request (or finish a TLS handshake)
MAX_CLIENTS = 64  # connections served at once; more are closed at once (each holds a thread)
LANDING = b"""<html><head><title>tcpscope</title></head>
<body><h1>tcpscope</h1><p><a href="/metrics">Metrics</a></p></body></html>
"""
_TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                 "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
# client_auth_type, as Prometheus' exporter toolkit names them -> what Python's ssl can do.
_CLIENT_AUTH = {"NoClientCert": ssl.CERT_NONE, "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
                "RequireAndVerifyClientCert": ssl.CERT_REQUIRED}
_TLS_KEYS = {"cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version"}


@dataclass
class WebConfig:
    tls: ssl.SSLContext | None = None
    users: dict[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash


def load_web_config(path: str) -> WebConfig:
    """A web configuration file (YAML), checked whole: a key tcpscope does not
    support is refused rather than ignored."""
    try:
        import bcrypt  # noqa: F401
        import yaml
    except ImportError:
        raise MissingFeature("--web-config needs PyYAML and bcrypt: pip install 'tcpscope[serve]'") from None
    try:
        with open(path) as f:
            doc = yaml.safe_load(f) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{path}: cannot read it as YAML: {exc}".splitlines()[0]) from None
    if not isinstance(doc, dict):
        raise UsageError(f"{path}: expected a mapping of tls_server_config and basic_auth_users")
    unknown = set(doc) - {"tls_server_config", "basic_auth_users"}
    if unknown:
        raise UsageError(f"{path}: {sorted(unknown)[0]} is not supported (tcpscope reads tls_server_config "
                         "and basic_auth_users)")
    base = os.path.dirname(os.path.abspath(path))
    config = WebConfig()
    if doc.get("tls_server_config") is not None:
        config.tls = _tls_context(path, base, doc["tls_server_config"])
    users = doc.get("basic_auth_users") or {}
    if not isinstance(users, dict):
        raise UsageError(f"{path}: basic_auth_users must map user names to bcrypt hashes")
    for user, hashed in users.items():
        if not isinstance(hashed, str) or not hashed.startswith(("$2a$", "$2b$", "$2y$")):
            raise UsageError(f"{path}: the password of {user!r} is not a bcrypt hash (make one with "
                             "htpasswd -nBC 10 USER)")
        config.users[str(user)] = hashed.encode()
    return config


def _tls_context(path: str, base: str, tls: Any) -> ssl.SSLContext:
    if not isinstance(tls, dict):
        raise UsageError(f"{path}: tls_server_config must be a mapping")
    unknown = set(tls) - _TLS_KEYS
    if unknown:
        raise UsageError(f"{path}: tls_server_config.{sorted(unknown)[0]} is not supported (tcpscope reads "
                         f"{', '.join(sorted(_TLS_KEYS))})")
    if not tls.get("cert_file") or not tls.get("key_file"):
        raise UsageError(f"{path}: tls_server_config needs cert_file and key_file")

    def file(key: str) -> str:
        return os.path.join(base, str(tls[key]))  # relative to the configuration file, as the toolkit does

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _tls_version(path, tls.get("min_version", "TLS12"))
    if "max_version" in tls:
        context.maximum_version = _tls_version(path, tls["max_version"])
    try:
        context.load_cert_chain(file("cert_file"), file("key_file"))
    except (OSError, ssl.SSLError) as exc:
        raise UsageError(f"{path}: cannot load cert_file and key_file: {exc}") from None
    auth = tls.get("client_auth_type", "NoClientCert")
    if auth not in _CLIENT_AUTH:
        raise UsageError(f"{path}: client_auth_type {auth!r} is not supported (use one of "
                         f"{', '.join(_CLIENT_AUTH)})")
    context.verify_mode = _CLIENT_AUTH[auth]
    if tls.get("client_ca_file"):
        try:
            context.load_verify_locations(file("client_ca_file"))
        except (OSError, ssl.SSLError) as exc:
            raise UsageError(f"{path}: cannot load client_ca_file: {exc}") from None
    elif context.verify_mode != ssl.CERT_NONE:
        raise UsageError(f"{path}: client_auth_type {auth} needs client_ca_file")
    return context


def _tls_version(path: str, name: Any) -> ssl.TLSVersion:
    if name not in _TLS_VERSIONS:
        raise UsageError(f"{path}: TLS version {name!r} is not one of {', '.join(_TLS_VERSIONS)}")
    return _TLS_VERSIONS[name]


class _Registry:
    """What prometheus_client's exposition reads: the collector's families now."""

    def __init__(self, collect: Callable[[], Iterator[Any]]) -> None:
        from prometheus_client import CollectorRegistry, ProcessCollector

        self._process = CollectorRegistry()
        ProcessCollector(registry=self._process)  # the exporter's own memory and CPU
        self._collect = collect

    def collect(self) -> Iterator[Any]:
        yield from self._collect()
        yield from self._process.collect()


class MetricsServer(ThreadingHTTPServer):
    """GET /metrics (and /), a thread per client, at most MAX_CLIENTS at once;
    with TLS, each handshake in the client's own thread, so that a slow or
    stuck client holds up no one else."""

    daemon_threads = True

    def __init__(self, listen: tuple[str, int] | None, collect: Callable[[], Iterator[Any]],
                 web: WebConfig) -> None:
        host, port = listen or DEFAULT_LISTEN
        self.address_family = socket.AF_INET6 if ":" in host or not host else socket.AF_INET
        self.web, self.registry = web, _Registry(collect)
        self._clients = threading.BoundedSemaphore(MAX_CLIENTS)
        self._verified: set[bytes] = set()  # digests of credentials bcrypt accepted (it is slow by design)
        try:
            super().__init__((host or "::", port), _Handler)
        except OSError as exc:
            raise UsageError(f"cannot listen on {host or '*'}:{port}: {exc.strerror}") from None

    def server_bind(self) -> None:
        if self.address_family == socket.AF_INET6 and self.server_address[0] == "::":
            self.socket.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)  # ":PORT": IPv4 too
        super().server_bind()

    @property
    def url(self) -> str:
        host, port = str(self.server_address[0]), self.server_address[1]
        scheme = "https" if self.web.tls else "http"
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{port}/metrics"

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._clients.acquire(blocking=False):
            log.warning("%s: closed at once: %d clients are being served already", client_address[0],
                        MAX_CLIENTS)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            request.settimeout(CLIENT_TIMEOUT)
            if self.web.tls:
                request = self.web.tls.wrap_socket(request, server_side=True)
            super().process_request_thread(request, client_address)
        except (OSError, ssl.SSLError) as exc:
            log.info("%s: %s", client_address[0], exc)
            self.shutdown_request(request)
        finally:
            self._clients.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.warning("%s: the request failed", client_address[0], exc_info=log.isEnabledFor(logging.DEBUG))

    def authorized(self, header: str | None) -> bool:
        if not self.web.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = self.web.users.get(user)
        if hashed is None:
            return False
        digest = hashlib.sha256(b"\0".join((user.encode(), password.encode(), hashed))).digest()
        if any(hmac.compare_digest(digest, known) for known in self._verified):
            return True
        import bcrypt

        if not bcrypt.checkpw(password.encode(), hashed):
            return False
        self._verified.add(digest)
        return True


class _Handler(BaseHTTPRequestHandler):
    server: MetricsServer
    server_version = "tcpscope"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.0"  # so that the answer to garbage has a status line too
    error_content_type = "text/plain; charset=utf-8"
    error_message_format = "%(code)d %(message)s\n"

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = self.path.split("?", 1)[0]
        if path not in ("/metrics", "/"):
            self._reply(404, b"404 page not found\n")
            return
        if not self.server.authorized(self.headers.get("Authorization")):
            self._reply(401, b"Unauthorized\n", {"WWW-Authenticate": 'Basic realm="tcpscope"'})
            return
        if path == "/":
            self._reply(200, LANDING, {"Content-Type": "text/html; charset=utf-8"})
            return
        from prometheus_client.exposition import choose_encoder

        encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
        try:
            body = encoder(self.server.registry)
        except Exception:
            log.exception("reading the metrics failed")
            self._reply(500, b"reading the metrics failed\n")
            return
        self._reply(200, body, {"Content-Type": content_type})

    def _not_allowed(self) -> None:
        self._reply(405, b"405 method not allowed\n", {"Allow": "GET"})

    def __getattr__(self, name: str) -> Any:
        if name.startswith("do_"):  # any other method
            return self._not_allowed
        raise AttributeError(name)

    def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for key, value in {"Content-Type": "text/plain; charset=utf-8", **(headers or {})}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        log.debug("%s: " + format, self.client_address[0], *args)

    def log_error(self, format: str, *args: Any) -> None:  # noqa: A002
        log.warning("%s: " + format, self.client_address[0], *args)
