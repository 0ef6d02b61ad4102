"""``jlis jpki ...``: a relying party's tools — sign with a card file, verify a signature, log in with
the card, and export the trust stores (the lead mounts ``app`` as ``jlis jpki``).

Exit status: 0 when the signature or login is valid, 1 when it is refused (the rule that failed is
printed), 2 for bad usage (missing file, wrong passphrase, no revocation method chosen).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from jlis.errors import JlisError
from jlis.jpki.api import cli as revocation_app
from jlis.jpki.ca_cli import app as ca_app

app = typer.Typer(
    help="公的個人認証: sign, verify, log in with a card (relying-party tools).", no_args_is_help=True
)
trust_app = typer.Typer(help="Trust stores (one per purpose: sign, auth).", no_args_is_help=True)
app.add_typer(trust_app, name="trust-store")
app.add_typer(ca_app, name="ca")
app.add_typer(revocation_app, name="revocation")

CardOpt = Annotated[Path, typer.Option("--card", help="A card file (jlis card export).", exists=False)]
PassphraseOpt = Annotated[
    str | None,
    typer.Option(
        "--passphrase",
        envvar="JLIS_CARD_PASSPHRASE",
        help="The card file's passphrase (prompted when omitted).",
    ),
]
TrustOpt = Annotated[
    Path | None,
    typer.Option(
        "--trust", help="Directory of trusted roots: DIR/sign/*.cer and DIR/auth/*.cer (trust-store export)."
    ),
]
OcspOpt = Annotated[
    str | None,
    typer.Option("--ocsp", help="Check revocation by OCSP at this URL ('aia': the URL in the certificate)."),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", envvar="JLIS_VERIFIER_TOKEN", help="Registered verifier's bearer token."),
]
CrlOpt = Annotated[
    list[Path] | None, typer.Option("--crl", help="Check revocation against this CRL file (repeatable).")
]
CrlDpOpt = Annotated[bool, typer.Option("--crl-dp", help="Fetch the CRL partition named in the certificate.")]
NoRevOpt = Annotated[
    bool, typer.Option("--no-revocation", help="Skip the revocation check (the result says it was skipped).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


def _fail(exc: JlisError, code: int) -> typer.Exit:
    typer.echo(f"error: {exc.message}", err=True)
    return typer.Exit(code)


def _secret(value: str | None, prompt: str) -> str:
    return value if value is not None else str(typer.prompt(prompt, hide_input=True))


def _revocation(ocsp: str | None, token: str | None, crl: list[Path] | None, crl_dp: bool, none: bool):  # type: ignore[no-untyped-def]
    """The checker the options choose; exactly one method (fails closed: no silent skip)."""
    from jlis.jpki.rp.http import HttpxFetcher
    from jlis.jpki.rp.status import CrlChecker, OcspChecker, load_crl

    chosen = [bool(ocsp), bool(crl), crl_dp, none]
    if sum(chosen) != 1:
        typer.echo(
            "error: choose exactly one of --ocsp URL|aia, --crl FILE, --crl-dp, --no-revocation", err=True
        )
        raise typer.Exit(2)
    if none:
        return None
    if ocsp:
        return OcspChecker(HttpxFetcher(), url=None if ocsp == "aia" else ocsp, token=token)
    if crl:
        loaded = []
        for path in crl:
            if not path.is_file():
                typer.echo(f"error: no CRL file {path}", err=True)
                raise typer.Exit(2)
            loaded.append((str(path), load_crl(path.read_bytes(), str(path))))
        return CrlChecker(crls=loaded)
    return CrlChecker(HttpxFetcher(), token=token)


def _trust(trust: Path | None, purpose: str):  # type: ignore[no-untyped-def]
    from jlis.jpki.rp.trust import TrustStore

    if trust is None:
        typer.echo("error: --trust DIR is required (see: jlis jpki trust-store export)", err=True)
        raise typer.Exit(2)
    return TrustStore.from_directory(purpose, trust)


@app.command()
def sign(
    source: Annotated[Path, typer.Argument(help="The document to sign.")],
    output: Annotated[Path, typer.Argument(help="Where to write the CMS signature (.p7s).")],
    card: CardOpt,
    passphrase: PassphraseOpt = None,
    password: Annotated[
        str | None,
        typer.Option(
            "--password", envvar="JLIS_SIGN_PASSWORD", help="署名用パスワード (prompted when omitted)."
        ),
    ] = None,
    attached: Annotated[
        bool, typer.Option("--attached", help="Put the document inside the signature.")
    ] = False,
    pem: Annotated[bool, typer.Option("--pem", help="Write PEM instead of DER.")] = False,
) -> None:
    """Sign SOURCE with the card's signing key (CMS SignedData, RFC 5652)."""
    from jlis.clock import SystemClock
    from jlis.jpki.rp.sign import open_card, sign_document, to_pem

    if not source.is_file():
        typer.echo(f"error: no file {source}", err=True)
        raise typer.Exit(2)
    try:
        reader = open_card(card, _secret(passphrase, "card file passphrase"))
    except JlisError as exc:
        raise _fail(exc, 2) from None
    try:
        der = sign_document(
            reader,
            source.read_bytes(),
            _secret(password, "署名用パスワード"),
            clock=SystemClock(),
            detached=not attached,
        )
    except JlisError as exc:
        raise _fail(exc, 1) from None
    output.write_bytes(to_pem(der) if pem else der)
    typer.echo(f"signed {source} → {output} ({'attached' if attached else 'detached'}, {len(der)} bytes)")


