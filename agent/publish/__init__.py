"""Where measurements go, for ``run`` and ``serve`` alike: ``link`` (the MQTT session — retained birth, last will,
QoS 1 tracked to its PUBACK — or a JSONL file) and ``telemetry`` (the live QoS 0 feed for ``dnnhost live``)."""
