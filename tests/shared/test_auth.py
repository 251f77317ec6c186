"""TLS contexts and secret files (shared/auth.py) on real files: modes set with chmod, certificates from the ``pki``
fixture (tests/conftest.py), and a real TLS handshake that the context must verify."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest

from dnnprof.shared import auth
from dnnprof.shared.errors import UserError


def secret(tmp_path: Path, content: bytes | str, mode: int = 0o600, name: str = "secret") -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    else:
        path.write_bytes(content)
    path.chmod(mode)
    return path


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o700])
def test_a_file_only_its_owner_reads_is_private(tmp_path, mode):
    auth.check_private(secret(tmp_path, "pw", mode), "the broker password")


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o601, 0o620])
def test_a_file_group_or_others_can_reach_is_refused_with_its_mode_and_the_fix(tmp_path, mode):
    path = secret(tmp_path, "host-pw", mode)
    with pytest.raises(UserError) as refused:
        auth.check_private(path, "the broker password")
    assert str(refused.value) == (f"{path} is readable by group or others (mode {mode:04o}) and holds the broker "
                                  f"password: run chmod 600 {path}")
    assert "host-pw" not in str(refused.value)


def test_the_owner_hint_adds_whom_the_file_should_belong_to(tmp_path):
    path = secret(tmp_path, "key", 0o640, "client.key")
    with pytest.raises(UserError) as refused:
        auth.check_private(path, "the client's private key", owner="the agent's user (dnnprof)")
    assert str(refused.value) == (f"{path} is readable by group or others (mode 0640) and holds the client's "
                                  f"private key: run chmod 600 {path} and chown it to the agent's user (dnnprof)")


@pytest.mark.parametrize("content, password", [("host-pw\n", "host-pw"), ("host-pw\r\n", "host-pw"),
                                               ("host-pw", "host-pw"), ("  pass word \n\n", "  pass word "),
                                               ("pässwörd\n", "pässwörd")])
def test_a_password_file_holds_the_password_without_its_trailing_newlines(tmp_path, content, password):
    assert auth.read_password(secret(tmp_path, content)) == password


@pytest.mark.parametrize("content", ["", "\n", "\r\n\n"])
def test_an_empty_password_file_is_refused(tmp_path, content):
    path = secret(tmp_path, content)
    with pytest.raises(UserError) as refused:
        auth.read_password(path)
    assert str(refused.value) == f"{path} is empty: write the broker password in it"
    with pytest.raises(UserError, match=r"is empty: write the password in it$"):
        auth.read_password(path, what="the password")


def test_an_unreadable_password_file_is_refused_without_quoting_it(tmp_path):
    path = secret(tmp_path, b"\xffsecret\n")
    with pytest.raises(UserError) as refused:
        auth.read_password(path)
    assert str(refused.value) == (f"cannot read {path} (UnicodeDecodeError): make it a UTF-8 text file holding only "
                                  "the password")
    assert "secret" not in str(refused.value).replace(str(path), "")
    with pytest.raises(UserError, match=r"\(FileNotFoundError\)"):
        auth.read_password(tmp_path / "missing")


def test_a_context_verifies_the_certificate_and_the_host_name(pki):
    context = auth.tls_context(pki / "ca.crt")
    assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
    system = auth.tls_context(None)  # the system's CA certificates, verified the same way
    assert system.verify_mode == ssl.CERT_REQUIRED and system.check_hostname


def _handshake(context: ssl.SSLContext, pki: Path, server_hostname: str) -> None:
    """Connect with ``context`` to a TLS server on loopback presenting pki's server certificate (for 127.0.0.1)."""
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(pki / "server.crt", pki / "server.key")
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(10)

        def serve() -> None:
            try:
                conn, _ = listener.accept()
                with server.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                pass  # the client refused the handshake: that is what some tests want

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        try:
            with socket.create_connection(listener.getsockname(), timeout=10) as raw, \
                    context.wrap_socket(raw, server_hostname=server_hostname) as tls:
                assert tls.version() is not None  # the handshake completed
        finally:
            thread.join(10)


def test_a_context_connects_to_the_broker_its_ca_signed_and_refuses_other_names_and_cas(pki):
    _handshake(auth.tls_context(pki / "ca.crt"), pki, "127.0.0.1")
    with pytest.raises(ssl.SSLCertVerificationError, match="match"):  # the certificate is for 127.0.0.1 only
        _handshake(auth.tls_context(pki / "ca.crt"), pki, "localhost")
    with pytest.raises(ssl.SSLCertVerificationError):
        _handshake(auth.tls_context(pki / "other-ca.crt"), pki, "127.0.0.1")


def test_a_context_with_a_client_certificate(pki):
    context = auth.tls_context(pki / "ca.crt", pki / "client.crt", pki / "client.key")
    _handshake(context, pki, "127.0.0.1")


@pytest.mark.parametrize("files", [("garbage", None, None), ("ca.crt", "client.crt", "server.key"),
                                   ("ca.crt", "garbage", "client.key")],
                         ids=["not-a-certificate", "key-of-another-certificate", "not-a-client-certificate"])
def test_files_that_do_not_load_are_one_line_naming_no_secret(pki, tmp_path, files):
    garbage = tmp_path / "garbage"
    garbage.write_text("not PEM at all\n")
    ca, cert, key = (None if f is None else garbage if f == "garbage" else pki / f for f in files)
    with pytest.raises(UserError) as refused:
        auth.tls_context(ca, cert, key)
    message = str(refused.value)
    assert message.startswith("cannot load the TLS files (")
    assert message.endswith("): give PEM files, the key matching the certificate")
    assert "\n" not in message and "PRIVATE KEY" not in message
    with pytest.raises(UserError, match=r"^cannot load it \("):
        auth.tls_context(ca, cert, key, what="it")