@app.command()
def verify(
    signature: Annotated[Path, typer.Argument(help="The CMS signature (.p7s, DER or PEM).")],
    content: Annotated[
        Path | None, typer.Option("--content", help="The signed document (detached signature).")
    ] = None,
    trust: TrustOpt = None,
    ocsp: OcspOpt = None,
    token: TokenOpt = None,
    crl: CrlOpt = None,
    crl_dp: CrlDpOpt = False,
    no_revocation: NoRevOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Verify a signature: chain to the right signing-CA generation, revocation, and the signer's
    verified 基本4情報."""
    from jlis.clock import SystemClock
    from jlis.jpki.rp.verify import verify_signature

    try:
        checker = _revocation(ocsp, token, crl, crl_dp, no_revocation)
        store = _trust(trust, "sign")
    except JlisError as exc:
        raise _fail(exc, 2) from None
    if not signature.is_file() or (content is not None and not content.is_file()):
        typer.echo("error: the signature (and --content) must be existing files", err=True)
        raise typer.Exit(2)
    try:
        result = verify_signature(
            signature.read_bytes(),
            content=content.read_bytes() if content is not None else None,
            trust=store,
            revocation=checker,
            clock=SystemClock(),
        )
    except JlisError as exc:
        if as_json:
            typer.echo(json.dumps({"valid": False, **exc.to_dict()}, ensure_ascii=False))
        else:
            typer.echo(f"INVALID: {exc.message}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(result.to_dict(), ensure_ascii=False, indent=1))
        return
    b4 = result.basic4
    typer.echo("VALID signature")
    typer.echo(f"  signer      {result.certificate.subject.rfc4514_string()}")
    typer.echo(f"  issuer      {result.issuer} (generation {result.anchor.label})")
    typer.echo(f"  serial      {result.serial}")
    typer.echo(f"  signed at   {result.signing_time.isoformat() if result.signing_time else '(not stated)'}")
    rev = result.revocation
    typer.echo(
        f"  revocation  {f'good ({rev.method} {rev.source})' if rev else 'NOT CHECKED (--no-revocation)'}"
    )
    name_note = f"  (代替文字あり {b4.name_substitution})" if b4.name_substituted else ""
    address_note = f"  (代替文字あり {b4.address_substitution})" if b4.address_substituted else ""
    typer.echo(f"  氏名        {b4.name}{name_note}")
    born = b4.birth_date.isoformat() if b4.birth_date else "不詳"
    typer.echo(f"  生年月日    {born} (era {b4.birth_era.name.lower()}, {b4.birth_raw})")
    typer.echo(f"  性別        {b4.sex}")
    typer.echo(f"  住所        {b4.address}{address_note}")


@app.command()
def login(
    card: CardOpt,
    passphrase: PassphraseOpt = None,
    pin: Annotated[
        str | None,
        typer.Option("--pin", envvar="JLIS_AUTH_PIN", help="利用者証明用 PIN, 4 digits (prompted)."),
    ] = None,
    url: Annotated[
        str | None,
        typer.Option("--url", help="A running jlis (e.g. http://127.0.0.1:8000): log in against it."),
    ] = None,
    trust: TrustOpt = None,
    ocsp: OcspOpt = None,
    token: TokenOpt = None,
    crl: CrlOpt = None,
    crl_dp: CrlDpOpt = False,
    no_revocation: NoRevOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Log in with the card's authentication key: against a running jlis (--url), or locally, as a
    relying party would (--trust DIR and a revocation method). Prints the 発行番号 (issuer + serial)."""
    from jlis.clock import SystemClock
    from jlis.jpki.rp.login import Challenge, ReplayGuard, make_challenge, respond, verify_login
    from jlis.jpki.rp.sign import open_card

    if (url is None) == (trust is None):
        typer.echo("error: give either --url (a running jlis) or --trust DIR (local check)", err=True)
        raise typer.Exit(2)
    try:
        reader = open_card(card, _secret(passphrase, "card file passphrase"))
    except JlisError as exc:
        raise _fail(exc, 2) from None
    secret_pin = _secret(pin, "利用者証明用 PIN")
    if url is not None:
        result = _remote_login(url.rstrip("/"), reader, secret_pin)
    else:
        clock = SystemClock()
        try:
            checker = _revocation(ocsp, token, crl, crl_dp, no_revocation)
            store = _trust(trust, "auth")
        except JlisError as exc:
            raise _fail(exc, 2) from None
        challenge = make_challenge("jlis-cli", clock=clock)
        try:
            response = respond(reader, Challenge.from_text(challenge.to_text()), secret_pin)
            verified = verify_login(
                challenge, response, trust=store, revocation=checker, clock=clock, replay=ReplayGuard()
            )
        except JlisError as exc:
            typer.echo(f"LOGIN REFUSED: {exc.message}")
            raise typer.Exit(1) from None
        result = verified.to_dict()
    if as_json:
        typer.echo(json.dumps(result, ensure_ascii=False, indent=1))
        return
    typer.echo("LOGGED IN")
    typer.echo(f"  issuer      {result['issuer']}")
    typer.echo(f"  serial      {result['serial']} (発行番号)")
    typer.echo(f"  generation  {result['generation']}")


def _remote_login(base: str, reader, pin: str) -> dict[str, object]:  # type: ignore[no-untyped-def]
    import httpx

    from jlis.jpki.rp.login import Challenge, respond
    from jlis.jpki.rp.server import PATH

    try:
        with httpx.Client(timeout=10.0) as client:
            issued = client.post(f"{base}{PATH}/challenge")
            if issued.status_code != 200:
                typer.echo(f"error: {base} answered {issued.status_code} to the challenge request", err=True)
                raise typer.Exit(2)
            challenge = Challenge.from_text(issued.json()["challenge"])
            try:
                response = respond(reader, challenge, pin)
            except JlisError as exc:
                typer.echo(f"LOGIN REFUSED: {exc.message}")
                raise typer.Exit(1) from None
            answer = client.post(
                f"{base}{PATH}/verify", json={"challenge": challenge.to_text(), **response.to_dict()}
            )
    except httpx.HTTPError as exc:
        typer.echo(f"error: cannot reach {base}: {exc}", err=True)
        raise typer.Exit(2) from None
    body = answer.json()
    if answer.status_code != 200:
        typer.echo(f"LOGIN REFUSED: {body.get('message', answer.status_code)}")
        raise typer.Exit(1)
    return dict(body)


@trust_app.command("export")
def trust_export(
    directory: Annotated[Path, typer.Argument(help="Writes DIR/sign/gN.cer and DIR/auth/gN.cer.")],
    url: Annotated[
        str | None, typer.Option("--url", help="Fetch from a running jlis (GET /jpki/ca/{kind}/gN.cer).")
    ] = None,
    database_url: Annotated[
        str | None,
        typer.Option("--database-url", help="Read from this database instead (default: configured)."),
    ] = None,
) -> None:
    """Export both trust stores, every CA generation, each purpose in its own directory."""
    from cryptography import x509

    from jlis.jpki.rp.trust import TrustStore

    roots: dict[str, list[tuple[str, x509.Certificate]]] = {"sign": [], "auth": []}
    if url is not None:
        import httpx

        from jlis.jpki.urls import ca_cert_url

        try:
            with httpx.Client(timeout=10.0) as client:
                for kind, found in roots.items():
                    for n in range(1, 1000):
                        reply = client.get(ca_cert_url(url, kind, n))
                        if reply.status_code == 404:
                            break
                        if reply.status_code != 200:
                            typer.echo(f"error: {reply.url} answered {reply.status_code}", err=True)
                            raise typer.Exit(2)
                        found.append((f"g{n}", x509.load_der_x509_certificate(reply.content)))
        except httpx.HTTPError as exc:
            typer.echo(f"error: cannot reach {url}: {exc}", err=True)
            raise typer.Exit(2) from None
    else:
        from sqlalchemy import select

        from jlis.cli.options import database_session
        from jlis.jpki.tables import CaGenerationRow

        with database_session(database_url, reader=True) as s:
            for row in s.scalars(
                select(CaGenerationRow).order_by(CaGenerationRow.ca_kind, CaGenerationRow.generation)
            ):
                if row.revoked_at is None:
                    roots[row.ca_kind].append(
                        (f"g{row.generation}", x509.load_der_x509_certificate(row.certificate_der))
                    )
    total = 0
    for kind, found in roots.items():
        try:
            written = TrustStore(kind, found).export(directory)
        except JlisError as exc:
            raise _fail(exc, 2) from None
        total += len(written)
        typer.echo(f"{kind}: {', '.join(p.name for p in written) or '(no generation)'} → {directory / kind}")
    if total == 0:
        typer.echo("error: no CA generation found (has the CA been set up?)", err=True)
        raise typer.Exit(2)
