"""``jlis jpki sign|verify|login|trust-store`` through typer's CliRunner, against a throwaway PKI,
a card file, a tiny local HTTP server (OCSP, CA certificates) and, for ``login --url``, the login
router served by uvicorn on a loopback port."""

from __future__ import annotations

import datetime as dt
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
import uvicorn
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from fastapi import FastAPI
from typer.testing import CliRunner

from jlis.card.chip.cardfile import export_card, load_card
from jlis.container import Container
from jlis.db import Base, import_all_tables, make_engine, make_session_factory, transaction
from jlis.jpki.cli import app
from jlis.jpki.rp import server
from jlis.jpki.rp.trust import TrustStore
from jlis.settings import load_settings
from jlis.web import errors

from .rp.conftest import AUTH_PIN, SIGN_PASSWORD, Card, Pki, make_card
from .rp.test_server import add_certificate, add_generation

runner = CliRunner()
PASSPHRASE = "card-file-pass"


@dataclass
class World:
    pki: Pki
    card: Card
    card_file: Path
    trust: Path
    tmp: Path

    def fresh_card_file(self) -> Path:
        path = self.tmp / f"card{time.monotonic_ns()}.jcard"
        export_card(self.card.chip, path, PASSPHRASE)
        return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    tmp = tmp_path_factory.mktemp("jpki-cli")
    pki = Pki(now=dt.datetime.now(dt.UTC))  # the CLI checks at the real time
    card = make_card(pki)
    card_file = tmp / "card.jcard"
    export_card(card.chip, card_file, PASSPHRASE)
    trust = tmp / "trust"
    TrustStore("sign", [("g1", pki.root("sign").cert)]).export(trust)
    TrustStore("auth", [("g1", pki.root("auth").cert)]).export(trust)
    return World(pki, card, card_file, trust, tmp)


Handler = Callable[[bytes], tuple[int, bytes]]


class Routes(BaseHTTPRequestHandler):
    routes: ClassVar[dict[tuple[str, str], Handler]] = {}

    def _answer(self, method: str) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) if method == "POST" else b""
        handler = self.routes.get((method, self.path))
        status, data = handler(body) if handler else (404, b"")
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        self._answer("GET")

    def do_POST(self) -> None:
        self._answer("POST")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http() -> Iterator[tuple[str, dict[tuple[str, str], Callable[[bytes], tuple[int, bytes]]]]]:
    routes: dict[tuple[str, str], Callable[[bytes], tuple[int, bytes]]] = {}
    handler = type("H", (Routes,), {"routes": routes})
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", routes
    srv.shutdown()
    srv.server_close()


def sign(world: World, doc: Path, out: Path, *extra: str, password: str = SIGN_PASSWORD) -> object:
    return runner.invoke(
        app,
        [
            "sign",
            str(doc),
            str(out),
            "--card",
            str(world.card_file),
            "--passphrase",
            PASSPHRASE,
            "--password",
            password,
            *extra,
        ],
    )


def test_sign_then_verify(world: World, tmp_path: Path) -> None:
    doc, sig = tmp_path / "doc.txt", tmp_path / "doc.p7s"
    doc.write_text("借用証書\n")
    result = sign(world, doc, sig)
    assert result.exit_code == 0, result.output  # type: ignore[attr-defined]
    ok = runner.invoke(
        app, ["verify", str(sig), "--content", str(doc), "--trust", str(world.trust), "--no-revocation"]
    )
    assert ok.exit_code == 0, ok.output
    assert "VALID signature" in ok.output and "山田　太郎" in ok.output and "NOT CHECKED" in ok.output
    as_json = runner.invoke(
        app,
        ["verify", str(sig), "--content", str(doc), "--trust", str(world.trust), "--no-revocation", "--json"],
    )
    data = json.loads(as_json.output)
    assert data["valid"] is True and data["basic4"]["birth_date"] == "1990-01-02"


def test_attached_pem_signature(world: World, tmp_path: Path) -> None:
    doc, sig = tmp_path / "doc.txt", tmp_path / "doc.pem"
    doc.write_text("x")
    assert sign(world, doc, sig, "--attached", "--pem").exit_code == 0  # type: ignore[attr-defined]
    assert sig.read_bytes().startswith(b"-----BEGIN CMS-----")
    ok = runner.invoke(app, ["verify", str(sig), "--trust", str(world.trust), "--no-revocation"])
    assert ok.exit_code == 0, ok.output


