"""OCSP responder throughput: ours against ``openssl ocsp -multi 2`` and against a hello-world route on
our own HTTP stack, all in the same run, with the same requests.

    .venv/bin/python -m bench.ocsp_bench [--certs 100000] [--requests N] [--concurrency 32]
                                          [--workers 1] [--gen-procs 1] [--postgres ADMIN_URL]
                                          [--no-openssl] [--no-netns] [--ocsp-first] [--quick]

``--quick``: 10,000 certificates (a smoke run of a minute or two). ``--ocsp-first`` is a diagnostic:
the app's ``/jpki`` router entry (with the hello route) is moved to the front of its routes in the
bench's server process only, to show what route matching costs; bench/RESULTS.md says which figure is which.

Setup: the signing CA (generation 1, RSA-2048) of a fresh database, ``--certs`` certificate rows
bulk-inserted with random 16-octet serials (5 % revoked, 1 % on hold: only the CertID matters to an
OCSP responder, so the rows carry no real certificates), a registered 署名検証者 with an API token,
and one DER OCSPRequest per certificate (SHA-1 CertID, no nonce, as RFC 5019 clients send),
shuffled. Every target gets the very same request bytes, in the same order, with the verifier's
``Authorization: Bearer`` header (openssl ignores it).

Targets, one after the other (never two at once):
1. ``hello``: ``POST /bench/hello`` on our app — the same FastAPI app, middleware and uvicorn
   (uvloop + httptools) process as 2; it ignores the body. The limit of the stack.
2. ``ours``: ``POST /jpki/ocsp/sign`` on that same server process.
3. ``openssl``: ``openssl ocsp -index index.txt -CA ca.pem -rsigner resp.pem -rkey resp.key -port N
   -multi 2`` over the same certificates (index.txt written from the same rows), run inside its own
   network namespace (``unshare -n``, loopback only: openssl listens on every address) together with
   its load generator.

Load generator: this module's own asyncio client on uvloop (``loadgen``), ``--concurrency``
keep-alive connections in one process, each sending its next request as soon as the previous answer
is complete (closed loop); a server that closes the connection after each answer (openssl) gets a
new connection per request. It shares the machine's 2 cores with the server: the hello-world figure
shows where the stack plus this generator top out (compare ``--gen-procs 2``). Latency is measured
per request from write to the last byte of the answer. A sample of each target's answers (the first
500 OCSP answers) is parsed and checked: successful, signed, and good/revoked as the rows say.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import hashlib
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import DEFAULT_PG, fresh_postgres, fresh_sqlite, machine, percentile

HELLO_PATH = "/bench/hello"
OCSP_PATH = "/jpki/ocsp/sign"
REVOKED_SHARE = 0.05
HOLD_SHARE = 0.01
SAMPLE = 500


# ------------------------------------------------------------------------------------------- DER


def _len(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def _tlv(tag: int, body: bytes) -> bytes:
    return bytes((tag,)) + _len(len(body)) + body


def _int(value: int) -> bytes:
    body = value.to_bytes(value.bit_length() // 8 + 1, "big")
    return _tlv(0x02, body)


SHA1_ALG = bytes.fromhex("300906052b0e03021a0500")


def ocsp_request(name_hash: bytes, key_hash: bytes, serial: int) -> bytes:
    """DER OCSPRequest for one CertID (SHA-1), no nonce, no signature."""
    cert_id = _tlv(0x30, SHA1_ALG + _tlv(0x04, name_hash) + _tlv(0x04, key_hash) + _int(serial))
    request = _tlv(0x30, cert_id)
    return _tlv(0x30, _tlv(0x30, _tlv(0x30, request)))


def issuer_hashes(ca_cert: Any) -> tuple[bytes, bytes]:
    from asn1crypto import keys
    from cryptography.hazmat.primitives import serialization

    name_hash = hashlib.sha1(ca_cert.subject.public_bytes()).digest()
    spki = ca_cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return name_hash, keys.PublicKeyInfo.load(spki).sha1


# ------------------------------------------------------------------------------------ load generator


class _Gen:
    """The shared state of one load run: the requests, the next index, the results."""

    def __init__(self, host: str, port: int, requests: list[bytes], sample: int) -> None:
        self.host, self.port = host, port
        self.requests = requests
        self.next = 0
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.errors = 0
        self.connections = 0
        self.samples: list[tuple[int, bytes]] = []
        self.sample = sample
        self.done = asyncio.get_event_loop().create_future()
        self.active = 0

    def take(self) -> int | None:
        if self.next >= len(self.requests):
            return None
        i = self.next
        self.next += 1
        return i


class _Conn(asyncio.Protocol):
    """One connection. It is opened only with a request to send (openssl 3.0's responder spins on
    a connection closed without one), and closed once the work is done."""

    def __init__(self, gen: _Gen, first: int) -> None:
        self.gen = gen
        self.buf = bytearray()
        self.t0 = 0.0
        self.index: int | None = first
        self.transport: asyncio.Transport | None = None
        self.need: int | None = None
        self.header_end = 0
        self.status = 0
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is no asyncio.Transport subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.gen.connections += 1
        self._write()

    def _write(self) -> None:
        assert self.transport is not None and self.index is not None
        self.buf.clear()
        self.need = None
        self.t0 = time.perf_counter()
        self.transport.write(self.gen.requests[self.index])

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.need is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self.buf[:end]).lower()
            self.status = int(head[9:12])
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at)
                length = int(head[at + 15 : stop if stop > 0 else None])
            self.close_after = head.startswith(b"http/1.0") and b"connection: keep-alive" not in head
            self.close_after = self.close_after or b"connection: close" in head
            self.header_end = end + 4
            self.need = self.header_end + length
        if len(self.buf) < self.need:
            return
        gen = self.gen
        gen.latencies.append(time.perf_counter() - self.t0)
        gen.statuses[self.status] = gen.statuses.get(self.status, 0) + 1
        if len(gen.samples) < gen.sample and self.index is not None:
            gen.samples.append((self.index, bytes(self.buf[self.header_end : self.need])))
        self.index = None
        assert self.transport is not None
        if self.close_after:
            self.transport.close()  # connection_lost opens the next one, if there is work
            return
        self.index = gen.take()
        if self.index is None:
            self.transport.close()
            return
        self._write()

    def connection_lost(self, exc: Exception | None) -> None:
        gen = self.gen
        if self.index is not None:  # lost mid-request: counted, not retried
            gen.errors += 1
        asyncio.get_event_loop().create_task(_open(gen))


async def _open(gen: _Gen) -> None:
    """A new connection for the next request, or the end of this connection's share of the work."""
    first = gen.take()
    if first is None:
        gen.active -= 1
        if gen.active == 0 and not gen.done.done():
            gen.done.set_result(None)
        return
    loop = asyncio.get_event_loop()
    for attempt in range(50):
        try:
            await loop.create_connection(lambda: _Conn(gen, first), gen.host, gen.port)
            return
        except OSError:
            gen.errors += 1
            await asyncio.sleep(0.01 * (attempt + 1))
    gen.active -= 1
    if gen.active == 0 and not gen.done.done():
        gen.done.set_result(None)


