"""A guard that makes network access fail loudly: the course, its tests and CI run offline.

Modes (``COURSE_BLOCK_NETWORK``): ``1`` refuses everything but loopback and Unix sockets; ``all`` refuses loopback
too, so the tests can check the guard without a single packet able to leave the machine; ``0`` is off.
It covers ``connect``, ``connect_ex``, ``sendto`` / ``sendmsg`` to an address and name resolution (``getaddrinfo``,
``gethostbyname[_ex]``, ``gethostbyaddr``, ``getnameinfo``); Unix and netlink sockets stay open in every mode.

This file imports only the standard library: ``tools/offline/sitecustomize.py`` loads it by path where course_utils
is not importable, and a later ``import course_utils`` then takes over from that copy cleanly.
"""

from __future__ import annotations

import _socket
import contextlib
import functools
import ipaddress
import os
import socket

BLOCK_ENV = "COURSE_BLOCK_NETWORK"
MODES = ("local", "all")
_ON = ("1", "true", "yes", "on", "local")
_OFF = ("0", "false", "no", "off")
_MARK = "_course_network_guard"  # set on each guard function, so a second copy of this module finds the originals

_mode: str | None = None  # None: off; "local": loopback allowed; "all": loopback refused too
_installed = False


class NetworkBlockedError(OSError):
    """Raised when code tries to reach the network while the guard is on."""


def _is_local_host(host, resolving: bool = False) -> bool:
    """Whether ``host`` names this machine's loopback; ``resolving`` also lets through what a server binds to."""
    if host is None or host in ("", b""):
        return True  # no host: a passive (bind) lookup, or INADDR_ANY
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    if host.rstrip(".").lower() == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False  # any other name would need DNS: refuse
    ip = getattr(ip, "ipv4_mapped", None) or ip
    return ip.is_loopback or (resolving and ip.is_unspecified)


def _is_local(address) -> bool:
    """Whether a connect / sendto ``address`` stays on this machine (loopback, or a Unix socket path)."""
    if not isinstance(address, tuple):  # AF_UNIX paths: Jupyter kernels talk over these and loopback
        return True
    return _is_local_host(address[0])


def _error(action: str, target) -> NetworkBlockedError:
    scope = "all: loopback refused too" if _mode == "all" else "1: loopback and Unix sockets only"
    return NetworkBlockedError(
        f"{action} {target!r} refused: the course runs offline ({BLOCK_ENV}={scope}). Use an offline model "
        "(course_utils.models.OFFLINE_MODELS) or the shipped data; where a step truly needs the network, run it "
        f"with {BLOCK_ENV}=0 (under pytest also --force-enable-socket).")


def _check_address(sock, address, action: str) -> None:
    if _mode is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return  # Unix and netlink sockets never leave the machine
    if _mode == "all" or not _is_local(address):
        raise _error(action, address)


def _check_host(host, action: str) -> None:
    if _mode == "all" or (_mode == "local" and not _is_local_host(host, resolving=True)):
        raise _error(action, host)


def _unwrap(fn):
    return fn.__wrapped__ if getattr(fn, _MARK, False) else fn


# The originals: socket.socket inherits these from _socket.socket, so they are the real ones even where another guard
# (pytest-socket, an earlier copy of this module) has patched socket.socket already.
_original_connect = _socket.socket.connect
_original_connect_ex = _socket.socket.connect_ex
_original_sendto = _socket.socket.sendto
_original_sendmsg = getattr(_socket.socket, "sendmsg", None)  # absent on Windows
_original_getaddrinfo = _unwrap(socket.getaddrinfo)  # a Python wrapper in socket.py, not in _socket


def _guard(original):
    """Give ``fn`` the original's name and docstring, and the mark and ``__wrapped__`` that :func:`_unwrap` reads."""
    def mark(fn):
        fn = functools.wraps(original)(fn)
        setattr(fn, _MARK, True)
        return fn
    return mark


@_guard(_original_connect)
def _guarded_connect(self, address):
    _check_address(self, address, "connect to")
    return _original_connect(self, address)


@_guard(_original_connect_ex)
def _guarded_connect_ex(self, address):
    _check_address(self, address, "connect_ex to")
    return _original_connect_ex(self, address)


@_guard(_original_sendto)
def _guarded_sendto(self, data, *args):  # sendto(data, address) or sendto(data, flags, address)
    if args:
        _check_address(self, args[-1], "sendto")
    return _original_sendto(self, data, *args)


