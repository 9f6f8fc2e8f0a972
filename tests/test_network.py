import socket

import pytest

from course_utils.course import network


def test_non_loopback_connection_is_refused():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with pytest.raises(network.NetworkBlockedError, match="blocked.*offline"):
        s.connect(("93.184.216.34", 80))
    s.close()


def test_loopback_is_allowed():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.socket()
    client.connect(("127.0.0.1", server.getsockname()[1]))  # must not raise
    client.close()
    server.close()


def test_is_local():
    assert network._is_local(("127.0.0.1", 1)) and network._is_local(("::1", 1, 0, 0))
    assert network._is_local("/tmp/kernel.sock") and network._is_local(("localhost", 1))
    assert not network._is_local(("huggingface.co", 443)) and not network._is_local(("10.0.0.1", 80))


def test_env_variable_turns_the_guard_on_at_import():
    import os
    import subprocess
    import sys

    code = ("import socket, course_utils\n"
            "try:\n    socket.create_connection(('192.0.2.1', 80), timeout=1)\nexcept OSError as e:\n"
            "    print(type(e).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ, network.BLOCK_ENV: "1"}, check=True)
    assert out.stdout.strip() == "NetworkBlockedError"


def test_allow_network_restores_the_original_connect():
    network.allow_network()
    try:
        assert socket.socket.connect is network._original_connect
    finally:
        network.block_network()
    assert socket.socket.connect is network._guarded_connect
