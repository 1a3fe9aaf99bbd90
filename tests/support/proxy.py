"""A TCP proxy on loopback that can refuse, reset, black-hole or slow connections.

Put it between the code under test and a server (``redis://127.0.0.1:<proxy.port>``),
then change :attr:`FaultyProxy.mode` while the test runs:

* ``"pass"``: bytes flow both ways;
* ``"refuse"``: new connections are refused, open ones are cut;
* ``"reset"``: new and open connections are reset (RST);
* ``"blackhole"``: connections are accepted (or kept) but nothing ever arrives: the
  peer waits until its own timeout, as behind a dead route;
* ``"slow"``: every chunk is held ``delay_s`` seconds.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections.abc import Callable
from typing import Literal

Mode = Literal["pass", "refuse", "reset", "blackhole", "slow"]


class FaultyProxy:
    def __init__(self, target_port: int, *, delay_s: float = 0.2) -> None:
        self.target_port = target_port
        self.delay_s = delay_s
        self._mode: Mode = "pass"
        self._lock = threading.Lock()
        self._connections: list[socket.socket] = []
        self._listener: socket.socket | None = None
        self._stopped = threading.Event()
        self._threads: list[threading.Thread] = []
        self.port = self._listen(0)
        self._start(self._accept_loop)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def mode(self) -> Mode:
        return self._mode

    @mode.setter
    def mode(self, mode: Mode) -> None:
        with self._lock:
            self._mode = mode
            if mode in ("refuse", "reset"):
                self._cut_all(reset=mode == "reset")
            if mode == "refuse" and self._listener is not None:
                # No listener: the kernel answers a connect with RST (refused).
                self._listener.close()
                self._listener = None
            elif mode != "refuse" and self._listener is None:
                self._listen(self.port)

    def close(self) -> None:
        self._stopped.set()
        with self._lock:
            self._cut_all(reset=False)
            if self._listener is not None:
                self._listener.close()
        for thread in self._threads:
            thread.join(1.0)

    def _listen(self, port: int) -> int:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", port))
        listener.listen(64)
        listener.settimeout(0.1)
        self._listener = listener
        bound: int = listener.getsockname()[1]
        return bound

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            listener = self._listener
            if listener is None:
                time.sleep(0.02)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            self._admit(client)

    def _admit(self, client: socket.socket) -> None:
        if self._mode in ("refuse", "reset"):
            _reset(client)
            return

        try:
            upstream = socket.create_connection(
                ("127.0.0.1", self.target_port), timeout=2
            )
        except OSError:
            _reset(client)
            return

        with self._lock:
            self._connections += [client, upstream]
        for source, sink in ((client, upstream), (upstream, client)):
            self._start(self._pump, source, sink)

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            source.settimeout(0.1)
        except OSError:  # cut (closed) before this thread started
            _close(sink)
            return

        while not self._stopped.is_set():
            try:
                chunk = source.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break

            while self._mode == "blackhole" and not self._stopped.is_set():
                time.sleep(
                    0.05
                )  # swallow nothing, deliver nothing, until the mode changes
            if self._mode == "slow":
                time.sleep(self.delay_s)
            try:
                sink.sendall(chunk)
            except OSError:
                break
        _close(sink)
        _close(source)

    def _cut_all(self, *, reset: bool) -> None:
        for connection in self._connections:
            _reset(connection) if reset else _close(connection)
        self._connections.clear()


def _reset(connection: socket.socket) -> None:
    # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
    with contextlib.suppress(OSError):
        connection.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
    _close(connection)


def _close(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.close()
