"""The offline guard. Every refusal is checked against a listener on 127.0.0.1 with loopback refused too
(COURSE_BLOCK_NETWORK=all), so a guard that fails lets nothing leave the machine; what mode 1 refuses beyond
loopback is checked on the decision functions, which never open a socket."""

import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import textwrap

import pytest
import pytest_socket

from course_utils.course import chapters, network

ROOT = chapters.ROOT
OFFLINE_DIR = ROOT / "tools" / "offline"

# Run in a child: every socket path against loopback listeners; prints what each attempt raised and whether the
# listeners saw anything. It never imports course_utils itself: the guard must come from sitecustomize.
CHILD = textwrap.dedent("""
    import json, os, socket, sys
    tcp = socket.socket(); tcp.bind(("127.0.0.1", 0)); tcp.listen(1); tcp.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); udp.bind(("127.0.0.1", 0)); udp.setblocking(False)
    def attempt(call, kind=socket.SOCK_STREAM):
        s = socket.socket(socket.AF_INET, kind)
        try:
            call(s)
            return "no error"
        except Exception as err:
            return f"{type(err).__name__}: {err}"
        finally:
            s.close()
    out = {
        "connect": attempt(lambda s: s.connect(tcp.getsockname())),
        "connect_ex": attempt(lambda s: s.connect_ex(tcp.getsockname())),
        "sendto": attempt(lambda s: s.sendto(b"x", udp.getsockname()), socket.SOCK_DGRAM),
        "getaddrinfo": attempt(lambda s: socket.getaddrinfo("localhost", 80)),
        "gethostbyname": attempt(lambda s: socket.gethostbyname("localhost")),
        "tcp_accepted": not attempt(lambda s: tcp.accept()).startswith("BlockingIOError"),
        "udp_received": not attempt(lambda s: udp.recvfrom(10)).startswith("BlockingIOError"),
        "fallback_loaded": "_course_offline_network" in sys.modules,
        "chained": os.environ.get("CHAINED_SITECUSTOMIZE"),
    }
    print(json.dumps(out))
""")

