"""PostgreSQL from Debian's packages is real and usable."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from tongxing_dev.postgres import PostgresEndpoint


def test_a_row_written_is_read_back(postgres: PostgresEndpoint) -> None:
    url = postgres.create_database(f"smoke_{uuid.uuid4().hex[:8]}")
    with psycopg.connect(url) as conn:
        conn.execute("CREATE TABLE citizen (id serial PRIMARY KEY, region text NOT NULL)")
        conn.execute("INSERT INTO citizen (region) VALUES (%s), (%s)", ("zj", "sh"))
        conn.commit()
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT region FROM citizen ORDER BY id").fetchall()
        version = conn.execute("SHOW server_version").fetchone()
    assert rows == [("zj",), ("sh",)]
    assert version is not None
    assert version[0].startswith("15.")


def test_the_server_refuses_a_wrong_password(postgres: PostgresEndpoint) -> None:
    wrong = PostgresEndpoint(
        postgres.host, postgres.port, postgres.user, "not-the-password", postgres.dbname
    )
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong.url(), connect_timeout=5).close()
