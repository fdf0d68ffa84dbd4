"""serve's parts that need no kernel: --listen, and the web configuration file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import bcrypt
import pytest

from tcpscope.errors import UsageError
from tcpscope.exporter import load_web_config
from tcpscope.net import parse_listen


@pytest.mark.parametrize("text, expected", [("127.0.0.1:10135", ("127.0.0.1", 10135)),
                                            ("[::1]:9", ("::1", 9)), (":10135", ("", 10135)),
                                            ("0.0.0.0:0", ("0.0.0.0", 0))])
def test_listen_addresses(text: str, expected: tuple[str, int]) -> None:
    assert parse_listen(text) == expected


@pytest.mark.parametrize("text", ["10135", "localhost:10135", "127.0.0.1:65536", "127.0.0.1:", "[::1]:x",
                                  "1.2.3:80"])
def test_listen_mistakes_are_one_line(text: str) -> None:
    with pytest.raises(UsageError) as e:
        parse_listen(text)
    assert "\n" not in str(e.value)


@pytest.fixture
def certificate(tmp_path: Path) -> Path:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-keyout", str(tmp_path / "key.pem"),
                    "-out", str(tmp_path / "cert.pem")], check=True, capture_output=True)
    return tmp_path


def test_a_web_config_as_the_exporters_write_it(certificate: Path) -> None:
    hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)).decode()
    path = certificate / "web.yml"
    path.write_text(f"tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  min_version: TLS13\n"
                    f"basic_auth_users:\n  alice: {hashed}\n")
    config = load_web_config(str(path))
    assert config.tls is not None and config.users == {"alice": hashed.encode()}


@pytest.mark.parametrize("text, said", [
    ("http_server_config:\n  http2: false\n", "http_server_config is not supported"),
    ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  cipher_suites: []\n",
     "tls_server_config.cipher_suites is not supported"),
    ("tls_server_config:\n  cert_file: cert.pem\n", "needs cert_file and key_file"),
    ("tls_server_config:\n  cert_file: nope.pem\n  key_file: key.pem\n", "cannot load cert_file"),
    ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n  min_version: TLS99\n",
     "TLS version 'TLS99'"),
    ("tls_server_config:\n  cert_file: cert.pem\n  key_file: key.pem\n"
     "  client_auth_type: RequireAnyClientCert\n",
     "client_auth_type 'RequireAnyClientCert' is not supported"),
    ("basic_auth_users:\n  alice: plaintext\n", "is not a bcrypt hash"),
    ("basic_auth_users: [alice]\n", "must map user names"),
    ("- just a list\n", "expected a mapping"),
    ("tls_server_config: {cert_file: [\n", "cannot read it as YAML"),
])
def test_web_config_mistakes_are_one_line(certificate: Path, text: str, said: str) -> None:
    path = certificate / "web.yml"
    path.write_text(text)
    with pytest.raises(UsageError) as e:
        load_web_config(str(path))
    assert said in str(e.value) and "\n" not in str(e.value)
