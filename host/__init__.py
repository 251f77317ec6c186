"""``dnnhost``: the host side of dnnprof, one question per module.

- cli: which command does what? ``dnnhost``'s typer commands, options in, calls out, then a view.
- views: what does a command print? Its tables and lines; untrusted text escaped, never read as markup.
- broker: where do agents publish when there is no broker? The embedded MQTT broker (amqtt), localhost by default.
- collector: how does a message get into the store? Validate, store idempotently, keep what is rejected, find and
  replay the numbers that never arrived — alone, or sharing the stream with a group of collectors that agree through
  the store; ``ingest`` is the one path for ``collect``, ``live`` and ``import``.
- store: what has been received? One store on SQLite (a file, WAL) or PostgreSQL (a team's): results, failed points,
  boards, run events, rejected input, outbox streams and commands; it owns its transactions and schema version.
- sql: how do SQLite and PostgreSQL differ? Connections, types, JSON paths, versions, locks and retries, all here.
- metrics: what does Prometheus see? A collector's OpenMetrics: per board and per collector.
- analysis: what is the best accuracy within the limits? A table per board, the energy-bounded ceiling, and the
  fleet's answer (ranked only within one power boundary).
- predict: what would a network never measured there cost? Time and energy per image from its op profile, fitted
  over the networks a board measured, with the leave-one-network-out error.
- paper: what do the seed paper's analyses say on these measurements? Canziani et al. 2016's fits, recomputed.
- report: how does ``dnnhost report`` read? Frontier, ceiling and analyses as rich text or ``--json`` data.
- plots: what do the seed paper's figures look like here? PNG and SVG files (matplotlib).
- html: how does the report travel? One self-contained HTML page.
- export: how do the numbers leave? The aggregated table as CSV, JSON or Parquet.
- live: what is the fleet doing, on one screen? ``dnnhost live``'s dashboard.
- fleet: what is each board doing now? The live state behind the dashboard, from the messages received.
"""