def _guarded_sendmsg(self, buffers, *args):  # sendmsg(buffers[, ancdata[, flags[, address]]])
    if len(args) >= 3 and args[2] is not None:
        _check_address(self, args[2], "sendmsg to")
    return _original_sendmsg(self, buffers, *args)


@_guard(_original_getaddrinfo)
def _guarded_getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):
    _check_host(host, "lookup of")
    return _original_getaddrinfo(host, port, family, type, proto, flags)


@_guard(_socket.gethostbyname)
def _guarded_gethostbyname(hostname):
    _check_host(hostname, "lookup of")
    return _socket.gethostbyname(hostname)


@_guard(_socket.gethostbyname_ex)
def _guarded_gethostbyname_ex(hostname):
    _check_host(hostname, "lookup of")
    return _socket.gethostbyname_ex(hostname)


@_guard(_socket.gethostbyaddr)
def _guarded_gethostbyaddr(ip_address):
    _check_host(ip_address, "reverse lookup of")
    return _socket.gethostbyaddr(ip_address)


@_guard(_socket.getnameinfo)
def _guarded_getnameinfo(sockaddr, flags):
    _check_host(sockaddr[0] if isinstance(sockaddr, tuple) and sockaddr else None, "reverse lookup of")
    return _socket.getnameinfo(sockaddr, flags)


_GUARDS = {
    (socket.socket, "connect"): (_guarded_connect, _original_connect),
    (socket.socket, "connect_ex"): (_guarded_connect_ex, _original_connect_ex),
    (socket.socket, "sendto"): (_guarded_sendto, _original_sendto),
    (socket, "getaddrinfo"): (_guarded_getaddrinfo, _original_getaddrinfo),
    (socket, "gethostbyname"): (_guarded_gethostbyname, _socket.gethostbyname),
    (socket, "gethostbyname_ex"): (_guarded_gethostbyname_ex, _socket.gethostbyname_ex),
    (socket, "gethostbyaddr"): (_guarded_gethostbyaddr, _socket.gethostbyaddr),
    (socket, "getnameinfo"): (_guarded_getnameinfo, _socket.getnameinfo),
}
if _original_sendmsg is not None:
    _GUARDS[socket.socket, "sendmsg"] = (_guard(_original_sendmsg)(_guarded_sendmsg), _original_sendmsg)


def block_network(mode: str = "local") -> None:
    """Refuse network access: ``"local"`` lets loopback and Unix sockets through, ``"all"`` only Unix sockets."""
    global _mode, _installed
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}: pass e.g. mode='local'")
    _mode = mode
    if not _installed:  # once: a layer put on top since (pytest-socket's, per test) stays in place
        for (owner, name), (guard, _) in _GUARDS.items():
            setattr(owner, name, guard)
        _installed = True


def allow_network() -> None:
    """Undo :func:`block_network`."""
    global _mode, _installed
    for (owner, name), (_, original) in _GUARDS.items():
        setattr(owner, name, original)
    _mode, _installed = None, False


def is_blocked() -> bool:
    """Whether :func:`block_network` is in force."""
    return _mode is not None


def current_mode() -> str | None:
    """The guard's mode: ``"local"``, ``"all"``, or None when it is off."""
    return _mode


@contextlib.contextmanager
def blocked(mode: str = "local"):
    """:func:`block_network` for the ``with`` block; the guard's previous state comes back afterwards."""
    previous = _mode
    block_network(mode)
    try:
        yield
    finally:
        if previous is None:
            allow_network()
        else:
            block_network(previous)


def mode_from_env(default: str | None = None, environ=None) -> str | None:
    """The mode ``COURSE_BLOCK_NETWORK`` asks for (1 / true / on: "local", all: "all", 0 / false / off: None);
    ``default`` where it is unset or empty."""
    value = (os.environ if environ is None else environ).get(BLOCK_ENV, "").strip().lower()
    if not value:
        return default
    if value in _ON:
        return "local"
    if value == "all":
        return "all"
    if value in _OFF:
        return None
    raise ValueError(f"{BLOCK_ENV} must be 1 (loopback only), all (loopback refused too) or 0 (off), got {value!r}: "
                     f"set e.g. {BLOCK_ENV}=1")


def block_from_env(default: str | None = None) -> str | None:
    """Turn the guard on in the mode ``COURSE_BLOCK_NETWORK`` asks for (``default`` where unset); return that mode."""
    wanted = mode_from_env(default)
    if wanted is not None:
        block_network(wanted)
    return wanted
