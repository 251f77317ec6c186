"""``dnnhost``: collect results from the fleet, store them, and answer the energy question."""

from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from dnnprof.shared import catalog, cli, schema, topics, units
from dnnprof.shared.errors import UserError

from . import analysis, views
from . import export as export_mod
from . import live as live_mod
from . import remote as remote_mod
from . import report as report_mod
from .broker import EmbeddedBroker
from . import sql
from .collector import GROUP_SESSION_EXPIRY_S, Collector, check_group, decode_line, ingest
from .store import Store, default_path, demo_path
from .views import err, out

app = cli.app("dnnhost", "Collect profiling results from dnnprof agents and report the best accuracy each board "
              "reaches within an energy budget.")

DbOption = Annotated[Optional[str], typer.Option(
    "--db", envvar="DNNPROF_DB", show_envvar=True,
    help=f"Result store: a SQLite file, or a PostgreSQL database a team shares, postgresql://USER@HOST[:PORT]/DB "
         f"(the password from ~/.pgpass or PGPASSWORD rather than the URL). Default: {default_path()}")]
# measure and sweep: a store only when named (they keep the command and the answer there).
RecordOption = Annotated[Optional[str], typer.Option(
    "--db", envvar="DNNPROF_DB", show_envvar=True,
    help="Also keep the command and the agent's answer in this store (a SQLite file or postgresql://...), before "
         "it is sent and when the answer comes. `dnnhost collect` keeps those it sees on the broker anyway.")]
CatalogOption = Annotated[Optional[Path], typer.Option(
    "--catalog", help="A CSV or TOML file of networks that adds to or overrides the built-in reference accuracy. "
                      f"Default: {catalog.default_user_path()} when it exists.")]


# collect and live: an existing broker, or the embedded one on BIND:PORT.
BrokerOption = Annotated[Optional[str], typer.Option(help="Use this broker HOST[:PORT] instead of running the "
                                                          "embedded one.")]
BindOption = Annotated[str, typer.Option(help="Address the embedded broker listens on (0.0.0.0 for a fleet).")]
PortOption = Annotated[int, typer.Option(help="Port of the embedded broker.")]
# The same on every start, so the broker hands this collector the session (and the results queued in it) it left.
DEFAULT_CLIENT_ID = f"dnnhost-collect-{topics.slug(socket.gethostname())}"


def _client_id(text: str) -> str:
    # MQTT allows any UTF-8 up to 65535 bytes; brokers and their logs cope best with short printable ids.
    if not 1 <= len(text) <= 128 or not text.isascii() or not text.isprintable() or " " in text:
        raise UserError(f"--client-id {text!r}: use 1-128 printable ASCII characters without spaces, "
                        f"e.g. {DEFAULT_CLIENT_ID}")
    return text


def _catalog(path: Path | None) -> catalog.Catalog:
    if path is not None:
        return catalog.load_user(path)
    default = catalog.default_user_path()
    return catalog.load_user(default) if default.is_file() else catalog.Catalog()


def _security(broker: str | None, tls_ca: Path | None, tls_cert: Path | None, tls_key: Path | None,
              username: str | None, password_file: Path | None) -> dict:
    """The Collector's ``tls``/``username``/``password`` from the shared options; each mistake is one line."""
    return cli.broker_security(tls_ca, tls_cert, tls_key, username, password_file,
                               no_broker=None if broker else "the embedded broker takes neither TLS nor a login; "
                                                             "give --broker HOST[:PORT] of a broker that does")


def _store(db: str | None, *, must_exist: bool = True) -> str | Path:
    """The store ``--db`` names (default: the default SQLite file). ``must_exist``: a SQLite file that is not there
    is a mistyped path or a store never written — said, rather than an empty one created; a database is checked by
    connecting to it."""
    if db and sql.is_url(db):
        return db
    path = Path(db) if db else default_path()
    if must_exist and not path.exists():
        raise UserError(f"no result store at {path} yet: pass the one you wrote with --db, or run `dnnhost demo`, "
                        "`dnnhost collect` or `dnnhost import`")
    return path


def _broker_or_embedded(broker: str | None, bind: str, port: int) -> tuple[str, EmbeddedBroker | None]:
    if broker:
        host, p = topics.parse_broker(broker)
        return f"{host}:{p}", None
    embedded = EmbeddedBroker(bind, port).start()
    return embedded.address, embedded


