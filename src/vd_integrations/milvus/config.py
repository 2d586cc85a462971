"""Connection configuration for Milvus: one place for URIs, credentials and redaction."""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CONNECTION_KWARGS",
    "DEFAULT_EMBEDDED_URI",
    "ConnectionConfig",
    "redact_setting",
    "redact_uri",
]

#: Where an embedded Milvus Lite database lives when no URI is given.
DEFAULT_EMBEDDED_URI = "./milvus_vd.db"
#: gRPC channel options we set unless the caller passes their own ``grpc_options``.
IDLE_KEEPALIVE_OFF = {"grpc.keepalive_permit_without_calls": 0}


def _pymilvus_shares_connections() -> bool:
    """Whether pymilvus pools connections by address and token unless a client asks for a
    ``dedicated`` one: 2.6.11 and later (our floor), 3.x included."""
    try:
        version = importlib.metadata.version("pymilvus")
    except importlib.metadata.PackageNotFoundError:
        return False
    parts = re.findall(r"\d+", version)[:3]
    return tuple(int(p) for p in parts) >= (2, 6, 11)


_SHARES_CONNECTIONS = _pymilvus_shares_connections()
_SECRET_KEYS = frozenset({"token", "password", "secret", "api_key"})
#: Parts of an ``extra`` key that mark its value as secret (``client_secret``, ``apikey``...).
_SECRET_MARKERS = ("token", "password", "passwd", "secret", "key", "credential", "auth")
#: ``scheme://user:password@`` -- credentials inside a URI.
_URI_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/@]*)@")
_REMOTE_SCHEMES = ("http://", "https://", "tcp://", "grpc://", "unix:")
#: The connection keyword arguments pymilvus' ``MilvusClient`` (2.5 to 3.x) reads, besides
#: ``uri``: its own parameters and what it hands to the gRPC handler and ``connections``.
CONNECTION_KWARGS = frozenset(
    {
        "uri",
        "token",
        "user",
        "password",
        "db_name",
        "timeout",
        "host",
        "port",
        "address",
        "secure",
        "client_pem_path",
        "client_key_path",
        "ca_pem_path",
        "server_pem_path",
        "server_name",
        "grpc_options",
        "keep_alive",
        "option",
        "alias",
        "dedicated",
        "cluster_id",
    }
)


@dataclass(frozen=True, repr=False)
class ConnectionConfig:
    """How to reach Milvus. A local path (``./x.db``) means embedded Milvus Lite.

    Secrets (``token``, ``password``) never appear in ``repr``/``str``.
    """

    uri: str = DEFAULT_EMBEDDED_URI
    token: str = ""
    user: str = ""
    password: str = ""
    db_name: str = ""
    timeout: float | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_connection_args(
        cls, args: Mapping[str, Any] | None, *, default_uri: str = DEFAULT_EMBEDDED_URI
    ) -> ConnectionConfig:
        """Build from LangChain-style ``connection_args`` (``uri``, ``token``, ``host``...)."""
        args = dict(args or {})
        uri = args.pop("uri", None)
        host, port = args.pop("host", None), args.pop("port", None)
        if uri is None and host is not None:
            secure = bool(args.get("secure"))
            uri = f"{'https' if secure else 'http'}://{host}:{port or 19530}"
        known = {k: args.pop(k) for k in ("token", "user", "password", "db_name") if k in args}
        if "address" in args and uri is None:
            uri = f"http://{args.pop('address')}"
        timeout = args.pop("timeout", None)
        return cls(
            uri=str(uri or default_uri),
            token=str(known.get("token") or ""),
            user=str(known.get("user") or ""),
            password=str(known.get("password") or ""),
            db_name=str(known.get("db_name") or ""),
            timeout=timeout,
            extra=args,
        )

    @property
    def is_embedded(self) -> bool:
        """True when the URI is a local file served by embedded Milvus Lite."""
        return not self.uri.startswith(_REMOTE_SCHEMES)

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``MilvusClient`` / ``AsyncMilvusClient``."""
        uri = self.uri
        if self.is_embedded:
            uri = os.path.abspath(os.path.expanduser(uri))
            os.makedirs(os.path.dirname(uri) or ".", exist_ok=True)
        kwargs: dict[str, Any] = {"uri": uri, **self.extra}
        # pymilvus pings every 10 s even on idle channels; servers on gRPC's default policy
        # (the Milvus Lite server among them) answer "too many pings" with GOAWAY, which
        # fails the calls in flight with UNAVAILABLE. Ping only while calls are active.
        kwargs["grpc_options"] = {
            **IDLE_KEEPALIVE_OFF,
            **dict(self.extra.get("grpc_options") or {}),
        }
        if _SHARES_CONNECTIONS:
            # pymilvus (2.6.11+, 3.x) shares one channel per address and token among all
            # clients, whatever their grpc_options: a channel opened elsewhere (the user's own
            # MilvusClient) would bring its pings along, a shared one is never released when
            # its loop ends (one leaked per asyncio.run on 2.6), and one closed by a server
            # restart is handed to the next store. Ours get their own (per store and loop).
            kwargs.setdefault("dedicated", True)
        for name in ("token", "user", "password", "db_name"):
            value = getattr(self, name)
            if value:
                kwargs[name] = value
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        return kwargs

    def __repr__(self) -> str:
        shown = [f"uri={redact_setting('uri', self.uri)!r}"]
        for name in ("db_name", "user", "token", "password"):
            if getattr(self, name):
                shown.append(f"{name}={redact_setting(name, getattr(self, name))!r}")
        for key, value in self.extra.items():
            shown.append(f"{key}={redact_setting(key, value)!r}")
        return f"ConnectionConfig({', '.join(shown)})"

    __str__ = __repr__


def redact_setting(key: str, value: Any) -> Any:
    """A connection setting as it may be shown (``repr``, ``model_dump``, ``to_dict``...):
    a secret (``token``, ``password``, ``api_key``, ``client_secret``...) as ``'***'`` when
    set, a URI without the password it may carry, anything else unchanged. The one
    redaction rule for everything that displays or serialises connection settings."""
    if _is_secret_key(key) and value not in (None, ""):
        return "***"
    if isinstance(value, str):
        return redact_uri(value)
    return value


def redact_uri(uri: str) -> str:
    """``uri`` with any ``user:password@`` part replaced by ``***@``."""
    return _URI_USERINFO.sub(lambda m: f"{m['scheme']}***@", uri)


def _is_secret_key(key: str) -> bool:
    name = str(key).lower()
    return name in _SECRET_KEYS or any(marker in name for marker in _SECRET_MARKERS)
