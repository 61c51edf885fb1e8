"""plait.green.patch() (issue 14, point 2): the stdlib's blocking calls switch inside green
strands, and behave exactly as before everywhere else.

Each test would fail (never hang: every wait is bounded) if the patched call blocked the
loop's thread: two strands of one loop must make progress at the same time.
"""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
from _green_helpers import (
    in_group,
    patched,  # noqa: F401 - the fixture, used by pytestmark
)

import plait
import plait.green
import plait.testing

pytest.importorskip("greenlet", reason="green strands need the greenlet extra (plait[green])")

pytestmark = [pytest.mark.timeout(30), pytest.mark.usefixtures("patched")]

_ORIGINAL_SLEEP = time.sleep
_ORIGINAL_RECV = socket.socket.recv


def _once_parked(waiting: list[Any], action: Callable[[], Any]) -> Callable[[], Any]:
    """A green strand body that runs ``action`` once the strands in ``waiting`` have
    parked (so the parked one can only be woken through its loop)."""

    def body() -> Any:
        while not waiting:
            plait.sleep(0.001)
        plait.testing.wait_parked(strands=waiting, timeout=10)
        return action()

    return body


def test_time_sleep_in_a_green_strand_lets_its_loop_run() -> None:
    order: list[str] = []
    sleeper: list[Any] = []

    def a() -> None:
        sleeper.append(plait.current_strand())
        time.sleep(0.2)
        order.append("a woke")

    def b() -> None:
        while not sleeper:
            plait.sleep(0.001)
        plait.testing.wait_parked(strands=sleeper, timeout=10)
        order.append("b ran while a slept")

    in_group(a, b)
    assert order == ["b ran while a slept", "a woke"]


def test_time_sleep_outside_green_strands_is_the_original_behaviour() -> None:
    assert time.sleep is not _ORIGINAL_SLEEP  # patched...
    start = time.monotonic()
    time.sleep(0.01)  # ...and in the main thread it still just sleeps
    assert time.monotonic() - start >= 0.01
    with pytest.raises(ValueError, match="non-negative"):
        time.sleep(-1)

    def in_thread() -> str:
        time.sleep(0.001)
        return "slept"

    with plait.TaskGroup() as tg:
        t = tg.spawn(in_thread, on="thread")
    assert t.result() == "slept"


def test_unpatch_puts_the_originals_back() -> None:
    plait.green.unpatch()
    assert not plait.green.is_patched()
    assert time.sleep is _ORIGINAL_SLEEP
    assert socket.socket.recv is _ORIGINAL_RECV
    plait.green.patch()
    plait.green.patch()  # (idempotent)
    assert plait.green.is_patched()


def test_a_green_echo_server_and_client_on_one_loop() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    payload = bytes(range(256)) * 4096  # 1 MiB: more than the socket buffers hold

    def server() -> int:
        conn, _ = listener.accept()
        with conn:
            chunks = []
            while data := conn.recv(65536):
                chunks.append(data)
            got = b"".join(chunks)
            conn.sendall(got)
        return len(got)

    def client() -> bool:
        with socket.create_connection(("127.0.0.1", port), timeout=20) as sock:
            sock.sendall(payload)
            sock.shutdown(socket.SHUT_WR)
            buf = bytearray(len(payload))
            view, n = memoryview(buf), 0
            while n < len(buf):
                got = sock.recv_into(view[n:])
                assert got, "the server closed early"
                n += got
        return bytes(buf) == payload

    try:
        assert in_group(server, client) == [len(payload), True]
    finally:
        listener.close()


def test_a_socket_timeout_is_honoured_in_a_green_strand() -> None:
    a, b = socket.socketpair()
    a.settimeout(0.1)

    def reader() -> str:
        try:
            a.recv(10)
        except TimeoutError:
            return "timed out"
        return "got data"

    try:
        assert in_group(reader) == ["timed out"]
    finally:
        a.close()
        b.close()


class _SlowHandler(http.server.BaseHTTPRequestHandler):
    """Answers only when three requests are in flight at once (so a client that fetched one
    at a time fails: the barrier breaks after its timeout)."""

    barrier: threading.Barrier

    def do_GET(self) -> None:
        try:
            self.barrier.wait()
        except threading.BrokenBarrierError:
            self.send_error(503, "the requests did not arrive together")
            return
        body = self.path.encode() * 100
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