def test_tampered_document_is_invalid(world: World, tmp_path: Path) -> None:
    doc, sig = tmp_path / "doc.txt", tmp_path / "doc.p7s"
    doc.write_text("pay 100")
    sign(world, doc, sig)
    doc.write_text("pay 900")
    bad = runner.invoke(
        app, ["verify", str(sig), "--content", str(doc), "--trust", str(world.trust), "--no-revocation"]
    )
    assert bad.exit_code == 1
    assert "INVALID" in bad.output and "messageDigest" in bad.output


def test_a_revocation_method_must_be_chosen(world: World, tmp_path: Path) -> None:
    doc, sig = tmp_path / "doc.txt", tmp_path / "doc.p7s"
    doc.write_text("x")
    sign(world, doc, sig)
    out = runner.invoke(app, ["verify", str(sig), "--content", str(doc), "--trust", str(world.trust)])
    assert out.exit_code == 2
    assert "exactly one" in out.output


def test_revoked_by_crl_file(world: World, tmp_path: Path) -> None:
    doc, sig, crl = tmp_path / "doc.txt", tmp_path / "doc.p7s", tmp_path / "g1.crl"
    doc.write_text("x")
    sign(world, doc, sig)
    root = world.pki.root("sign")
    crl.write_bytes(world.pki.crl(root, []).public_bytes(serialization.Encoding.DER))
    good = runner.invoke(
        app, ["verify", str(sig), "--content", str(doc), "--trust", str(world.trust), "--crl", str(crl)]
    )
    assert good.exit_code == 0, good.output
    assert "good (crl" in good.output
    crl.write_bytes(
        world.pki.crl(root, [(world.card.sign.cert, x509.ReasonFlags.affiliation_changed)]).public_bytes(
            serialization.Encoding.PEM
        )
    )
    bad = runner.invoke(
        app, ["verify", str(sig), "--content", str(doc), "--trust", str(world.trust), "--crl", str(crl)]
    )
    assert bad.exit_code == 1
    assert "revoked" in bad.output and "affiliationChanged" in bad.output


def test_ocsp_with_a_token(world: World, tmp_path: Path, http: tuple[str, dict]) -> None:  # type: ignore[type-arg]
    base, routes = http
    seen: list[bytes] = []

    def answer(body: bytes) -> tuple[int, bytes]:
        seen.append(body)
        return 200, world.pki.ocsp_answer(
            world.card.sign, status=ocsp.OCSPCertStatus.REVOKED, reason=x509.ReasonFlags.certificate_hold
        )

    routes[("POST", "/ocsp")] = answer
    doc, sig = tmp_path / "doc.txt", tmp_path / "doc.p7s"
    doc.write_text("x")
    sign(world, doc, sig)
    out = runner.invoke(
        app,
        [
            "verify",
            str(sig),
            "--content",
            str(doc),
            "--trust",
            str(world.trust),
            "--ocsp",
            f"{base}/ocsp",
            "--token",
            "t",
        ],
    )
    assert out.exit_code == 1, out.output
    assert "一時保留" in out.output
    assert ocsp.load_der_ocsp_request(seen[0]).serial_number == world.card.sign.cert.serial_number


def test_wrong_password_costs_a_try(world: World, tmp_path: Path) -> None:
    card_file = world.fresh_card_file()
    doc = tmp_path / "doc.txt"
    doc.write_text("x")
    out = runner.invoke(
        app,
        [
            "sign",
            str(doc),
            str(tmp_path / "o.p7s"),
            "--card",
            str(card_file),
            "--passphrase",
            PASSPHRASE,
            "--password",
            "WRONG9",
        ],
    )
    assert out.exit_code == 1
    assert "4 tries left" in out.output
    assert load_card(card_file, PASSPHRASE).pin_tries_left("sign") == 4
    wrong_pass = runner.invoke(
        app,
        [
            "sign",
            str(doc),
            str(tmp_path / "o.p7s"),
            "--card",
            str(card_file),
            "--passphrase",
            "nope-nope",
            "--password",
            SIGN_PASSWORD,
        ],
    )
    assert wrong_pass.exit_code == 2 and "passphrase" in wrong_pass.output


