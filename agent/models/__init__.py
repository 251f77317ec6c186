"""ONNX models: ``manifest`` (the user's own models with what the file cannot say) and the zoo — ``zoo`` (names,
the demo set, generation) built by ``builder`` from ``small``, ``classic`` and ``modern`` architectures with seeded
random weights. Checking a file (``onnxfile``) and counting its operations (``opcount``) live in ``dnnprof.shared``:
the host's ``predict`` counts too."""
