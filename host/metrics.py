"""Prometheus / OpenMetrics endpoint of a collector (``dnnhost collect --metrics HOST:PORT``).

Per board: presence, power now, the last result and the progress of the latest sweep; per collector: its message
counters. Figures are built at scrape time from a small state that ``observe`` keeps up to date, so a scrape costs
nothing between scrapes. A figure the boards did not send (no power source, no energy) is absent, never 0.

prometheus_client's server answers in OpenMetrics when the scraper's Accept header asks for
``application/openmetrics-text`` (Prometheus does), and in the plain text format otherwise.
"""

from __future__ import annotations

import dataclasses
import errno
import socket
import threading
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from dnnprof.shared import schema
from dnnprof.shared.errors import UserError

ALL_INTERFACES = "0.0.0.0"  # "PORT" and ":PORT" listen on every IPv4 interface, as Prometheus exporters do
EXAMPLE = "127.0.0.1:9108"

# counts() key -> (metric name without _total, help). The names say what is counted, so only message counts
# carry "messages".
COUNTERS = {
    "received": ("dnnprof_collector_messages_received", "Messages received from the broker, valid or not."),
    "stored": ("dnnprof_collector_messages_stored", "Messages new to the store."),
    "rejected": ("dnnprof_collector_messages_rejected", "Messages refused as invalid (kept in the rejected table)."),
    "duplicate": ("dnnprof_collector_messages_duplicates", "Messages received again that the store already held."),
    "replay_requests": ("dnnprof_collector_replay_requests", "Replay commands sent to boards for missing numbers."),
    "gaps": ("dnnprof_collector_gaps", "Numbers of a board's stream found missing for longer than the grace period."),
}
RESULT_LABELS = ("board", "network", "backend", "precision", "batch")


def parse_address(text: str) -> tuple[str, int]:
    """``"PORT"``, ``":PORT"``, ``"HOST:PORT"`` or ``"[v6]:PORT"`` -> (host, port); port 0 = any free port.

    Without a host: every IPv4 interface. Raises UserError for anything else."""
    raw = str(text)
    hint = f"--metrics {raw!r}: give HOST:PORT, e.g. {EXAMPLE}"
    text = raw.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or not rest.startswith(":"):
            raise UserError(hint)
        port_text = rest[1:]
    elif ":" in text:
        host, _, port_text = text.rpartition(":")
        if ":" in host:  # "::1:9108": which colon ends the host is a guess
            raise UserError(f"--metrics {raw!r}: write an IPv6 host in brackets, e.g. [::1]:9108")
        host = host or ALL_INTERFACES
    else:
        host, port_text = ALL_INTERFACES, text
    if not host or any(c.isspace() for c in host):
        raise UserError(hint)
    # isascii: str.isdigit() is also true for "²" and other digits that int() rejects or the user did not mean
    if not (port_text.isascii() and port_text.isdigit()):
        raise UserError(hint)
    if int(port_text) > 65535:
        raise UserError(f"--metrics {raw!r}: the port must be 0-65535 (0: any free port)")
    return host, int(port_text)


@dataclasses.dataclass
class _Board:
    """What is known of one board now; None = not known (its series is then absent)."""

    session: int | None = None  # of the latest status: a will of an older session is stale
    online: bool | None = None
    status_ts: float = 0.0
    power_w: float | None = None
    power_ts: float | None = None  # Unix seconds of the reading's last sample
    result: schema.Result | None = None
    run: schema.RunEvent | None = None