@app.command()
def collect(
    broker: BrokerOption = None,
    bind: BindOption = "127.0.0.1",
    port: PortOption = topics.DEFAULT_PORT,
    db: DbOption = None,
    duration: Annotated[Optional[str], typer.Option(help="Stop after this long, e.g. 10min (default: Ctrl-C).")]
    = None,
    tls_ca: cli.TlsCaOption = None,
    tls_cert: cli.TlsCertOption = None,
    tls_key: cli.TlsKeyOption = None,
    username: cli.UsernameOption = None,
    password_file: cli.PasswordFileOption = None,
    client_id: Annotated[Optional[str], typer.Option(
        "--client-id", help="MQTT client id of this collector's persistent session: while it is stopped the broker "
                            "queues the results for it, and hands them over when it connects again under the same "
                            "id. Two collectors on one broker need different ids (each would take the other's "
                            f"session over). Default: {DEFAULT_CLIENT_ID}")] = None,
    group: Annotated[Optional[str], typer.Option(
        "--group", help="Share the stream with the other collectors of this group, on this machine or others: each "
                        "message goes to one of them (an MQTT shared subscription, $share/GROUP/...; Mosquitto 2, "
                        "EMQX, HiveMQ), all write one store (give the same --db, PostgreSQL for several machines), "
                        "and a gap is asked for once, whichever collector found it. Each member needs its own "
                        "--client-id.", rich_help_panel="Several collectors")] = None,
    session_expiry: Annotated[str, typer.Option(
        "--session-expiry", help="With --group: how long the broker keeps a member's share queued after it went "
                                 "away (then the others take it over, and what was queued is asked of the boards "
                                 "again).", rich_help_panel="Several collectors")]
    = f"{GROUP_SESSION_EXPIRY_S // 60}min",
    metrics: Annotated[Optional[str], typer.Option(
        "--metrics", metavar="HOST:PORT", help="Serve OpenMetrics for Prometheus here (per board: online, power, "
                                               "last result's images/s and energy per image, sweep progress; per "
                                               "collector: messages in, stored, rejected, replay requests), e.g. "
                                               "127.0.0.1:9108. docs/examples/grafana-dashboard.json shows them.")]
    = None,
) -> None:
    """Store every result the agents publish until Ctrl-C (or --duration).

    Without --broker it runs the embedded broker, so agents can publish straight to this machine:
    [bold]dnnagent run models/ --broker THIS-HOST[/bold]

    Agents number what they publish: numbers still missing after a few seconds are asked for again (the agent
    publishes them from its outbox); `dnnhost gaps` lists what never arrived.

    Past one machine: [bold]dnnhost collect --broker mqtt.lan --group lab --client-id lab-1 --db
    postgresql://dnnprof@db.lan/dnnprof --metrics 0.0.0.0:9108[/bold] on each collector machine (docs/FLEET.md).
    """
    stop_after = units.parse_time(duration) if duration else math.inf
    session_id = _client_id(client_id) if client_id is not None else DEFAULT_CLIENT_ID
    security = _security(broker, tls_ca, tls_cert, tls_key, username, password_file)
    expiry_s = units.parse_time(session_expiry)
    if group is not None:
        check_group(group)
        if not broker:
            raise UserError("--group needs a broker with shared subscriptions (Mosquitto 2, EMQX, HiveMQ): give "
                            "--broker HOST[:PORT]; the embedded one has none")
        if not 1 <= expiry_s <= 2**32 - 2:
            raise UserError(f"--session-expiry {session_expiry}: give between 1s and 136 years, e.g. 10min")
    store_at = _store(db, must_exist=False)
    exporter = None
    if metrics is not None:
        from .metrics import Metrics, parse_address

        parse_address(metrics)  # a mistyped address is said before anything starts
    address, embedded = _broker_or_embedded(broker, bind, port)
    collector = Collector(address, store_at, client_id=session_id, persistent=True, replay=True, group=group,
                          session_expiry_s=expiry_s, on_valid=(lambda m: exporter.observe(m)) if metrics else None,
                          **security)
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stopping.set())
    try:
        if metrics is not None:
            exporter = Metrics(collector.client_id, lambda: dict(collector.counts), lambda: collector.presence)
            err.print(f"metrics on http://{exporter.serve(metrics)}/metrics")
        collector.start()
        err.print(f"collecting from {address}{f' in group {group}' if group else ''} into {sql.where(store_at)} — "
                  "Ctrl-C to stop")
        started = time.monotonic()
        with Live(console=err, refresh_per_second=4, transient=True) as live:
            while not stopping.is_set() and time.monotonic() - started < stop_after:
                live.update(views.collect_status(collector.connected, collector.counts))
                stopping.wait(0.25)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a user ends it: the summary below still prints
    finally:
        collector.stop()
        if exporter is not None:
            exporter.stop()
        if embedded:
            embedded.stop()
    views.collect_summary(collector.counts, sql.where(store_at), collector.last_rejection)


@app.command()
def live(
    broker: BrokerOption = None,
    bind: BindOption = "127.0.0.1",
    port: PortOption = topics.DEFAULT_PORT,
    board: Annotated[Optional[list[str]], typer.Option(help="Show only this board; repeat for several.")] = None,
    sort: Annotated[str, typer.Option(help=f"Order of the boards: {', '.join(live_mod.SORTS)}.")] = "board",
    refresh: Annotated[float, typer.Option(help="Redraws per second.")] = 4.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame of the current state and exit (for "
                                                      "scripts; needs --broker).")] = False,
    duration: Annotated[Optional[str], typer.Option(help="Stop after this long, e.g. 10min (default: Ctrl-C).")]
    = None,
    db: DbOption = None,
    tls_ca: cli.TlsCaOption = None,
    tls_cert: cli.TlsCertOption = None,
    tls_key: cli.TlsKeyOption = None,
    username: cli.UsernameOption = None,
    password_file: cli.PasswordFileOption = None,
) -> None:
    """A dashboard of the fleet in the terminal: presence, power (the last minute as a sparkline), rails,
    temperature, the current run with progress and ETA, the last result, and warnings.

    Everything it receives is also stored, as `dnnhost collect` does, so nothing is lost when `live` is all
    you ran. If the broker goes away, the last known state stays on screen under a banner while it reconnects.
    """
    if sort not in live_mod.SORTS:
        raise UserError(f"--sort {sort!r}: use one of {', '.join(live_mod.SORTS)}")
    if not 0.1 <= refresh <= 30:
        raise UserError(f"--refresh {refresh:g}: give between 0.1 and 30 redraws per second")
    for name in board or []:
        topics.check_id(name)
    if once and not broker:
        raise UserError("--once reads the state a broker holds: give --broker HOST[:PORT]")
    stop_after = units.parse_time(duration) if duration else math.inf
    security = _security(broker, tls_ca, tls_cert, tls_key, username, password_file)
    store_at = _store(db, must_exist=False)
    address, embedded = _broker_or_embedded(broker, bind, port)
    dashboard = live_mod.Dashboard(address, store_at, set(board) if board else None, sort, refresh, console=out,
                                   **security)
    if once:
        out.print(dashboard.once(), soft_wrap=True)  # one line per board, whatever the pipe's width
        return
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: stopping.set())
    began = time.monotonic()
    try:
        dashboard.run(stopping, stop_after)
    except KeyboardInterrupt:
        pass  # Ctrl-C is how a user ends it: the summary below still prints
    finally:
        if embedded:
            embedded.stop()
    elapsed = max(1e-9, time.monotonic() - began)
    views.live_summary(dashboard.frames, dashboard.frame_rate_hz, elapsed, dashboard.fleet.counts, sql.where(store_at))


