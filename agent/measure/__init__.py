"""How a point is measured, with no hardware of its own (sensors come from ``power``, engines from ``backends``):
``sweep`` (every point in turn, results sent as they exist to a ``sink``),
``profiler`` (steady warm-up, adaptive timed window, idle baseline), ``sampler`` (the power source read on its own
thread, one monotonic clock), ``energy`` (the integral over exactly the window), ``stats`` (percentiles, Student's
t, batch-means confidence intervals) and ``probe`` (one power source read alone, for ``dnnagent power``)."""
