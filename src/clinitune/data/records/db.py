"""Engines for user-given database URLs: clear errors, and read-only where we only read."""

from __future__ import annotations

import contextlib
from pathlib import Path

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from ...errors import ClinituneError
from . import schema


def masked_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def engine_for(url: str, readonly: bool = False) -> Engine:
    """An engine for `url`. Read-only engines open SQLite with mode=ro and run PostgreSQL
    transactions as READ ONLY, so a bug or a hostile query can never change the source."""
    try:
        u = make_url(url)
    except ArgumentError:
        raise ClinituneError(
            f"{url!r}: not a database URL; expected e.g. sqlite:///data/clinic.db or postgresql+psycopg://user@host/db"
        ) from None
    if u.drivername.startswith("postgresql") and u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we install
    if u.drivername.startswith("sqlite"):
        if not u.database or u.database == ":memory:":
            raise ClinituneError(f"{url!r}: give SQLite a file path, e.g. sqlite:///data/clinic.db")
        path = Path(u.database)
        if readonly:
            if not path.is_file():
                raise ClinituneError(
                    f"{url}: database file {path} does not exist; create it with: clinitune synth --db {url}"
                )
            engine = create_engine(f"sqlite:///file:{path.resolve()}?mode=ro&uri=true")
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(u)
    else:
        try:
            engine = create_engine(
                u, pool_pre_ping=True, connect_args={"connect_timeout": 10} if "postgresql" in u.drivername else {}
            )
        except (ImportError, SQLAlchemyError) as exc:
            raise ClinituneError(f"{masked_url(url)}: cannot use this database driver ({exc})") from None
        if readonly and "postgresql" in u.drivername:

            @event.listens_for(engine, "begin")
            def _read_only(conn):  # every transaction on this engine
                conn.exec_driver_sql("SET TRANSACTION READ ONLY")

    try:
        with engine.connect() as conn:
            if u.drivername.startswith("sqlite"):  # SQLite opens any file; the first read finds out what it is
                conn.exec_driver_sql("PRAGMA schema_version")
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        if u.drivername.startswith("sqlite") and "not a database" in reason:
            raise ClinituneError(
                f"{u.database}: not a SQLite database ({reason}); point --db at a database file, e.g. one written "
                "by clinitune synth"
            ) from None
        raise ClinituneError(
            f"cannot connect to {masked_url(url)}: {reason}; check the URL, the server and the credentials"
        ) from None
    return engine


def require_schema(engine: Engine, url: str) -> None:
    missing = [t for t in ("patients", *schema.FACT_TABLES) if not inspect(engine).has_table(t)]
    if missing:
        raise ClinituneError(
            f"{masked_url(url)}: missing tables {', '.join(missing)}; this is not a clinitune database (create one "
            f"with clinitune synth)"
        )


@contextlib.contextmanager
def connect(url: str, readonly: bool = True):
    engine = engine_for(url, readonly)
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()