@app.command("import")
def import_(
    files: Annotated[list[Path], typer.Argument(help="JSONL files written by `dnnagent run --output`.")],
    db: DbOption = None,
) -> None:
    """Load results an agent wrote to a file (no broker needed). Re-importing a file adds nothing twice."""
    for path in files:
        if not path.is_file():
            raise UserError(f"{path} is not a file")
    new = dup = bad = 0
    with Store(_store(db, must_exist=False)) as store:
        for path in files:
            with path.open("rb") as fh, store.transaction():
                for lineno, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        message, reason = decode_line(line), None
                    except (schema.SchemaError, OverflowError) as exc:  # OverflowError: an integer too large
                        message, reason = None, str(exc)
                    got = ingest(store, f"import:{path}:{lineno}", line, message, reason)
                    if got.message is None:
                        views.import_rejected(path, lineno, got.reason)
                        bad += 1
                    elif got.added:
                        new += 1
                    else:
                        dup += 1
        views.import_summary(new, dup, bad, store.where)
    if bad:
        raise UserError(f"{bad} lines were rejected (kept in the store for inspection); the rest were imported",
                        exit_code=1)


@app.command()
def rejected(
    db: DbOption = None,
    limit: Annotated[int, typer.Option(help="List at most this many, newest first.")] = 20,
    since: Annotated[Optional[str], typer.Option(help="Only input refused within this long, e.g. 10min or 24h.")]
    = None,
    source: Annotated[Optional[str], typer.Option(help="Only input whose source contains this text: a board id, "
                                                       "a topic (mqtt:dnnprof/v1/...) or a file (import:...).")]
    = None,
    show: Annotated[Optional[int], typer.Option("--show", metavar="ID", help="Print one in full, its payload as "
                                                                             "text (hex when it is not UTF-8).")]
    = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts (payloads in base64).")] = False,
) -> None:
    """What the host refused, and why: malformed JSON, another schema version, wrong types, payloads over the size
    limit, topics outside dnnprof/v1/BOARD/KIND, a board in the payload that differs from the topic's.

    `dnnhost collect`, `live` and `import` keep every refusal (its first 64 KiB) in the store rather than drop it.
    List the newest with [bold]dnnhost rejected --since 1h[/bold], then read one whole with
    [bold]dnnhost rejected --show ID[/bold]. Control characters in payloads are printed escaped.
    """
    if limit < 1:
        raise UserError(f"--limit {limit}: give a number of rows, 1 or more")
    cutoff = time.time() - units.parse_time(since) if since else None
    store_at = _store(db)
    path = sql.where(store_at)
    with Store(store_at) as store:
        if show is not None:
            row = store.rejected_one(show)
            if row is None:
                raise UserError(f"no rejected input with id {show} in {path}: `dnnhost rejected` lists the ids")
            rows = [row]
        else:
            rows = store.rejected(limit + 1, cutoff, source)  # one more than shown says whether there are more
    more, rows = len(rows) > limit, rows[:limit]
    if as_json:
        views.json_out(views.rejected_json(rows[0]) if show is not None else [views.rejected_json(r) for r in rows])
        return
    if show is not None:
        views.show_rejected(rows[0])
        return
    if not rows:
        views.rejected_none(since, source, path)
        return
    views.rejected_table(rows, path)
    if more:
        views.rejected_more(limit)


