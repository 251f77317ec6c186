"""``dnnagent``: profile image classifiers on this machine and send the measurements to the host.

The map — each folder answers one question:

- ``cli/``        the commands, thin: ``run`` (a sweep), ``service`` (serve, outbox, install-service), ``board``
                  (info, power), ``models`` (list, inspect, generate). They parse options and print.
- ``session``     the one wiring path: CLI options or an ``AgentConfig`` → backend, power source, board info and
                  birth message, telemetry feed, ``Sweep``. ``run`` and ``serve`` both go through it.
- ``measure/``    how a point is measured, with no hardware in it: ``sweep`` (the points), ``profiler`` (warm-up,
                  adaptive window, idle baseline), ``sampler`` (the power thread), ``energy`` (integrals),
                  ``stats`` (percentiles, confidence intervals), ``probe`` (one power source read alone).
- ``power/``      which sensor: one module per power source behind ``base.PowerSource`` (ina3221, jtop,
                  tegrastats, rapl, estimate) and ``none`` (``NO_POWER``: no energy, said aloud); the factory in
                  ``__init__`` picks one (``auto``).
- ``backends/``   which inference engine: ``onnxruntime`` (CPU) and ``tensorrt/`` (build, calibration, runner,
                  cuda) behind ``base.Backend``/``Runner``, with TensorRT's ``engine_cache``.
- ``models/``     ONNX files: the zoo generator and the manifest (checks and op counting: ``shared.onnxfile``,
                  ``shared.opcount``).
- ``board/``      what the machine is, all under one injectable root: ``sysfs`` (the one file reader), ``jetson``
                  (identity, versions, DLA), ``clocks`` (nvpmodel mode, jetson_clocks, governor), ``conditions``
                  (temperatures, throttling, memory), ``facts`` (board info, a Jetson's facts at once).
- ``publish/``    where results go, for ``run`` and ``serve`` alike: ``link`` (MQTT session, JSONL file),
                  ``telemetry`` (the live feed).
- ``service/``    the service: ``serve`` (the service loop), ``systemd`` (sd_notify, signals, journald),
                  ``config`` (agent.toml), ``outbox`` (on disk until acknowledged), ``ledger`` (points measured),
                  ``commands`` (the host's requests), ``install`` (install-service); and ``runbox``, ``run``'s
                  outboxes (one per run, on the service's ``outbox``).

Dependencies point one way: ``cli`` → ``service`` → ``session`` → ``publish`` → ``measure`` → ``power``,
``backends``, ``models``, ``board`` → ``dnnprof.shared`` (each may skip steps; none points back). Nothing here imports
``dnnprof.host``.
"""
