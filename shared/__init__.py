"""What the agent and the host both speak, one question per module.

- schema: what is a message? The versioned message types, validated strictly on decode (msgspec).
- topics: where is a message published? The topic scheme ``dnnprof/v1/<board>/<kind>[/<run-id>]``, ids, brokers.
- units: what does ``50mJ`` mean? Energy, power and time with SI prefixes, parsed and formatted.
- catalog: how accurate is a network? Reference top-1/top-5 accuracy, MACs and parameters, plus a user's file.
- onnxfile: is this file a classifier dnnprof can run? Open and check an ONNX model's image input (needs onnx).
- opcount: what does one image cost? Parameters, MACs by layer kind and activation bytes of an ONNX graph (needs
  onnx; the agent's ``models inspect`` and the host's ``predict`` both count with it).
- auth: how is the broker reached safely? TLS contexts that verify the broker, secret files only the owner reads.
- cli: what do both command lines do alike? User errors as one line, Ctrl-C as a clean exit, shared parsers.
- errors: what reaches a user as a message rather than a traceback? ``UserError``.
"""