@app.command()
def gaps(
    db: DbOption = None,
    board: Annotated[Optional[str], typer.Option(help="Only this board.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """What never arrived: per board and outbox stream, the highest number announced, the numbers received, the
    ranges still missing, and those no replay can recover (with why).

    Agents number their results and run events (a stream per outbox). `dnnhost collect` and `live` ask a board to
    publish numbers missing for a few seconds again, and again every 15 s while they stay missing; numbers the
    agent no longer has are recorded as unrecoverable and never asked for again.
    [bold]dnnhost gaps --board orin-01[/bold]
    """
    if board:
        topics.check_id(board)
    store_at = _store(db)
    path = sql.where(store_at)
    with Store(store_at) as store:
        streams, missing, lost = store.streams(board), store.gaps(board), store.lost(board)
    if as_json:
        views.json_out(views.gaps_json(path, streams, missing, lost))
    elif not streams:
        views.gaps_none(board, path)
    else:
        views.gaps_table(path, streams, missing, lost)


MEASURE_TIMEOUT_EXIT = 69  # EX_UNAVAILABLE (sysexits.h): nobody answered


@app.command()
def measure(
    board: Annotated[str, typer.Argument(help="The board id of the agent that is to measure.")],
    model: Annotated[str, typer.Argument(help="An ONNX file name inside the agent's models directory.")],
    batch: Annotated[int, typer.Option("--batch", "-b", help="Batch size.")],
    precision: Annotated[Optional[str], typer.Option(help="fp32, fp16 or int8 (default: the agent's first "
                                                          "configured precision).")] = None,
    broker: Annotated[Optional[str], typer.Option(help="The broker the agent uses, HOST[:PORT]. Default: "
                                                       f"127.0.0.1:{topics.DEFAULT_PORT}, where `dnnhost collect` "
                                                       "runs its embedded broker.")] = None,
    tls_ca: cli.TlsCaOption = None,
    tls_cert: cli.TlsCertOption = None,
    tls_key: cli.TlsKeyOption = None,
    username: cli.UsernameOption = None,
    password_file: cli.PasswordFileOption = None,
    timeout: Annotated[str, typer.Option(help="How long to wait for the agent's answer, e.g. 10s.")] = "10s",
    as_json: Annotated[bool, typer.Option("--json", help="Print the command and the agent's answer as JSON.")]
    = False,
    db: RecordOption = None,
) -> None:
    """Ask a board's agent to measure one more model, after its configured sweep, and print its answer.

    [bold]dnnhost measure orin-01 resnet50.onnx --batch 8 --precision fp16 --broker mqtt.lan[/bold]

    Prints "accepted: ..." and exits 0, or "refused: REASON" and exits 1 (no such model, a batch or precision
    its backend cannot run, ...); exits 69 when no answer comes within --timeout (the agent is offline or does
    not listen for commands). The result arrives as any other: `dnnhost collect` stores it.
    """
    seconds = _wait_s(timeout)
    if batch < 1:
        raise UserError(f"--batch {batch}: give a batch size of 1 or more")
    if not model.strip():
        raise UserError("MODEL is empty: give an ONNX file name inside the agent's models directory")
    security = _security(broker, tls_ca, tls_cert, tls_key, username, password_file)
    command = remote_mod.new_command(board, "measure", model=model, batch=batch, precision=precision)
    _answer(command, broker, seconds, security, as_json, views.measure_answer, db)


# --- steering agents: boards, sweep start / status / cancel (and measure, above) ----------------------------------

RemoteBrokerOption = Annotated[Optional[str], typer.Option(
    "--broker", help=f"The broker the agents use, HOST[:PORT]. Default: 127.0.0.1:{topics.DEFAULT_PORT}, where "
                     "`dnnhost collect` runs its embedded broker.")]
AnswerTimeoutOption = Annotated[str, typer.Option("--timeout", help="How long to wait for the agent's answer, "
                                                                    "e.g. 10s.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the command and the agent's answer as JSON.")]


def _wait_s(timeout: str) -> float:
    seconds = units.parse_time(timeout)
    if not 0 < seconds <= 3600:
        raise UserError(f"--timeout {timeout}: give a wait between 1ms and 1h, e.g. 10s")
    return seconds


def _remote(broker: str | None, seconds: float, security: dict) -> remote_mod.Remote:
    return remote_mod.Remote(broker or f"127.0.0.1:{topics.DEFAULT_PORT}", timeout_s=seconds, **security)


def _answer(command: schema.Command, broker: str | None, seconds: float, security: dict, as_json: bool,
            show, db: str | None = None) -> None:
    """Send ``command``, print the agent's answer (``show``, or JSON); exit 1 when it refused, 69 when none came.
    ``db``: keep the command (before it is sent) and the answer in that store."""
    with contextlib.ExitStack() as stack:
        store = stack.enter_context(Store(_store(db, must_exist=False))) if db else None
        if store is not None:
            store.add_command(command)
        with _remote(broker, seconds, security) as remote:
            answer = remote.ask(command)
        if store is not None and answer is not None:
            store.add_ack(answer[0])
    if answer is None:
        raise UserError(f"no answer from {command.board} within {seconds:g} s: is its agent online and subscribed?",
                        exit_code=MEASURE_TIMEOUT_EXIT)
    ack, round_trip_s = answer
    if as_json:
        views.command_json(command, ack, round_trip_s)
    else:
        show(command, ack)
    if not ack.accepted:
        raise typer.Exit(1)


@app.command()
def boards(
    broker: RemoteBrokerOption = None,
    tls_ca: cli.TlsCaOption = None,
    tls_cert: cli.TlsCertOption = None,
    tls_key: cli.TlsKeyOption = None,
    username: cli.UsernameOption = None,
    password_file: cli.PasswordFileOption = None,
    timeout: AnswerTimeoutOption = "3s",
    as_json: Annotated[bool, typer.Option("--json", help="Print the boards as JSON.")] = False,
) -> None:
    """List the boards the broker knows (their retained presence) and what each online one is doing now.

    [bold]dnnhost boards --broker mqtt.lan[/bold]

    Each online board is asked for its sweep state (the run it measures, the runs queued); one that does not answer
    within --timeout says so. Offline and lost boards show their last presence.
    """
    seconds = _wait_s(timeout)
    security = _security(broker, tls_ca, tls_cert, tls_key, username, password_file)
    with _remote(broker, seconds, security) as remote:
        seen = remote.boards()
        online = [remote_mod.new_command(b, "sweep_status") for b, s in seen.items()
                  if s.status is not None and s.status.state == "online"]
        for command_id, (ack, round_trip_s) in remote.ask_all(online).items():
            board = next(c.board for c in online if c.id == command_id)
            seen[board].answer, seen[board].asked_s = ack, round_trip_s
    address = broker or f"127.0.0.1:{topics.DEFAULT_PORT}"
    if as_json:
        views.boards_json(seen)
    else:
        views.boards_table(seen, address)


sweep_app = cli.app("sweep", "Start, follow and cancel sweeps on a board's agent, over the broker: the agent checks "
                             "each command and answers accepted or refused (with why).")
app.add_typer(sweep_app, name="sweep")


@sweep_app.command("start")
def sweep_start(
    board: Annotated[str, typer.Argument(help="The board id of the agent that is to measure.")],
    model: Annotated[Optional[list[str]], typer.Option(
        "--model", "-m", help="An ONNX file name inside the agent's models directory; repeat it, or give several "
                              "separated by commas.")] = None,
    batch: Annotated[str, typer.Option("--batch", "-b", help="Batch sizes, e.g. 1,8,32.")] = "1",
    precision: Annotated[Optional[str], typer.Option(
        help="Precisions, e.g. fp32,fp16 (default: the agent's first configured).")] = None,
    power_mode: Annotated[Optional[str], typer.Option(
        help="Run only in this nvpmodel power mode (the agent refuses when the board is in another: it does not "
             "switch modes).")] = None,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Try again the points that failed before on "
                                                                      "this board (out of memory, NaN, ...).")]
    = False,
    redo: Annotated[bool, typer.Option("--redo", help="Measure again the points the board already measured.")]
    = False,
    broker: RemoteBrokerOption = None,
    tls_ca: cli.TlsCaOption = None,
    tls_cert: cli.TlsCertOption = None,
    tls_key: cli.TlsKeyOption = None,
    username: cli.UsernameOption = None,
    password_file: cli.PasswordFileOption = None,
    timeout: AnswerTimeoutOption = "10s",
    as_json: JsonOption = False,
    db: RecordOption = None,
) -> None:
    """Queue a sweep of models x batch sizes x precisions on a board; it runs after the board's configured sweep
    and any run queued before it, and survives a restart of the agent (it waits in the agent's outbox).

    [bold]dnnhost sweep start orin-01 -m resnet50.onnx -m mobilenet_v2.onnx --batch 1,8,32 --precision fp16[/bold]

    Prints "accepted: queued as run RUN ..." and exits 0, or "refused: REASON" and exits 1; exits 69 when no
    answer comes within --timeout. Follow it with `dnnhost sweep status` or `dnnhost live`; `dnnhost collect`
    stores its results.
    """
    names = [n.strip() for given in (model or []) for n in given.split(",") if n.strip()]
    if not names:
        raise UserError("sweep start needs --model NAME (an ONNX file name in the agent's models directory)")
    try:
        batches = cli.parse_batches(batch)
    except UserError as exc:
        raise UserError(f"--batch: {exc}") from None
    precisions = [p.strip().lower() for p in (precision or "").split(",") if p.strip()]
    seconds = _wait_s(timeout)
    security = _security(broker, tls_ca, tls_cert, tls_key, username, password_file)
    command = remote_mod.new_command(board, "sweep_start", models=names, batches=batches, precisions=precisions,
                                     power_mode=power_mode, retry_failed=retry_failed, redo=redo)
    _answer(command, broker, seconds, security, as_json, views.command_answer, db)


@sweep_app.command("cancel")
def sweep_cancel(
    board: Annotated[str, typer.Argument(help="The board id.")],
    run: Annotated[Optional[str], typer.Argument(help="The run to cancel (default: the one being measured).")]
    = None,
    broker: RemoteBrokerOption = None,
    tls_ca: cli.TlsCaOption = None,
    tls_cert: cli.TlsCertOption = None,
    tls_key: cli.TlsKeyOption = None,
    username: cli.UsernameOption = None,
    password_file: cli.PasswordFileOption = None,
    timeout: AnswerTimeoutOption = "10s",
    as_json: JsonOption = False,
    db: RecordOption = None,
) -> None:
    """Cancel a run: the one being measured stops after its current point (what it measured is published, and
    the run ends as cancelled); a queued one is taken off the queue.

    [bold]dnnhost sweep cancel orin-01[/bold]   [bold]dnnhost sweep cancel orin-01 20261206-101500-a1b2c3[/bold]
    """
    if run is not None:
        topics.check_id(run, "run id")
    seconds = _wait_s(timeout)
    security = _security(broker, tls_ca, tls_cert, tls_key, username, password_file)
    command = remote_mod.new_command(board, "sweep_cancel", run_id=run)
    _answer(command, broker, seconds, security, as_json, views.command_answer, db)


@sweep_app.command("status")
def sweep_status(
    board: Annotated[str, typer.Argument(help="The board id.")],
    broker: RemoteBrokerOption = None,
    tls_ca: cli.TlsCaOption = None,
    tls_cert: cli.TlsCertOption = None,
    tls_key: cli.TlsKeyOption = None,
    username: cli.UsernameOption = None,
    password_file: cli.PasswordFileOption = None,
    timeout: AnswerTimeoutOption = "10s",
    as_json: JsonOption = False,
    db: RecordOption = None,
) -> None:
    """What a board's agent measures now (run, points done, the current point) and the runs queued after it.

    [bold]dnnhost sweep status orin-01[/bold]
    """
    seconds = _wait_s(timeout)
    security = _security(broker, tls_ca, tls_cert, tls_key, username, password_file)
    _answer(remote_mod.new_command(board, "sweep_status"), broker, seconds, security, as_json, views.sweep_status,
            db)


def _per(text: str) -> str | int:
    """``image``, ``batch``, or a number of images (``1000`` or ``1000 images``)."""
    word = text.strip().lower()
    if word in ("image", "images", "img", "inference"):
        return "image"
    if word == "batch":
        return "batch"
    number = word.removesuffix("images").removesuffix("img").strip()
    if number.isdigit() and int(number) >= 1:
        return int(number)
    raise UserError(f"--per {text!r}: use image, batch, or a number of images such as 1000")


@app.command()
def report(
    energy_budget: Annotated[Optional[str], typer.Option(
        help="Energy budget, e.g. 10J or 50mJ (per image unless --per says otherwise): the best accuracy reachable "
             "within it. With --fleet, several: 20mJ,50mJ,200mJ.", rich_help_panel="Limits")] = None,
    per: Annotated[str, typer.Option(help="What the energy budget pays for: image, batch, or N images (e.g. 1000).",
                                     rich_help_panel="Limits")] = "image",
    energy: Annotated[str, typer.Option(help="gross (what the board drew) or net (idle power subtracted; needs the "
                                             "agent's idle baseline).", rich_help_panel="Limits")] = "gross",
    power_budget: Annotated[Optional[str], typer.Option(help="Most average power, e.g. 10W.",
                                                        rich_help_panel="Limits")] = None,
    latency_budget: Annotated[Optional[str], typer.Option(
        help="Longest latency per batch, e.g. 33ms. It also picks each network's energy-optimal power mode among "
             "the modes and clock states that meet it (on a board measured in several), and says when none does.",
        rich_help_panel="Limits")] = None,
    latency_stat: Annotated[str, typer.Option(help="Which latency the budget applies to: mean, p50, p90, p99.",
                                              rich_help_panel="Limits")] = "mean",
    min_fps: Annotated[Optional[float], typer.Option(help="Fewest images per second.", rich_help_panel="Limits")]
    = None,
    assume_accuracy: Annotated[bool, typer.Option(
        "--assume-accuracy", help="Rank fp16 and int8 configurations without a measured accuracy anyway, on the fp32 "
                                  "reference top-1 (manifest or catalog); the ceiling then says it rests on that. "
                                  "Without it they are shown, marked assumed, and left out of the ceiling and the "
                                  "frontier: measure them with `dnnagent run --accuracy-set DIR`.",
        rich_help_panel="Limits")] = False,
    board: Annotated[Optional[str], typer.Option(help="Only this board.")] = None,
    fleet: Annotated[bool, typer.Option(
        "--fleet", help="Answer across every board: the best board, power mode, clocks, network, batch and precision "
                        "at each budget, ranked only among boards measured at the same power boundary.")] = False,
    db: DbOption = None,
    catalog_file: CatalogOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON for scripts.",
                                          rich_help_panel="Output")] = False,
    all_rows: Annotated[bool, typer.Option("--all", help=f"Print every configuration even when a board has more "
                                                         f"than {report_mod.MAX_ROWS}.", rich_help_panel="Output")]
    = False,
    analyses: Annotated[bool, typer.Option(help="Include the seed paper's analyses (fits of accuracy, time, power "
                                                "and memory).", rich_help_panel="Output")] = True,
    plots: Annotated[Optional[Path], typer.Option(help="Write the seed's figures and the frontier as PNG and SVG "
                                                       "into this directory.", rich_help_panel="Output")] = None,
    html_out: Annotated[Optional[Path], typer.Option("--out", help="Write a self-contained HTML report (tables, "
                                                                   "fits, figures) to this file.",
                                                     rich_help_panel="Output")] = None,
    export: Annotated[Optional[list[Path]], typer.Option(
        help="Write the aggregated table (one row per configuration) to FILE.csv, FILE.json or FILE.parquet; "
             "repeat for several.", rich_help_panel="Output")] = None,
) -> None:
    """Per board: the energy/accuracy frontier and the best accuracy within your limits, then the seed's analyses.

    The limits combine: [bold]dnnhost report --energy-budget 50mJ --latency-budget 33ms --power-budget 10W[/bold]
    ranks only configurations that meet all three. Energy is per image and gross unless --per / --energy say
    otherwise, and the output says which it used. A configuration without energy is never treated as free.

    Top-1 is measured where the agent ran the timed engine over labelled images (dnnagent run --accuracy-set DIR),
    else the model's manifest, else the catalog's fp32 reference; the report says which. An fp16 or int8
    configuration with only the fp32 reference is assumed: shown, not ranked, unless --assume-accuracy.

    A board measured in several power modes or clock states (dnnagent run --power-mode 0,2 --clocks dvfs,locked)
    also gets the energy-optimal power mode of each network: a row per mode and clock state at its best batch, the
    one with the least energy per image marked, and what it saves against the dearest. With
    [bold]--latency-budget 20ms[/bold] only modes that meet it can win.
    """
    basis = analysis.Basis(energy=energy.strip().lower(), per=_per(per))
    budgets = [units.parse_energy(b) for b in energy_budget.split(",") if b.strip()] if energy_budget else []
    if len(budgets) > 1 and not fleet:
        raise UserError(f"--energy-budget {energy_budget}: one budget per board report; several go with --fleet")
    limits = analysis.Limits(
        energy_budget_j=budgets[0] if budgets else None,
        power_budget_w=units.parse_power(power_budget) if power_budget else None,
        latency_budget_ms=units.parse_time(latency_budget) * 1e3 if latency_budget else None,
        latency_stat=latency_stat.strip().lower(), min_fps=min_fps, assume_accuracy=assume_accuracy)
    if min_fps is not None and not (math.isfinite(min_fps) and min_fps > 0):
        raise UserError(f"--min-fps {min_fps:g}: give a positive number of images per second")
    for path in export or []:
        export_mod.check(path)
    if html_out is not None and html_out.suffix.lower() not in (".html", ".htm"):
        raise UserError(f"--out {html_out}: give a file name ending in .html")
    networks = _catalog(catalog_file)
    if board:
        topics.check_id(board)
    with err.status("reading the store …") as status, Store(_store(db, must_exist=db is None)) as store:
        df = report_mod.load(store, board, networks)
        status.update(f"ranking {len(df)} configurations …")
        data = report_mod.build(store, limits, basis, board, networks, df=df,
                                analyses=analyses or bool(html_out) or bool(plots),
                                rows_up_to=None if as_json or all_rows or html_out else report_mod.MAX_ROWS,
                                fleet_budgets=(budgets or [None]) if fleet else None)
        if export:
            status.update("exporting …")
            table = export_mod.table(df, limits, basis)
            for target in export:
                export_mod.write(table, target)
        figures, svgs = [], None
        if plots is not None or html_out is not None:
            from . import plots as plots_mod  # matplotlib: only imported when figures are asked for

            status.update("drawing the figures …")
            if plots is not None:
                figures = _writing(plots, lambda: plots_mod.write(df, data, plots, formats=("png", "svg")))
                svgs = figures.svgs
        if html_out is not None:
            from . import html as html_mod

            status.update("writing the HTML report …")
            page_svgs = svgs if svgs is not None else plots_mod.svgs(df, data)
            _writing(html_out, lambda: html_mod.write(data, page_svgs, html_out))
    if as_json:
        views.json_out(data)
    elif fleet:
        report_mod.render_fleet(out, data)
    else:
        report_mod.render(out, data if analyses else {**data, "analyses": None}, all_rows=all_rows)
    views.report_written(export or [], plots, figures, html_out)


def _writing(path: Path, write):
    """Run ``write``; a file system refusal becomes one line naming the path."""
    try:
        return write()
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc.strerror or exc}") from None


@app.command()
def predict(
    model: Annotated[Path, typer.Argument(help="The ONNX classifier to predict (counted here: no agent needed).",
                                          show_default=False)],
    board: Annotated[Optional[str], typer.Option(help="Only this board (default: every board with results).")]
    = None,
    power_mode: Annotated[Optional[str], typer.Option(help="Only this power mode, as results name it.")] = None,
    precision: Annotated[Optional[str], typer.Option(help="Only this precision: fp32, fp16 or int8.")] = None,
    batch: Annotated[Optional[str], typer.Option(help="Only these batch sizes, e.g. 1 or 1,8.")] = None,
    energy_budget: Annotated[Optional[str], typer.Option(
        help="Gross energy per image, e.g. 50mJ: would the network fit, and what would the board's ceiling be?")]
    = None,
    top1: Annotated[Optional[float], typer.Option(
        "--top1", help="The model's top-1 accuracy in percent (default: the catalog's, by the file's name).")] = None,
    assume_accuracy: Annotated[bool, typer.Option(
        "--assume-accuracy", help="With --energy-budget: rank fp16 and int8 on the fp32 top-1 (assumed, not "
                                  "measured), as `dnnhost report --assume-accuracy` does; this model's top-1 too in "
                                  "groups of those precisions.")] = False,
    db: DbOption = None,
    catalog_file: CatalogOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the predictions as JSON for scripts.")] = False,
) -> None:
    """Predict latency, images/s and energy per image of a network never measured on a board, from its op profile.

    For each (board, power mode, precision, batch) with enough measured networks, a model of time and energy per
    image is fitted over them (non-FC and FC MACs, activation bytes, parameters) and applied to MODEL. Each
    prediction carries its leave-one-network-out error: how far off it was for every network measured there, when
    that network was left out. With too few networks it refuses and says how many more to measure.

    [bold]dnnhost predict resnet34.onnx --board orin-1 --batch 8 --energy-budget 50mJ[/bold]
    """
    from dnnprof.shared import opcount  # needs onnx: the host extra installs it

    from . import predict as predict_mod

    if board:
        topics.check_id(board)
    if top1 is not None and not (math.isfinite(top1) and 0 < top1 <= 100):
        raise UserError(f"--top1 {top1:g}: give a percentage between 0 and 100, e.g. 73.3")
    question = predict_mod.Question(
        board=board, power_mode=power_mode, precision=precision.strip().lower() if precision else None,
        batches=tuple(cli.parse_batches(batch)) if batch else (),
        energy_budget_j=units.parse_energy(energy_budget) if energy_budget else None,
        assume_accuracy=assume_accuracy)
    networks = _catalog(catalog_file)
    store_at = _store(db, must_exist=db is None)
    with err.status(f"counting the operations of {model} …") as status:
        cost = opcount.cost(opcount.inspect(model))
        name = model.stem
        ref = networks.lookup(name)
        question = dataclasses.replace(question, top1=top1 if top1 is not None else (ref.top1 if ref else None))
        status.update("reading the store …")
        with Store(store_at) as store:
            known = store.board_names()
            if board and board not in known:
                raise UserError(f"no board {board!r} in this store (boards here: {', '.join(known) or 'none'})")
            df = report_mod.load(store, board, networks)
        status.update("fitting …")
        data = predict_mod.answer(df, name, cost, question)
    data["top1_source"] = "--top1" if top1 is not None else (ref.source if ref and ref.top1 is not None else None)
    if as_json:
        views.json_out(data)
    else:
        views.predictions(data)


@app.command("catalog")
def catalog_(
    catalog_file: CatalogOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """The reference networks: top-1/top-5 accuracy with its source, MACs and parameters.

    Add networks or override accuracy with a file: a TOML file with one "network" table-array entry per
    network, or a CSV with a header; fields name, top1, top5, source, gmacs, params_m (README has an example).
    """
    networks = _catalog(catalog_file)
    if as_json:
        views.catalog_json(networks)
    else:
        views.catalog_table(networks)


def _nice_budget(values: list[float]) -> float:
    """A round number (1, 2 or 5 × 10^k J) near the median of ``values``."""
    values = sorted(values)
    median = values[len(values) // 2]
    exponent = math.floor(math.log10(median))
    return min((m * 10 ** exponent for m in (1, 2, 5, 10)), key=lambda b: abs(math.log(b / median)))


def _agent(*args: str) -> list[str]:
    # The agent is a separate program (host and agent share only the wire format), run from this environment.
    return [sys.executable, "-m", "dnnprof.agent", *args]


@app.command()
def demo(
    batch: Annotated[str, typer.Option("--batch", "-b", help="Batch sizes.")] = "1,2,4,8",
    duration: Annotated[str, typer.Option(help="Shortest timed window per point.")] = "1s",
    max_duration: Annotated[str, typer.Option(help="Longest timed window per point (it stops earlier once "
                                                   "latency and power are known to 1% and 2%).")] = "5s",
    energy_budget: Annotated[Optional[str], typer.Option(help="Budget for the ceiling (default: a round number "
                                                              "near the median measured energy).")] = None,
    models: Annotated[Optional[Path], typer.Option(help="Profile these ONNX files instead of generating the "
                                                        "demo set.")] = None,
    power_source: Annotated[str, typer.Option(help="Agent power source (auto, none, rapl, estimate).")] = "auto",
    db: Annotated[Optional[Path], typer.Option(
        "--db", help="The demo's own result store (SQLite), apart from the one collect and import fill. "
                     f"Default: {demo_path()}")] = None,
) -> None:
    """The whole loop on this machine: embedded broker, agent, collector, store, report.

    Generates four small real networks (ShuffleNetV2 x0.5, SqueezeNet 1.1, MobileNetV2, ResNet-18), profiles
    them at batch 1, 2, 4 and 8 with ONNX Runtime, and reports the energy-bounded accuracy ceiling. The results go
    to a store of the demo's own (--db), never into your real results; the last line says where.
    """
    began = time.monotonic()
    batches = cli.parse_batches(batch)
    if units.parse_time(duration) > units.parse_time(max_duration):
        raise UserError(f"--duration {duration} is longer than --max-duration {max_duration}")
    budget = units.parse_energy(energy_budget) if energy_budget else None
    board = topics.slug(socket.gethostname())
    run_id = time.strftime("demo-%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
    store_path = Path(db) if db else demo_path()
    with tempfile.TemporaryDirectory(prefix="dnnprof-demo-") as tmp:
        model_dir = models or Path(tmp) / "models"
        if models is None:
            err.print("generating the demo networks (real architectures, random weights) …")
            _check(subprocess.run(_agent("models", "generate", "--out", str(model_dir), "--quiet"),
                                  capture_output=True, text=True), "generating models")
        progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=err)
        task = progress.add_task("starting the agent", total=None)

        def on_stored(message: schema.Message) -> None:
            if isinstance(message, schema.RunEvent) and message.run_id == run_id:
                progress.update(task, total=message.points_total, completed=message.points_done,
                                description=f"{message.network or ''} batch {message.batch or ''}".strip()
                                if message.event == "progress" else message.event)
            elif isinstance(message, schema.Result) and message.run_id == run_id:
                views.demo_point(progress.console, message)

        with EmbeddedBroker(port=0) as broker, Collector(broker.address, store_path, on_stored=on_stored) as col:
            err.print(f"embedded broker on {broker.address}; storing into {store_path}")
            with progress, tempfile.TemporaryFile("w+") as agent_log:
                proc = subprocess.Popen(
                    _agent("run", str(model_dir), "--broker", broker.address, "--board", board, "--run-id", run_id,
                           "--batch", ",".join(map(str, batches)), "--duration", duration,
                           "--max-duration", max_duration,
                           "--power-source", power_source, "--quiet"),
                    stdout=subprocess.DEVNULL, stderr=agent_log, text=True)
                try:
                    rc = proc.wait()
                except KeyboardInterrupt:
                    proc.send_signal(signal.SIGINT)
                    proc.wait(30)
                    raise
                agent_log.seek(0)
                _check(subprocess.CompletedProcess(proc.args, rc, "", agent_log.read()), "the agent")
                with Store(store_path) as store:
                    # Every point gone through is a result or a failure (points_done counts both).
                    done = col.wait_until(lambda: store.run_finished(board, run_id) is not None
                                          and store.count(board=board, run_id=run_id)
                                          + store.count("failures", board=board, run_id=run_id)
                                          >= store.run_finished(board, run_id).points_done, 15)
            if not done:
                raise UserError("the agent finished but not all its results reached the collector", exit_code=1)
    with Store(store_path) as store:
        energies = [r.energy_per_inference_j.gross for r in store.results(board)
                    if r.run_id == run_id and r.energy_per_inference_j]
        if budget is None and energies:
            budget = _nice_budget(energies)
            views.demo_budget(budget)
        data = report_mod.build(store, analysis.Limits(energy_budget_j=budget), board=board, analyses=False)
    report_mod.render(out, data)
    views.demo_done(time.monotonic() - began, store_path)


def _check(proc: subprocess.CompletedProcess, what: str) -> None:
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or "").strip().splitlines() if ln.strip()]
        detail = lines[-1] if lines else f"exit code {proc.returncode}"
        raise UserError(f"{what} failed: {detail}", exit_code=1)


def main() -> None:
    cli.run(app, "dnnhost")


if __name__ == "__main__":
    main()
