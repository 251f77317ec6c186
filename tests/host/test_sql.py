"""The engine differences (host/sql.py) that are not the store's behaviour: which engine --db names, URLs printed
without their secrets, and the values PostgreSQL cannot hold, refused before they are sent."""

from __future__ import annotations

from pathlib import Path

import pytest

from dnnprof.host import sql


def test_a_url_names_postgresql_and_anything_else_a_sqlite_file(tmp_path):
    assert sql.is_url("postgresql://u@h/db") and sql.is_url("postgres://u@h/db")
    assert not sql.is_url(str(tmp_path / "results.sqlite")) and not sql.is_url(tmp_path / "x")
    assert isinstance(sql.engine(tmp_path / "results.sqlite"), sql.SQLite)
    assert sql.engine("postgresql://u@h/db").where == "postgresql://u@h/db"


@pytest.mark.parametrize("url, printed", [
    ("postgresql://dnnprof:s3cret@db.lan:5433/dnnprof", "postgresql://dnnprof:***@db.lan:5433/dnnprof"),
    ("postgresql://dnnprof@db.lan/dnnprof?password=s3cret&sslmode=verify-full",
     "postgresql://dnnprof@db.lan/dnnprof?password=***&sslmode=verify-full"),
    ("postgresql://u@h/db?sslpassword=keypw", "postgresql://u@h/db?sslpassword=***"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
])
def test_a_url_is_printed_without_its_secrets(url, printed):
    assert sql.where(url) == sql.shown(url) == printed
    assert "s3cret" not in sql.scrubbed(f'invalid percent-encoded token: "{url}"', url)


def test_a_path_is_printed_as_it_is(tmp_path):
    assert sql.where(tmp_path / "a b.sqlite") == str(Path(tmp_path / "a b.sqlite"))
    assert sql.scrubbed("no such file", tmp_path) == "no such file"


def test_what_postgresql_cannot_hold_is_refused_before_it_is_sent(postgres):
    db = sql.Postgres(postgres.url()).connect()
    try:
        for value in (2**63, -(2**63) - 1, "a\x00b", '{"network": "a\\u0000b"}'):
            with pytest.raises(sql.Unstorable) as refused:
                db.execute("SELECT ?", (value,))
            assert "\\u0000" not in str(refused.value) and "\x00" not in str(refused.value)
        assert db.execute("SELECT ?::bigint", (2**63 - 1,)).fetchone()[0] == 2**63 - 1
        assert db.execute("SELECT '100%' || ?", ("!",)).fetchone()[0] == "100%!"  # a literal % stays one
        assert not db.in_transaction
    finally:
        db.close()
