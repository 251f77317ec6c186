"""Where a sweep sends its messages: the one-method protocol ``publish.link``'s MQTT session and JSONL file, and the
service's outbox, all speak. Its own module so the publishers need nothing else of ``measure`` to name it."""

from __future__ import annotations

from typing import Protocol

from dnnprof.shared import schema


class Sink(Protocol):
    """Where a sweep sends its messages: ``publish.link``'s MQTT session or JSONL file, the service's outbox."""

    def send(self, message: schema.Message) -> None: ...

    def close(self) -> list[schema.Message]:
        """Finish; return the messages that could not be delivered."""
        ...
