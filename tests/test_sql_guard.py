"""Model-written SQL in evaluation runs under SQLite's own guards, not a keyword filter."""

import sqlite3

from clinitune.data.tasks.text_to_sql import guard, run_sql


def _conn(tmp_path):
    path = tmp_path / "db.sqlite"
    with sqlite3.connect(path) as c:
        c.execute("CREATE TABLE drugs (name TEXT)")
        c.executemany("INSERT INTO drugs VALUES (?)", [("St. John's wort",), ("metformin",), ("drop; select",)])
    return guard(sqlite3.connect(f"file:{path}?mode=ro", uri=True))


def test_correct_answers_are_not_refused_for_their_words(tmp_path):
    conn = _conn(tmp_path)
    assert run_sql(conn, "SELECT name FROM drugs WHERE name = 'drop; select';") == [("drop; select",)]
    assert run_sql(conn, "SELECT replace(name, 'metformin', 'x') FROM drugs WHERE name = 'metformin'") == [("x",)]
    assert run_sql(conn, "SELECT count(*) FROM drugs WHERE name = 'St. John''s wort'") == [(1,)]
    assert run_sql(conn, "WITH d AS (SELECT name FROM drugs) SELECT count(*) FROM d") == [(3,)]


def test_writes_attach_pragma_and_several_statements_are_refused(tmp_path):
    conn = _conn(tmp_path)
    for sql in (
        "DELETE FROM drugs",
        "INSERT INTO drugs VALUES ('x')",
        f"ATTACH DATABASE '{tmp_path / 'new.db'}' AS x",
        "PRAGMA writable_schema = 1",
        "SELECT 1; DELETE FROM drugs",
    ):
        assert run_sql(conn, sql) is None, sql
    assert not (tmp_path / "new.db").exists()
    assert run_sql(conn, "SELECT count(*) FROM drugs") == [(3,)]


def test_resource_bombs_stop_instead_of_running(tmp_path):
    conn = _conn(tmp_path)
    assert run_sql(conn, "SELECT zeroblob(999000000)") is None  # over the 1 MB value limit: refused at once
    assert run_sql(conn, "SELECT length(randomblob(2000000)), length(randomblob(2000000))") is None
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"
    assert run_sql(conn, endless, timeout_s=0.2) is None  # the progress handler's deadline
