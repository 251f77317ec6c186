"""The ``dnnagent`` application, its ``models`` group and the consoles every command prints on."""

from __future__ import annotations

from rich.console import Console

from dnnprof.shared import cli

app = cli.app("dnnagent", "Profile ONNX image classifiers on this machine: latency, throughput, power and energy "
              "per inference at fixed batch sizes. Results go to an MQTT broker (the host's `dnnhost collect`) "
              "or to a JSONL file.")
models_app = cli.app("models", "Generate and list the reference networks (real architectures, random weights).")
app.add_typer(models_app, name="models")
err = Console(stderr=True)
out = Console()


def mark(estimated: bool) -> str:
    """The estimate mark after a number: ``~`` when it is estimated."""
    return "~" if estimated else ""


def main() -> None:
    cli.run(app, "dnnagent")
