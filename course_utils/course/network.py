"""A guard that makes any non-loopback network connection fail loudly (tests and CI run offline)."""

from __future__ import annotations

import ipaddress
import socket

_original_connect = socket.socket.connect
BLOCK_ENV = "COURSE_BLOCK_NETWORK"


class NetworkBlockedError(OSError):
    """Raised when code tries to reach the network while the guard is on."""


def _is_local(address) -> bool:
    if not isinstance(address, tuple):  # AF_UNIX paths: Jupyter kernels talk over these and loopback
        return True
    host = address[0]
    if host in ("localhost", ""):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False  # a host name other than localhost would need DNS: refuse


def _guarded_connect(self, address):
    if not _is_local(address):
        raise NetworkBlockedError(
            f"Network access to {address!r} is blocked: the course runs offline ({BLOCK_ENV}=1). "
            "Use an offline model (course_utils.models.OFFLINE_MODELS) or shipped data.")
    return _original_connect(self, address)


def block_network() -> None:
    """Refuse every socket connection that is not to loopback or a Unix socket."""
    socket.socket.connect = _guarded_connect


def allow_network() -> None:
    """Undo :func:`block_network`."""
    socket.socket.connect = _original_connect


def is_blocked() -> bool:
    """Whether :func:`block_network` is in force."""
    return socket.socket.connect is _guarded_connect