def _fetch_three_at_once(tls: ssl.SSLContext | None, client: ssl.SSLContext | None) -> list[int]:
    """Three urllib fetches, each in a green strand, from a local server that answers only
    when all three are in flight (``tls``: HTTPS, checked by ``client``)."""
    handler = type("Handler", (_SlowHandler,), {"barrier": threading.Barrier(3, timeout=10)})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"{'https' if tls else 'http'}://localhost:{server.server_address[1]}"

    def fetch(path: str) -> Any:
        def body() -> int:
            with urllib.request.urlopen(url + path, timeout=20, context=client) as response:
                return len(response.read())

        return body

    try:
        return in_group(fetch("/a"), fetch("/bb"), fetch("/ccc"))
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_urllib_fetches_in_green_strands_run_at_the_same_time() -> None:
    assert _fetch_three_at_once(None, None) == [200, 300, 400]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for localhost (made with the openssl command)."""
    folder = tmp_path_factory.mktemp("tls")
    cert, key = str(folder / "cert.pem"), str(folder / "key.pem")
    try:
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost",
             "-keyout", key, "-out", cert],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"the openssl command could not make a test certificate: {exc}")
    return cert, key


def test_https_fetches_in_green_strands_run_at_the_same_time(certificate: tuple[str, str]) -> None:
    cert, key = certificate
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=cert)
    assert _fetch_three_at_once(tls, client) == [200, 300, 400]


def test_getaddrinfo_in_a_green_strand_gives_what_the_original_gives() -> None:
    def body() -> Any:
        return socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)

    expected = socket.getaddrinfo("127.0.0.1", 80, type=socket.SOCK_STREAM)
    assert in_group(body) == [expected]


def test_popen_wait_in_a_green_strand_lets_its_loop_run() -> None:
    waiting: list[Any] = []
    seen: list[str] = []

    def green() -> int:
        waiting.append(plait.current_strand())
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.3)"])
        code = proc.wait(timeout=20)
        seen.append("waited")
        return code

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            g = tg.spawn(green, on="green")
            while not waiting:
                await plait.async_sleep(0.001)
            await plait.testing.async_wait_parked(strands=waiting, timeout=10)
            seen.append("loop ran while it waited")
        return g.result()

    assert plait.run(main) == 0
    assert seen == ["loop ran while it waited", "waited"]


def test_socket_calls_outside_green_strands_are_unchanged() -> None:
    a, b = socket.socketpair()
    with a, b:
        b.sendall(b"x" * 10)
        assert a.recv(10) == b"x" * 10
        a.setblocking(False)
        with pytest.raises(BlockingIOError):
            a.recv(1)


def test_select_in_a_green_strand_lets_another_green_strand_write() -> None:
    import select

    a, b = socket.socketpair()
    waiting: list[Any] = []

    def reader() -> list[bool]:
        waiting.append(plait.current_strand())
        readable, _, _ = select.select([a], [], [], 20)
        return [r is a for r in readable]

    with a, b:
        assert in_group(reader, _once_parked(waiting, lambda: b.sendall(b"x")))[0] == [True]


def test_popen_communicate_in_a_green_strand_lets_its_loop_run() -> None:
    waiting: list[Any] = []
    seen: list[str] = []

    def green() -> bytes:
        waiting.append(plait.current_strand())
        child = "import sys, time; d = sys.stdin.read(); time.sleep(0.3); print(d.upper())"
        proc = subprocess.Popen(
            [sys.executable, "-c", child], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        out, _ = proc.communicate(b"hello", timeout=20)
        seen.append("communicated")
        return out.strip()

    async def main() -> Any:
        async with plait.TaskGroup() as tg:
            g = tg.spawn(green, on="green")
            while not waiting:
                await plait.async_sleep(0.001)
            await plait.testing.async_wait_parked(strands=waiting, timeout=10)
            seen.append("loop ran while it communicated")
        return g.result()

    assert plait.run(main) == b"HELLO"
    assert seen == ["loop ran while it communicated", "communicated"]


@pytest.mark.parametrize("kind", ["poll", "epoll"])
def test_a_poll_object_in_a_green_strand_lets_another_green_strand_write(kind: str) -> None:
    import select

    a, b = socket.socketpair()
    waiting: list[Any] = []

    def reader() -> list[int]:
        if kind == "poll":
            poller: Any = select.poll()
            poller.register(a, select.POLLIN)
            timeout: float = 20_000  # (milliseconds)
        else:
            poller = select.epoll()
            poller.register(a.fileno(), select.EPOLLIN)
            timeout = 20.0
        waiting.append(plait.current_strand())
        try:
            return [fd for fd, _ in poller.poll(timeout)]
        finally:
            if kind == "epoll":
                poller.close()

    with a, b:
        assert in_group(reader, _once_parked(waiting, lambda: b.sendall(b"x")))[0] == [a.fileno()]


def test_a_poll_object_outside_green_strands_is_the_original_behaviour() -> None:
    import select

    a, b = socket.socketpair()
    with a, b:
        poller = select.poll()
        poller.register(a, select.POLLIN)
        assert poller.poll(0) == []
        b.sendall(b"x")
        assert poller.poll(1000) == [(a.fileno(), select.POLLIN)]
        poller.unregister(a)
        assert poller.poll(0) == []


def test_udp_sendto_and_recvfrom_between_green_strands_of_one_loop() -> None:
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind(("127.0.0.1", 0))
    server.settimeout(20)
    client.settimeout(20)
    waiting: list[Any] = []

    def serve() -> bytes:
        waiting.append(plait.current_strand())
        data, peer = server.recvfrom(100)  # parks first: the client runs meanwhile
        server.sendto(data.upper(), 0, peer)
        return data

    def ask() -> bytes:
        client.sendto(b"ping", server.getsockname())
        return client.recvfrom(100)[0]

    with server, client:
        assert in_group(serve, _once_parked(waiting, ask)) == [b"ping", b"PING"]


def test_sendmsg_and_recvmsg_between_green_strands_of_one_loop() -> None:
    a, b = socket.socketpair()
    a.settimeout(20)
    b.settimeout(20)
    waiting: list[Any] = []

    def receive() -> bytes:
        waiting.append(plait.current_strand())
        data, _anc, _flags, _addr = a.recvmsg(100)
        return data

    with a, b:
        sent = _once_parked(waiting, lambda: b.sendmsg(iter([b"he", b"llo"])))
        assert in_group(receive, sent) == [b"hello", 5]
