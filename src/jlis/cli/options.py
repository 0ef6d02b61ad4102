"""What every sub-command that touches the database shares: the ``--database-url`` option and an
engine that lives exactly as long as the command."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer
from sqlalchemy.orm import Session, sessionmaker

from jlis.db import make_engine, make_session_factory, read_only
from jlis.errors import JlisError
from jlis.settings import load_settings

if TYPE_CHECKING:
    from jlis.container import Container

DatabaseOpt = Annotated[
    str | None, typer.Option("--database-url", help="Overrides the configured database (JLIS_DATABASE_URL).")
]


@contextmanager
def database(database_url: str | None) -> Iterator[sessionmaker[Session]]:
    """A session factory on the configured (or given) database; the engine is disposed afterwards.
    A :class:`JlisError` becomes a message on stderr and exit status 2."""
    engine = make_engine(database_url or load_settings().resolved_database_url)
    try:
        yield make_session_factory(engine)
    except JlisError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    finally:
        engine.dispose()


@contextmanager
def database_session(database_url: str | None, *, reader: bool = False) -> Iterator[Session]:
    """One transaction on the database, committed when the command's work is done. A ``reader``
    takes no write lock (see :func:`jlis.db.read_only`)."""
    with database(database_url) as factory, factory() as session, session.begin():
        if reader:
            read_only(session)
        yield session


@contextmanager
def container(database_url: str | None) -> Iterator[Container]:
    """The whole wiring (:class:`jlis.container.Container`) on the configured (or given) database,
    for commands that need more than sessions (keys, masters, the card system); errors as above."""
    from jlis.container import Container

    built = Container(load_settings(database_url=database_url))
    try:
        yield built
    except JlisError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    finally:
        built.engine.dispose()
