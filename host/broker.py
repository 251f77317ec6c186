"""The embedded MQTT broker (amqtt): the zero set-up default for one machine, bound to localhost unless told.

It runs on its own asyncio loop in a daemon thread so the rest of the host stays synchronous. For a fleet,
point agents and host at a real broker (Mosquitto) instead.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

from dnnprof.shared.errors import UserError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class EmbeddedBroker:
    """``with EmbeddedBroker(port=0) as b: b.address`` — port 0 picks a free port."""

    def __init__(self, host: str = "127.0.0.1", port: int = 1883, max_connections: int = 500) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.max_connections = max_connections
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._broker = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> EmbeddedBroker:
        try:
            from amqtt.broker import Broker
        except ImportError:
            raise UserError("the embedded broker needs amqtt: pip install 'dnnprof[host]'") from None
        with socket.socket() as probe:  # amqtt's own error for a taken port is a long traceback
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((self.host, self.port))
            except OSError as exc:
                raise UserError(
                    f"cannot start the embedded broker on {self.address}: {exc.strerror}. Another broker may be "
                    f"running there: use it with --broker {self.address}, or pick another --port"
                ) from None
        # amqtt logs every connection at INFO and tracebacks for clients that vanish; keep our terminal quiet.
        logging.getLogger("amqtt").setLevel(logging.CRITICAL)
        loop = asyncio.new_event_loop()
        self._loop = loop
        config = {
            "listeners": {"default": {"type": "tcp", "bind": self.address, "max_connections": self.max_connections}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        }

        async def boot():
            self._broker = Broker(config)
            await self._broker.start()

        self._thread = threading.Thread(target=loop.run_forever, name="embedded-broker", daemon=True)
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(boot(), loop).result(timeout_s)
        except Exception as exc:
            self.stop()
            raise UserError(f"the embedded broker did not start on {self.address}: {exc}") from None
        return self

    def stop(self, timeout_s: float = 10.0) -> None:
        loop, self._loop = self._loop, None
        if loop is None:
            return
        if self._broker is not None:
            try:
                asyncio.run_coroutine_threadsafe(self._broker.shutdown(), loop).result(timeout_s)
            except Exception:  # noqa: BLE001 - stopping anyway; nothing a user can act on
                pass
            self._broker = None
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout_s)
        loop.close()

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