async def _run(host: str, port: int, requests: list[bytes], concurrency: int, sample: int) -> dict[str, Any]:
    gen = _Gen(host, port, requests, sample)
    gen.active = concurrency
    started = time.perf_counter()
    for _ in range(concurrency):
        asyncio.get_event_loop().create_task(_open(gen))
    await gen.done
    elapsed = time.perf_counter() - started
    return {
        "requests": len(gen.latencies),
        "seconds": elapsed,
        "rate": len(gen.latencies) / elapsed,
        "p50_ms": percentile(gen.latencies, 50) * 1000,
        "p99_ms": percentile(gen.latencies, 99) * 1000,
        "statuses": gen.statuses,
        "errors": gen.errors,
        "connections": gen.connections,
        "samples": [(i, b.hex()) for i, b in gen.samples],
    }


def http_requests(host: str, port: int, path: str, bodies: list[bytes], token: str | None) -> list[bytes]:
    auth = f"Authorization: Bearer {token}\r\n" if token else ""
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/ocsp-request\r\n"
        f"Accept: application/ocsp-response\r\n{auth}Content-Length: "
    ).encode()
    return [head + str(len(b)).encode() + b"\r\n\r\n" + b for b in bodies]


def loadgen_main(spec_path: str) -> None:
    """Child process: read the spec (JSON) and the bodies, run the load, print the result (JSON)."""
    spec = json.loads(Path(spec_path).read_text())
    bodies = _read_bodies(Path(spec["bodies"]))
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    reqs = http_requests(spec["host"], spec["port"], spec["path"], bodies, spec.get("token"))
    procs = spec.get("procs", 1)
    if procs > 1:  # split the work; each child reports, the parent merges
        share = [reqs[i::procs] for i in range(procs)]
        import multiprocessing as mp

        with mp.get_context("fork").Pool(procs) as pool:
            parts = pool.starmap(
                _run_sync,
                [
                    (spec["host"], spec["port"], s, max(1, spec["concurrency"] // procs), SAMPLE // procs)
                    for s in share
                ],
            )
        Path(spec["out"]).write_text(json.dumps(_merge(parts)))
        return
    result = asyncio.run(
        _run(spec["host"], spec["port"], reqs, spec["concurrency"], spec.get("sample", SAMPLE))
    )
    Path(spec["out"]).write_text(json.dumps(result))


def _run_sync(host: str, port: int, reqs: list[bytes], concurrency: int, sample: int) -> dict[str, Any]:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    return asyncio.run(_run(host, port, reqs, concurrency, sample))


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    seconds = max(p["seconds"] for p in parts)
    n = sum(p["requests"] for p in parts)
    statuses: dict[str, int] = {}
    for p in parts:
        for k, v in p["statuses"].items():
            statuses[str(k)] = statuses.get(str(k), 0) + v
    return {
        "requests": n,
        "seconds": seconds,
        "rate": n / seconds,
        # percentiles of a merge: the worst part's (conservative)
        "p50_ms": max(p["p50_ms"] for p in parts),
        "p99_ms": max(p["p99_ms"] for p in parts),
        "statuses": statuses,
        "errors": sum(p["errors"] for p in parts),
        "connections": sum(p["connections"] for p in parts),
        "samples": [s for p in parts for s in p["samples"]],
    }


def _write_bodies(path: Path, bodies: list[bytes]) -> None:
    with path.open("wb") as fh:
        for b in bodies:
            fh.write(len(b).to_bytes(4, "big") + b)


def _read_bodies(path: Path) -> list[bytes]:
    data = path.read_bytes()
    out, i = [], 0
    while i < len(data):
        n = int.from_bytes(data[i : i + 4], "big")
        out.append(data[i + 4 : i + 4 + n])
        i += 4 + n
    return out


def run_load(
    workdir: Path,
    port: int,
    path: str,
    bodies_file: Path,
    concurrency: int,
    token: str | None,
    procs: int = 1,
    wrap: list[str] | None = None,
) -> dict[str, Any]:
    spec = workdir / f"spec-{port}-{time.monotonic_ns()}.json"
    spec.write_text(
        json.dumps(
            {
                "host": "127.0.0.1",
                "port": port,
                "path": path,
                "bodies": str(bodies_file),
                "concurrency": concurrency,
                "token": token,
                "procs": procs,
                "out": str(spec) + ".out",
            }
        )
    )
    cmd = [*(wrap or []), sys.executable, "-m", "bench.ocsp_bench", "loadgen", str(spec)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=_repo())
    if out.returncode != 0:
        raise RuntimeError(f"load generator failed: {out.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(Path(str(spec) + ".out").read_text())
    return result


def _repo() -> Path:
    return Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_port(port: int, timeout: float = 60.0, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def _load1() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


# ------------------------------------------------------------------------------------------- setup


class Setup:
    """The fresh database, CA, certificates, verifier token and requests of one run."""

    def __init__(self, workdir: Path, database_url: str, certs: int, seed: int = 7) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.key_dir = workdir / "keys"
        self.public_url = "http://127.0.0.1:8000"
        self.certs = certs
        self.rng = random.Random(seed)

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "JLIS_DATABASE_URL": self.database_url,
            "JLIS_KEY_DIR": str(self.key_dir),
            "JLIS_DATA_DIR": str(self.workdir),
            "JLIS_PUBLIC_URL": self.public_url,
        }

    def build(self) -> None:
        from cryptography.hazmat.primitives import serialization

        from jlis.bulk import bulk_insert
        from jlis.clock import SystemClock
        from jlis.db import make_engine, make_session_factory, transaction
        from jlis.jpki.ca import CertificationAuthority
        from jlis.jpki.keystore import FileKeyStore
        from jlis.jpki.tables import GOOD, HOLD, REVOKED, SIGN, CertificateRow

        engine = make_engine(self.database_url)
        factory = make_session_factory(engine)
        clock = SystemClock()
        self.keystore = FileKeyStore(self.key_dir)
        now = clock.now()
        with transaction(factory) as s:
            ca = CertificationAuthority(s, clock, self.keystore, self.public_url)
            ca.ensure()
            gen = ca.active(SIGN)
            self.ca_cert = ca.ca_certificate(gen)
            self.ca_signer = ca.signer_for(gen)
            gen_id = gen.id
        self.serials: list[int] = []
        self.status: list[str] = []
        seen: set[int] = set()
        rows = []
        not_after = now + dt.timedelta(days=365 * 5)
        for i in range(self.certs):
            serial = self.rng.getrandbits(128) | 1
            while serial in seen:
                serial = self.rng.getrandbits(128) | 1
            seen.add(serial)
            draw = self.rng.random()
            status = REVOKED if draw < REVOKED_SHARE else HOLD if draw < REVOKED_SHARE + HOLD_SHARE else GOOD
            self.serials.append(serial)
            self.status.append(status)
            rows.append(
                {
                    "ca_kind": SIGN,
                    "ca_generation_id": gen_id,
                    "serial": format(serial, "x"),
                    "holder": "card",
                    "card_id": f"BENCH{i:07d}",
                    "resident_code": f"{i:011d}",
                    "lg_code": "131016",
                    "subject_cn": f"BENCH{i}",
                    "not_before": now - dt.timedelta(days=30),
                    "not_after": not_after,
                    "issued_at": now - dt.timedelta(days=30),
                    "der": b"",
                    "status": status,
                    "revoked_at": now - dt.timedelta(days=1) if status != GOOD else None,
                    "revocation_reason": (
                        "affiliationChanged"
                        if status == REVOKED
                        else "certificateHold"
                        if status == HOLD
                        else None
                    ),
                    "revocation_cause": "bench" if status != GOOD else None,
                }
            )
        table = CertificateRow.__table__
        with transaction(factory) as s:
            for start in range(0, len(rows), 50_000):
                bulk_insert(s, table, rows[start : start + 50_000])
        self.token = self._register_verifier(factory, clock)
        engine.dispose()
        name_hash, key_hash = issuer_hashes(self.ca_cert)
        order = list(range(self.certs))
        self.rng.shuffle(order)
        self.order = order
        self.bodies = [ocsp_request(name_hash, key_hash, self.serials[i]) for i in order]
        self.bodies_file = self.workdir / "requests.bin"
        _write_bodies(self.bodies_file, self.bodies)
        self.ca_pem = self.workdir / "ca.pem"
        self.ca_pem.write_bytes(self.ca_cert.public_bytes(serialization.Encoding.PEM))

    def _register_verifier(self, factory: Any, clock: Any) -> str:
        """A registered 署名検証者 and its bearer token (the responder answers only those)."""
        from jlis.auth import service as auth
        from jlis.db import transaction
        from jlis.jpki.verifiers import VerifierRegistry

        with transaction(factory) as s:
            VerifierRegistry(s, clock, actor="bench").register(
                verifier_id="bench-bank",
                name="ベンチ銀行",
                signature_verifier=True,
                user_verifier=True,
                basis="主務大臣認定事業者",
                agreement_no="BENCH-1",
                agreement_date=clock.today(),
                username="bench-bank",
                password="bench-bank-password-1",
            )
            principal = auth.find_principal(s, "bench-bank")
            assert principal is not None
            return auth.issue_token(s, principal, now=clock.now(), ttl=dt.timedelta(hours=6)).token

    def openssl_files(self) -> tuple[Path, Path, Path]:
        """index.txt of the same rows, and a responder certificate delegated by the same CA
        generation (RSA-2048, id-kp-OCSPSigning) with its key in PEM for openssl."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = dt.datetime.now(dt.UTC)
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "openssl bench responder")]))
            .issuer_name(self.ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + dt.timedelta(days=7))
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING]), critical=False)
            .add_extension(x509.OCSPNoCheck(), critical=False)
        )
        cert = self.ca_signer.sign_certificate(builder)
        resp_pem, resp_key = self.workdir / "resp.pem", self.workdir / "resp.key"
        resp_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        resp_key.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        index = self.workdir / "index.txt"
        expiry = (now + dt.timedelta(days=365 * 5)).strftime("%y%m%d%H%M%SZ")
        revoked_at = (now - dt.timedelta(days=1)).strftime("%y%m%d%H%M%SZ")
        with index.open("w") as fh:
            for i, (serial, status) in enumerate(zip(self.serials, self.status, strict=True)):
                hexserial = format(serial, "X")
                if len(hexserial) % 2:
                    hexserial = "0" + hexserial
                if status == "good":
                    fh.write(f"V\t{expiry}\t\t{hexserial}\tunknown\t/C=JP/CN=BENCH{i}\n")
                else:
                    reason = "certificateHold" if status == "hold" else "affiliationChanged"
                    fh.write(f"R\t{expiry}\t{revoked_at},{reason}\t{hexserial}\tunknown\t/C=JP/CN=BENCH{i}\n")
        (self.workdir / "index.txt.attr").write_text("unique_subject = no\n")
        return index, resp_pem, resp_key


def check_samples(setup: Setup, result: dict[str, Any], responder: str) -> str:
    """Parse the sampled answers: successful, signature valid, status as the rows say."""
    from cryptography.x509 import ocsp

    bad = 0
    for index, hexbody in result["samples"]:
        cert_index = setup.order[index]
        try:
            resp = ocsp.load_der_ocsp_response(bytes.fromhex(hexbody))
            ok = resp.response_status is ocsp.OCSPResponseStatus.SUCCESSFUL
            if ok:
                want = setup.status[cert_index]
                got = resp.certificate_status
                ok = (got is ocsp.OCSPCertStatus.GOOD) == (
                    want == "good"
                ) and resp.serial_number == setup.serials[cert_index]
                signer = next((c for c in resp.certificates), None)
                if ok and signer is not None:
                    from jlis.jpki.rp.status import signature_valid

                    ok = signature_valid(
                        signer.public_key(),
                        resp.signature,
                        resp.tbs_response_bytes,
                        resp.signature_hash_algorithm,
                    )
        except ValueError:
            ok = False
        bad += not ok
    return f"{len(result['samples']) - bad}/{len(result['samples'])} sampled {responder} answers checked"


# ------------------------------------------------------------------------------------------ targets


def serve_ours(setup: Setup, workers: int, ocsp_first: bool = False) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "bench.ocsp_bench:bench_app", "--factory",
        "--host", "127.0.0.1", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--no-access-log", "--log-level", "warning", "--workers", str(workers),
    ]  # fmt: skip
    reports = setup.workdir / "prewarm"
    reports.mkdir(exist_ok=True)
    env = {**setup.env(), "JLIS_BENCH_PREWARM": "1", "JLIS_BENCH_PREWARM_REPORT": str(reports)}
    if ocsp_first:
        env["JLIS_BENCH_OCSP_FIRST"] = "1"
    proc = subprocess.Popen(cmd, cwd=_repo(), env=env)
    deadline = time.monotonic() + 1800
    while len(list(reports.iterdir())) < workers:  # every worker has signed its answers
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError("our server did not come up")
        time.sleep(0.2)
    _wait_port(port, proc=proc)
    return proc, port


def bench_app() -> Any:
    """The app uvicorn serves: jlis's own app (create_app) plus a hello-world route. When the OCSP
    routes are not mounted in create_app yet, the revocation API's router is added here."""
    from fastapi.responses import Response

    from jlis.container import Container
    from jlis.settings import load_settings
    from jlis.web import create_app

    app = create_app(Container(load_settings()))
    if not any(getattr(r, "path", "").startswith("/jpki/ocsp") for r in _all_routes(app.routes)):
        try:
            from jlis.jpki import api as jpki_api
        except ImportError:  # the revocation API is not there yet: hello only
            jpki_api = None
        if jpki_api is not None:
            app.include_router(jpki_api.router)

    async def hello() -> Response:
        return Response(b"hello, world", media_type="text/plain")

    # The hello route goes right before the entry that holds the OCSP routes, so that both pay the
    # same route matching; no guard dependency (the app's guard check has run; a sync guard would
    # add a thread hop the OCSP route does not have).
    from fastapi.routing import APIRoute

    route = APIRoute(HELLO_PATH, hello, methods=["POST"], include_in_schema=False)
    entries = app.router.routes
    at = next(
        (i for i, r in enumerate(entries) if any(x.path.startswith("/jpki/ocsp") for x in _all_routes([r]))),
        len(entries),
    )
    if os.environ.get("JLIS_BENCH_OCSP_FIRST") == "1" and at < len(entries):
        # Diagnostic (--ocsp-first): the OCSP routes' entry moved to the front of the app's routes.
        # FastAPI matches routes in order, walking included routers; first is cheapest.
        entries.insert(0, entries.pop(at))
        at = 0
    entries.insert(at, route)

    if os.environ.get("JLIS_BENCH_PREWARM") == "1":
        # In production every answer is signed when its certificate is issued (notify_issued); the
        # benchmark's rows were bulk-inserted, so they are signed here, before the clock starts.
        from jlis.jpki.api import services_of

        started = time.perf_counter()
        n = services_of(app).responder.prewarm("sign")
        report = Path(os.environ["JLIS_BENCH_PREWARM_REPORT"]) / str(os.getpid())
        report.write_text(f"{n:,} answers in {time.perf_counter() - started:.1f} s")
    return app


def _all_routes(routes: list[Any]) -> list[Any]:
    from jlis.web.deps import iter_api_routes

    return list(iter_api_routes(routes))


def openssl_inner(args: argparse.Namespace) -> None:
    """Inside ``unshare -n``: bring loopback up, start openssl ocsp, load it, print the result."""
    subprocess.run(["ip", "link", "set", "lo", "up"], check=False)
    port = _free_port()
    errors = open(args.out + ".stderr", "wb")  # noqa: SIM115 - closed with the process below
    proc = subprocess.Popen(
        ["openssl", "ocsp", "-index", args.index, "-CA", args.ca,
         "-rsigner", args.rsigner, "-rkey", args.rkey,
         "-port", str(port), "-multi", "2", "-ignore_err", "-nmin", "60"],
        stdout=errors, stderr=errors,  # openssl -multi makes its own process group
    )  # fmt: skip
    try:
        try:
            _wait_port(port, timeout=120, proc=proc)
        except RuntimeError:
            errors.flush()
            raise RuntimeError(Path(args.out + ".stderr").read_text()[-2000:]) from None
        # openssl ocsp loads the index before it accepts; one request proves it answers
        spec = {
            "host": "127.0.0.1", "port": port, "path": "/", "bodies": args.bodies,
            "concurrency": args.concurrency, "token": args.token, "procs": args.gen_procs,
            "out": args.out,
        }  # fmt: skip
        spec_path = Path(args.bodies).with_suffix(".openssl.json")
        spec_path.write_text(json.dumps(spec))
        out = subprocess.run(
            [sys.executable, "-m", "bench.ocsp_bench", "loadgen", str(spec_path)],
            capture_output=True, text=True, check=True, cwd=_repo(),
        )  # fmt: skip
        _ = out
    finally:
        # -multi forks workers: end the whole group (the parent alone would leave them running)
        import signal

        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
        errors.close()


def run_openssl(setup: Setup, concurrency: int, gen_procs: int, netns: bool) -> dict[str, Any]:
    index, resp_pem, resp_key = setup.openssl_files()
    args = [
        sys.executable, "-m", "bench.ocsp_bench", "openssl-inner",
        "--index", str(index), "--ca", str(setup.ca_pem),
        "--rsigner", str(resp_pem), "--rkey", str(resp_key), "--bodies", str(setup.bodies_file),
        "--concurrency", str(concurrency), "--gen-procs", str(gen_procs),
        "--out", str(setup.bodies_file) + ".openssl.out",
    ]  # fmt: skip
    if setup.token:
        args += ["--token", setup.token]
    if netns:
        args = ["unshare", "-n", "--", *args]
    out = subprocess.run(args, capture_output=True, text=True, check=False, cwd=_repo())
    if out.returncode != 0:
        raise RuntimeError(f"openssl run failed: {out.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(Path(str(setup.bodies_file) + ".openssl.out").read_text())
    return result


def _line(name: str, r: dict[str, Any]) -> str:
    statuses = ", ".join(f"{k}: {v:,}" for k, v in sorted(r["statuses"].items()))
    return (
        f"{name:8} {r['requests']:>8,} answers in {r['seconds']:6.1f} s: {r['rate']:8,.0f}/s, "
        f"p50 {r['p50_ms']:6.2f} ms, p99 {r['p99_ms']:6.2f} ms   (HTTP {statuses}; "
        f"{r['errors']} errors, {r['connections']:,} connections)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd")
    lg = sub.add_parser("loadgen")
    lg.add_argument("spec")
    inner = sub.add_parser("openssl-inner")
    for name in ("index", "ca", "rsigner", "rkey", "bodies", "token", "out"):
        inner.add_argument(f"--{name}")
    inner.add_argument("--concurrency", type=int, default=32)
    inner.add_argument("--gen-procs", type=int, default=1)
    ap.add_argument("--certs", type=int, default=100_000)
    ap.add_argument(
        "--requests", type=int, default=None, help="requests per target (default: one per certificate)"
    )
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes for our server")
    ap.add_argument("--gen-procs", type=int, default=1, help="load generator processes")
    ap.add_argument("--postgres", default=None, help=f"admin URL, e.g. {DEFAULT_PG}; default SQLite")
    ap.add_argument("--no-openssl", action="store_true")
    ap.add_argument(
        "--ocsp-first",
        action="store_true",
        help="diagnostic: move the app's /jpki router entry (and the hello route) to the front of its routes",
    )
    ap.add_argument("--no-netns", action="store_true", help="run openssl without unshare -n")
    ap.add_argument("--quick", action="store_true", help="10,000 certificates, 10,000 requests per target")
    args = ap.parse_args()
    if args.cmd == "loadgen":
        loadgen_main(args.spec)
        return
    if args.cmd == "openssl-inner":
        openssl_inner(args)
        return
    if args.quick:
        args.certs = min(args.certs, 10_000)
    workdir = Path(tempfile.mkdtemp(prefix="jlis-ocsp-bench-"))
    engine = fresh_postgres(args.postgres, "jlis_bench_ocsp") if args.postgres else fresh_sqlite("ocsp")
    url = engine.url.render_as_string(hide_password=False)
    engine.dispose()
    print(f"ocsp benchmark — {machine()}")
    print(
        f"{args.certs:,} certificates ({REVOKED_SHARE:.0%} revoked, {HOLD_SHARE:.0%} on hold) on "
        f"{'PostgreSQL' if args.postgres else 'SQLite'}; concurrency {args.concurrency}; uvicorn workers "
        f"{args.workers}; load generator: {args.gen_procs} process(es) on the same 2 cores"
        + ("; DIAGNOSTIC: /jpki routes moved first" if args.ocsp_first else "")
    )
    t0 = time.perf_counter()
    setup = Setup(workdir, url, args.certs)
    setup.build()
    if args.requests and args.requests != len(setup.bodies):
        reps = (args.requests + len(setup.bodies) - 1) // len(setup.bodies)
        setup.bodies = (setup.bodies * reps)[: args.requests]
        setup.order = (setup.order * reps)[: args.requests]
        _write_bodies(setup.bodies_file, setup.bodies)
    print(
        f"setup: {time.perf_counter() - t0:.1f} s (CA, {args.certs:,} rows, {len(setup.bodies):,} requests)"
    )

    results: dict[str, dict[str, Any]] = {}
    t0 = time.perf_counter()
    proc, port = serve_ours(setup, args.workers, args.ocsp_first)
    signed = "; ".join(p.read_text() for p in (setup.workdir / "prewarm").iterdir())
    print(f"our server up in {time.perf_counter() - t0:.1f} s (pre-signed per worker: {signed})", flush=True)
    try:
        warm = setup.workdir / "warm.bin"
        _write_bodies(warm, setup.bodies[: min(2000, len(setup.bodies))])
        run_load(workdir, port, OCSP_PATH, warm, args.concurrency, setup.token)  # first answers, JIT caches
        run_load(workdir, port, HELLO_PATH, warm, args.concurrency, setup.token)
        print(f"[{_load1()}] hello ...", flush=True)
        load = (setup.bodies_file, args.concurrency, setup.token, args.gen_procs)
        results["hello"] = run_load(workdir, port, HELLO_PATH, *load)
        print(_line("hello", results["hello"]), flush=True)
        print(f"[{_load1()}] ours ...", flush=True)
        results["ours"] = run_load(workdir, port, OCSP_PATH, *load)
        print(
            _line("ours", results["ours"]) + "   " + check_samples(setup, results["ours"], "our"), flush=True
        )
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    if not args.no_openssl and shutil.which("openssl"):
        print(f"[{_load1()}] openssl ...", flush=True)
        results["openssl"] = run_openssl(setup, args.concurrency, args.gen_procs, netns=not args.no_netns)
        print(
            _line("openssl", results["openssl"]) + "   " + check_samples(setup, results["openssl"], "openssl")
        )
    ours, hello = results["ours"], results["hello"]
    print()
    verdicts = []
    if "openssl" in results:
        ratio = ours["rate"] / results["openssl"]["rate"]
        verdicts.append(f"vs openssl {ratio:.2f}x (target ≥ 5: {'met' if ratio >= 5 else 'NOT met'})")
    ratio_h = ours["rate"] / hello["rate"]
    verdicts.append(f"vs hello-world {ratio_h:.2f} (target ≥ 0.5: {'met' if ratio_h >= 0.5 else 'NOT met'})")
    verdicts.append(
        f"p99 {ours['p99_ms']:.1f} ms (target < 20 ms: {'met' if ours['p99_ms'] < 20 else 'NOT met'})"
    )
    print("ours: " + "; ".join(verdicts) + f"   [{_load1()}]")
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
