"""ONNX models: ``onnxfile`` (open and check a classifier before any time is spent on it), ``inspect`` (parameters,
MACs and activation memory per image, by layer kind), ``manifest`` (the user's own models with what the file cannot
say) and the zoo — ``zoo`` (names, the demo set, generation) built by ``builder`` from ``small``, ``classic`` and
``modern`` architectures with seeded random weights."""