class Metrics:
    """Live figures of one collector for Prometheus: per board and per collector."""

    def __init__(self, collector: str, counts: Callable[[], Mapping[str, int]],
                 presence: Callable[[], Mapping[str, str]] | None = None) -> None:
        """``collector``: its name (the MQTT client id), the ``collector`` label; ``counts``: returns a snapshot of
        the collector's counters at each scrape, on the server's thread (``lambda: dict(collector.counts)``).
        ``presence``: each board's state as the store has it (``Collector.presence``): in a group each member
        receives only some of a board's statuses, and the store holds them all; without it, the statuses observed."""
        self.collector = collector
        self.counts = counts
        self.presence = presence
        self._boards: dict[str, _Board] = {}
        # observe() runs on the collector's writer thread and paho's; collect() on the server's request threads.
        self._lock = threading.Lock()
        # A private registry: the global one would also publish this process's Python metrics, and a second
        # Metrics (tests, a restart in the same process) would clash with the first's names.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)
        self._server = None
        self._thread: threading.Thread | None = None

    def observe(self, message: schema.Message) -> None:
        """Take in one valid message (re-deliveries and out-of-order replays included). Thread-safe."""
        if not isinstance(message, (schema.Status, schema.Telemetry, schema.Result, schema.RunEvent)):
            return  # nothing shown here; and a command is the host's own, addressed to a board
        with self._lock:
            board = self._boards.setdefault(message.board, _Board())
            if isinstance(message, schema.Status):
                # A will from an older session must not mark a board that has since reconnected as offline.
                if board.session is None or message.session >= board.session:
                    board.session, board.status_ts = message.session, message.ts
                    board.online = message.state == "online"
                    if not board.online:  # a board that left draws an unknown power, not its last reading
                        board.power_w = board.power_ts = None
            elif isinstance(message, schema.Telemetry):
                self._telemetry(board, message)
            elif isinstance(message, schema.Result):
                # Replays deliver older results late: the newest by the board's clock stays.
                if board.result is None or message.ts >= board.result.ts:
                    board.result = message
            elif isinstance(message, schema.RunEvent):
                run = board.run
                if run is None or (message.seq >= run.seq if message.run_id == run.run_id else message.ts >= run.ts):
                    board.run = message

    def _telemetry(self, board: _Board, t: schema.Telemetry) -> None:
        if board.online is False and t.ts < board.status_ts:  # sent before the board left, arrived after
            return
        if t.power_w:
            end = t.t0 + (len(t.power_w) - 1) * t.dt_s
            if board.power_ts is None or end >= board.power_ts:  # QoS 0 batches may arrive out of order
                # The batch's mean, as `dnnhost live` shows: one sample is sampler noise, and a scrape every 15 s
                # sees one value per batch anyway.
                board.power_w = sum(t.power_w) / len(t.power_w)
                board.power_ts = end
        elif t.power_source is None:  # no power source any more: the old reading is not its power now
            board.power_w = board.power_ts = None

    def collect(self) -> Iterator[Metric]:
        """The metric families now (prometheus_client's custom collector protocol; runs at each scrape)."""
        counts = dict(self.counts())
        presence = dict(self.presence()) if self.presence is not None else None
        with self._lock:
            boards = {name: dataclasses.replace(b) for name, b in self._boards.items()}
        if presence is not None:
            for name, state in presence.items():
                b = boards.setdefault(name, _Board())
                b.online = state == "online"
                if not b.online:  # a board that left draws an unknown power, not its last reading
                    b.power_w = b.power_ts = None
        online = GaugeMetricFamily("dnnprof_board_online", "1: the board is online; 0: offline or lost.",
                                   labels=["board"])
        power = GaugeMetricFamily("dnnprof_board_power_watts", "Total power of the board now (mean of its latest "
                                  "telemetry batch); absent without a power source.", labels=["board"], unit="watts")
        power_ts = GaugeMetricFamily("dnnprof_board_power_timestamp_seconds", "When the power reading was taken "
                                     "(its last sample), Unix seconds by the board's clock.", labels=["board"],
                                     unit="seconds")
        # The last result per board, not per network or configuration: one series per board at a time keeps the
        # cardinality bounded however many networks a sweep covers; the store keeps the history.
        ips = GaugeMetricFamily("dnnprof_result_images_per_second", "Throughput of the board's last result, images "
                                "(not batches) per second.", labels=RESULT_LABELS)
        energy = GaugeMetricFamily("dnnprof_result_energy_per_image_joules", "Gross energy per image of the board's "
                                   "last result, joules; absent when it has no energy.", labels=RESULT_LABELS,
                                   unit="joules")
        done = GaugeMetricFamily("dnnprof_sweep_points_done", "Points of the board's latest sweep measured, failed "
                                 "or skipped so far.", labels=["board", "run_id"])
        # Not "_points_total": that suffix marks a counter (promtool's lint says so), and this one is a gauge.
        planned = GaugeMetricFamily("dnnprof_sweep_points_planned", "Points in the board's latest sweep.",
                                    labels=["board", "run_id"])
        for name, b in sorted(boards.items()):
            if b.online is not None:
                online.add_metric([name], 1.0 if b.online else 0.0)
            if b.power_w is not None:
                power.add_metric([name], b.power_w)
                power_ts.add_metric([name], b.power_ts)
            if b.result is not None:
                r = b.result
                labels = [name, r.network, r.backend, r.precision, str(r.batch)]
                ips.add_metric(labels, r.throughput_ips)
                if r.energy_per_inference_j is not None:
                    energy.add_metric(labels, r.energy_per_inference_j.gross)
            if b.run is not None:
                done.add_metric([name, b.run.run_id], b.run.points_done)
                planned.add_metric([name, b.run.run_id], b.run.points_total)
        yield from (online, power, power_ts, ips, energy, done, planned)
        for key, (name, help_text) in COUNTERS.items():
            counter = CounterMetricFamily(name, help_text, labels=["collector"])
            counter.add_metric([self.collector], counts.get(key, 0))
            yield counter

    def serve(self, address: str) -> str:
        """Serve the metrics over HTTP at ``address`` ("HOST:PORT", port 0 = any free port) on a daemon thread;
        returns the address bound, "host:port". Raises UserError (one line) when it cannot listen there."""
        if self._server is not None:
            raise RuntimeError("this Metrics is already serving; stop() it first")
        host, port = parse_address(address)
        where = f"--metrics {address!r}"
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=self.registry)
        except socket.gaierror as exc:
            raise UserError(f"{where}: cannot resolve host {host!r} ({exc.strerror}): give an address of this "
                            f"machine, e.g. {EXAMPLE}") from None
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise UserError(f"{where}: port {port} is in use: pick another port, or 0 for any free one") from None
            if exc.errno == errno.EACCES:
                raise UserError(f"{where}: not allowed to listen on port {port}: use a port above 1023") from None
            if exc.errno == errno.EADDRNOTAVAIL:
                raise UserError(f"{where}: {host} is not an address of this machine: use one of its addresses, "
                                f"{ALL_INTERFACES} (all) or 127.0.0.1") from None
            raise UserError(f"{where}: cannot listen there: {exc.strerror or exc}") from None
        bound_host, bound_port = self._server.server_address[:2]
        return f"[{bound_host}]:{bound_port}" if ":" in bound_host else f"{bound_host}:{bound_port}"

    def stop(self) -> None:
        """Stop serving and free the port (a Metrics not serving: nothing to do)."""
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
