"""``dnnagent serve``, the agent as a systemd service: ``serve`` (prepare, connect, sweep, stay online),
``systemd`` (sd_notify, signals, journald lines), ``config`` (``/etc/dnnprof/agent.toml``, checked), ``outbox``
(every result on disk until the broker acknowledges it), ``ledger`` (points already measured), ``commands`` (the
host's replay and measure requests, checked and answered) and ``install`` (``install-service``)."""
