"""systemd glue: the sd_notify client against a real AF_UNIX datagram socket."""

import os
import socket
import uuid
from pathlib import Path

from dnnprof.agent.service.systemd import Notifier


def test_notifier_path_socket_and_no_socket(tmp_path):
    short = Path(os.path.realpath("/tmp")) / f"sd-{uuid.uuid4().hex[:8]}.sock"  # AF_UNIX paths are short
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(short))
    try:
        notifier = Notifier(str(short))
        assert notifier("READY=1", "STATUS=two\nlines")
        assert sock.recv(100) == b"READY=1\nSTATUS=two lines"
    finally:
        sock.close()
        short.unlink()
    assert Notifier(None)("READY=1") is False  # not under systemd: nothing to tell
    assert Notifier("relative/path")("READY=1") is False
    gone = Notifier(str(short))  # the socket went away: logged, never raised
    assert gone("READY=1") is False