def _make_test_env() -> dict[str, str]:
    """The Makefile's TEST_ENV, as make expands it (PYTHONPATH with tools/offline first)."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-s", "--no-print-directory", "--eval", "print-test-env: ; @echo '$(TEST_ENV)'",
                          "print-test-env"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return dict(item.split("=", 1) for item in shlex.split(out.stdout))


def _run_child(env: dict[str, str], cwd) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=cwd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _assert_all_refused(got: dict, error: str = "NetworkBlockedError") -> None:
    for path in ("connect", "connect_ex", "sendto", "getaddrinfo", "gethostbyname"):
        assert got[path].startswith(f"{error}: "), f"{path}: {got[path]}"
        assert "offline" in got[path] and "COURSE_BLOCK_NETWORK=0" in got[path], got[path]
    assert "'localhost'" in got["getaddrinfo"] and "'127.0.0.1'" in got["connect"]
    assert not got["tcp_accepted"] and not got["udp_received"], got


@pytest.fixture
def listeners():
    """A TCP and a UDP socket on 127.0.0.1, non-blocking, so a test can check that nothing reached them."""
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(1)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    for s in (tcp, udp):
        s.setblocking(False)
    yield tcp, udp
    tcp.close()
    udp.close()


def test_is_local():
    assert network._is_local(("127.0.0.1", 1)) and network._is_local(("::1", 1, 0, 0))
    assert network._is_local("/tmp/kernel.sock") and network._is_local(("localhost", 1))
    assert network._is_local(("::ffff:127.0.0.1", 1)) and network._is_local(("127.0.0.2", 1))
    assert not network._is_local(("huggingface.co", 443)) and not network._is_local(("10.0.0.1", 80))
    assert not network._is_local(("0.0.0.0", 80))  # INADDR_ANY is fine to bind to, not to connect to
    assert network._is_local_host("0.0.0.0", resolving=True) and network._is_local_host(None, resolving=True)


def test_mode_one_refuses_every_other_host_before_any_lookup():
    """The checks the guards run before calling the real function: these never open a socket or resolve a name."""
    before = network.current_mode()
    with network.blocked("local"):
        with pytest.raises(network.NetworkBlockedError, match=r"lookup of 'huggingface.co' refused: the course "
                                                              r"runs offline.*COURSE_BLOCK_NETWORK=0"):
            network._check_host("huggingface.co", "lookup of")
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            with pytest.raises(network.NetworkBlockedError, match=r"sendto \('10.0.0.1', 53\) refused"):
                network._check_address(sock, ("10.0.0.1", 53), "sendto")
            network._check_address(sock, ("127.0.0.1", 53), "sendto")  # loopback passes
        finally:
            sock.close()
        for host in ("localhost", "127.0.0.1", "::1", None, "", "0.0.0.0"):
            network._check_host(host, "lookup of")  # no lookup leaves the machine for these
    assert network.current_mode() == before


def test_loopback_and_unix_sockets_are_allowed(listeners, tmp_path):
    tcp, _ = listeners
    for host in ("127.0.0.1", "localhost"):
        client = socket.socket()
        client.connect((host, tcp.getsockname()[1]))
        conn, _ = tcp.accept()
        assert conn.getpeername() == client.getsockname()
        conn.close()
        client.close()
    assert socket.getaddrinfo("127.0.0.1", 80)[0][4][0] == "127.0.0.1"
    path = str(tmp_path / "kernel.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(1)
    client = socket.socket(socket.AF_UNIX)
    assert client.connect_ex(path) == 0
    client.close()
    server.close()


def test_mode_all_refuses_every_socket_path_in_process(listeners):
    tcp, udp = listeners
    stream, dgram = socket.SOCK_STREAM, socket.SOCK_DGRAM
    attempts = [(stream, lambda s: s.connect(tcp.getsockname())),
                (stream, lambda s: s.connect_ex(tcp.getsockname())),
                (stream, lambda s: socket.create_connection(("localhost", tcp.getsockname()[1]), timeout=1)),
                (dgram, lambda s: s.sendto(b"x", udp.getsockname())),
                (dgram, lambda s: s.sendto(b"x", 0, udp.getsockname())),
                (dgram, lambda s: s.sendmsg([b"x"], [], 0, udp.getsockname())),
                (stream, lambda s: socket.getaddrinfo("localhost", 80)),
                (stream, lambda s: socket.gethostbyname("localhost")),
                (stream, lambda s: socket.gethostbyname_ex("localhost")),
                (stream, lambda s: socket.gethostbyaddr("127.0.0.1")),
                (stream, lambda s: socket.getnameinfo(("127.0.0.1", 80), 0))]
    before = network.current_mode()
    with network.blocked("all"):
        assert network.current_mode() == "all"
        for kind, call in attempts:
            with socket.socket(socket.AF_INET, kind) as sock:
                with pytest.raises(network.NetworkBlockedError,
                                   match=r"refused: the course runs offline \(COURSE_BLOCK_NETWORK=all"):
                    call(sock)
    with pytest.raises(BlockingIOError):
        tcp.accept()  # no connection reached the listener
    with pytest.raises(BlockingIOError):
        udp.recvfrom(10)  # nor a datagram
    assert network.current_mode() == before  # the previous mode is back


def test_child_process_with_the_makefiles_env_is_guarded_at_start_up(tmp_path):
    env = {**os.environ, **_make_test_env(), network.BLOCK_ENV: "all"}
    assert env["PYTHONPATH"].split(os.pathsep)[0] == str(OFFLINE_DIR)
    got = _run_child(env, tmp_path)
    _assert_all_refused(got)
    assert not got["fallback_loaded"]  # course_utils is installed here: its guard is the one in force


def test_child_without_course_utils_falls_back_and_chains_the_next_sitecustomize(tmp_path):
    hidden = tmp_path / "hidden" / "course_utils"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text("raise ImportError('course_utils is not installed here')\n")
    chained = tmp_path / "chained"
    chained.mkdir()
    (chained / "sitecustomize.py").write_text("import os\nos.environ['CHAINED_SITECUSTOMIZE'] = 'ran'\n")
    path = os.pathsep.join(map(str, (OFFLINE_DIR, hidden.parent, chained)))
    got = _run_child({**os.environ, "PYTHONPATH": path, network.BLOCK_ENV: "all"}, tmp_path)
    _assert_all_refused(got)
    assert got["fallback_loaded"] and got["chained"] == "ran"


def test_start_up_guard_fails_closed_on_an_unknown_mode(tmp_path):
    code = "from course_utils.course import network; print(network.current_mode())"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(OFFLINE_DIR), network.BLOCK_ENV: "bogus"})
    assert out.stdout.strip() == "local"
    assert "COURSE_BLOCK_NETWORK must be 1 (loopback only), all (loopback refused too) or 0 (off), got 'bogus'" \
        in out.stderr


def test_env_variable_turns_the_guard_on_when_course_utils_is_imported(tmp_path):
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(OFFLINE_DIR)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths), network.BLOCK_ENV: "1"}
    code = "import course_utils, sys; print(sys.modules['course_utils.course.network'].current_mode())"
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True,
                         timeout=60, check=True)
    assert out.stdout.strip() == "local"


@pytest.mark.filterwarnings("ignore:A test tried to use socket")  # pytest-socket warns as it raises
def test_pytest_socket_guards_the_test_process(request, listeners):
    config = request.config
    assert config.pluginmanager.has_plugin("socket")
    assert config.getoption("--allow-hosts") == "127.0.0.1,::1,localhost" and config.getoption("--allow-unix-socket")
    assert not config.getoption("--disable-socket")  # it would refuse loopback sockets too
    tcp, _ = listeners
    # 127.0.0.2 is loopback, so the course's guard lets it through; pytest-socket's allow-list does not
    with pytest.raises(pytest_socket.SocketConnectBlockedError, match='host "127.0.0.2"'):
        socket.socket().connect(("127.0.0.2", tcp.getsockname()[1]))
    pytest_socket.disable_socket(allow_unix_socket=True)
    try:
        with pytest.raises(pytest_socket.SocketBlockedError):
            socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        socket.socket(socket.AF_UNIX).close()
    finally:
        pytest_socket.enable_socket()
    # the course's guards survive pytest-socket's restores (after each test, in enable_socket)
    on = network.is_blocked()
    assert pytest_socket._true_connect is (network._guarded_connect if on else network._original_connect)
    assert socket.getaddrinfo is (network._guarded_getaddrinfo if on else network._original_getaddrinfo)


def test_allow_network_restores_the_originals_and_modes_parse():
    with network.blocked("local"):
        assert socket.getaddrinfo is network._guarded_getaddrinfo and network.current_mode() == "local"
        network.allow_network()
        assert socket.getaddrinfo is network._original_getaddrinfo and not network.is_blocked()
    modes = {v: network.mode_from_env(environ={network.BLOCK_ENV: v}) for v in ("1", "on", "all", "0", "off")}
    assert modes == {"1": "local", "on": "local", "all": "all", "0": None, "off": None}
    assert network.mode_from_env("local", environ={}) == "local"
    with pytest.raises(ValueError, match="got 'maybe'"):
        network.mode_from_env(environ={network.BLOCK_ENV: "maybe"})
    with pytest.raises(ValueError, match="mode must be one of 'local', 'all', got 'everything'"):
        network.block_network("everything")
