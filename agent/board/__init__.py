"""What the machine is, read under one injectable filesystem root so recorded trees stand in for a live board:
``sysfs`` (the one file reader), ``jetson`` (model, SoC, L4T, JetPack, TensorRT, CUDA, DLA cores), ``clocks``
(nvpmodel power mode, jetson_clocks, CPU governor; the state each point runs under), ``conditions`` (temperatures,
throttling, memory) and ``facts`` (the board info of a birth message, and a Jetson's facts in one record)."""