def test_local_login(world: World) -> None:
    card_file = world.fresh_card_file()
    args = [
        "login",
        "--card",
        str(card_file),
        "--passphrase",
        PASSPHRASE,
        "--trust",
        str(world.trust),
        "--no-revocation",
    ]
    ok = runner.invoke(app, [*args, "--pin", AUTH_PIN])
    assert ok.exit_code == 0, ok.output
    assert f"{world.card.auth.cert.serial_number:x}" in ok.output
    bad = runner.invoke(app, [*args, "--pin", "0000"])
    assert bad.exit_code == 1 and "2 tries left" in bad.output
    assert load_card(card_file, PASSPHRASE).pin_tries_left("auth") == 2


@pytest.fixture
def instance(world: World, tmp_path: Path) -> Iterator[str]:
    """The login router on uvicorn, on a loopback port, over a SQLite database holding the CA."""
    import_all_tables()
    engine = make_engine(f"sqlite:///{tmp_path / 'i.sqlite3'}")
    Base.metadata.create_all(engine)
    factory = make_session_factory(engine)
    with transaction(factory) as s:
        add_certificate(s, add_generation(s, world.pki.root("auth")), world.card)
        add_generation(s, world.pki.root("sign"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    container = Container(load_settings(env={}, public_url=f"http://127.0.0.1:{port}"))
    container.__dict__["factory"] = factory
    fast = FastAPI()
    fast.state.container = container
    errors.install(fast)
    fast.include_router(server.router)
    srv = uvicorn.Server(uvicorn.Config(fast, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}", factory  # type: ignore[misc]
    srv.should_exit = True
    thread.join(5)
    engine.dispose()


def test_login_against_a_running_instance(world: World, instance: tuple[str, object]) -> None:
    url, _factory = instance
    card_file = world.fresh_card_file()
    ok = runner.invoke(
        app,
        [
            "login",
            "--card",
            str(card_file),
            "--passphrase",
            PASSPHRASE,
            "--pin",
            AUTH_PIN,
            "--url",
            url,
            "--json",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["serial"] == f"{world.card.auth.cert.serial_number:x}"
    bad = runner.invoke(
        app, ["login", "--card", str(card_file), "--passphrase", PASSPHRASE, "--pin", "0000", "--url", url]
    )
    assert bad.exit_code == 1 and "tries left" in bad.output


def test_trust_store_export_from_the_database(
    world: World, instance: tuple[str, object], tmp_path: Path
) -> None:
    _url, factory = instance
    db_url = str(factory.kw["bind"].url)  # type: ignore[attr-defined]
    out = runner.invoke(app, ["trust-store", "export", str(tmp_path / "t"), "--database-url", db_url])
    assert out.exit_code == 0, out.output
    assert (tmp_path / "t" / "sign" / "g1.cer").is_file() and (tmp_path / "t" / "auth" / "g1.cer").is_file()
    assert (
        TrustStore.from_directory("auth", tmp_path / "t").anchors[0].certificate
        == world.pki.root("auth").cert
    )


def test_trust_store_export_from_a_url(world: World, http: tuple[str, dict], tmp_path: Path) -> None:  # type: ignore[type-arg]
    base, routes = http
    der = serialization.Encoding.DER
    routes[("GET", "/jpki/ca/sign/g1.cer")] = lambda _b: (
        200,
        world.pki.root("sign", 1).cert.public_bytes(der),
    )
    routes[("GET", "/jpki/ca/sign/g2.cer")] = lambda _b: (
        200,
        world.pki.root("sign", 2).cert.public_bytes(der),
    )
    routes[("GET", "/jpki/ca/auth/g1.cer")] = lambda _b: (
        200,
        world.pki.root("auth", 1).cert.public_bytes(der),
    )
    out = runner.invoke(app, ["trust-store", "export", str(tmp_path / "t"), "--url", base])
    assert out.exit_code == 0, out.output
    assert sorted(p.name for p in (tmp_path / "t" / "sign").iterdir()) == ["g1.cer", "g2.cer"]
