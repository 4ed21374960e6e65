"""Every startup mistake ends a command with one line that names the value and the fix:
exit status 2 for a usage mistake, 1 for an error, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import POSTGRES_URL
from omnistock.server.cli import main
from omnistock.server.store.database import DEFAULT_DATABASE_URL, normalize_url
from processes import clean_env
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[2]

# Every command that opens the database, with what it needs besides.
DATABASE_COMMANDS = [
    ["serve", "--listen", "127.0.0.1:0"],
    ["keys", "create", "pos", "--role", "feed"],
    ["keys", "list"],
    ["audit"],
    ["migrate"],
    ["migrate", "current"],
    ["import-postcodes", "{postcodes}"],
]


@pytest.fixture(autouse=True)
def _in_a_fresh_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in [n for n in os.environ if n.startswith("OMNISTOCK_")]:
        monkeypatch.delenv(name)
    (tmp_path / "postcodes.csv").write_text("postal_code,latitude,longitude\n1012,52.37,4.89\n")


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main([arg.format(postcodes="postcodes.csv") for arg in args])
    except SystemExit as exit:  # argparse's own usage errors and --version
        code = int(exit.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("command", DATABASE_COMMANDS, ids=" ".join)
@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("omnistock.db", "for a file: sqlite:///omnistock.db"),
        ("foo", "is not a database URL: use sqlite:///"),
        ("mysql://app@db/omnistock", "mysql is not supported"),
        ("postgresql://app@db", "names no database"),
    ],
)
def test_a_malformed_database_url_is_a_usage_error_naming_it(
    capsys: pytest.CaptureFixture[str], command: list[str], url: str, says: str
) -> None:
    code, _, err = run(capsys, *command, "--database-url", url)
    line = one_line(err)
    assert code == 2
    assert url in line and says in line
    assert list(Path().glob("*.db")) == []


@pytest.mark.parametrize("command", DATABASE_COMMANDS, ids=" ".join)
def test_an_sqlite_file_in_a_missing_folder_is_an_error_naming_the_folder(
    capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    code, _, err = run(capsys, *command, "--database-url", "sqlite:///nowhere/omnistock.db")
    assert code == 1
    assert "the folder 'nowhere' does not exist: create it" in one_line(err)


def test_a_refused_port_is_an_error_naming_the_server(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "serve", "--database-url", "postgresql://app@127.0.0.1:1/omnistock")
    line = one_line(err)
    assert code == 1
    assert "'postgresql://app@127.0.0.1:1/omnistock'" in line
    assert "Connection refused: is PostgreSQL running there" in line


@pytest.mark.skipif(not POSTGRES_URL, reason="PostgreSQL not configured (.ci/run sets it)")
@pytest.mark.parametrize("command", [["serve"], ["keys", "list"], ["migrate"]], ids=" ".join)
@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"database": "omnistock_no_such_database"}, "create it (createdb omnistock_no_such"),
        ({"username": "omnistock_no_such_user"}, "check the user and password in the URL"),
    ],
)
def test_a_missing_database_or_user_is_an_error_with_the_fix(
    capsys: pytest.CaptureFixture[str], command: list[str], change: dict[str, str], says: str
) -> None:
    url = make_url(normalize_url(POSTGRES_URL)).set(**change).render_as_string(False)
    code, _, err = run(capsys, *command, "--database-url", url)
    assert code == 1
    assert says in one_line(err)


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--listen", "127.0.0.1:99999"], "'127.0.0.1:99999': the port must be a number"),
        (["--listen", "127.0.0.1"], "'127.0.0.1' has no port: give HOST:PORT"),
        (["--log-level", "verbose"], "'verbose' is not a log level: use one of DEBUG"),
    ],
)
def test_serve_flags_are_checked_before_anything_starts(
    capsys: pytest.CaptureFixture[str], flags: list[str], says: str
) -> None:
    code, _, err = run(capsys, "serve", *flags)
    assert code == 2
    assert says in one_line(err)
    assert list(Path().glob("*.db")) == []


# The commands that read the server's configuration (the others read only the database URL).
@pytest.mark.parametrize("command", [["serve"], ["keys", "list"]], ids=" ".join)
@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("OMNISTOCK_LISTEN", "127.0.0.1"),
        ("OMNISTOCK_LOG_LEVEL", "verbose"),
        ("OMNISTOCK_DB_THREADS", "eight"),
        ("OMNISTOCK_GRACE_SECONDS", "-1"),
        ("OMNISTOCK_INSECURE", "maybe"),
        ("OMNISTOCK_PICKUP_HOLD_TTL", "soon"),
    ],
)
def test_a_bad_environment_value_is_a_usage_error_naming_the_variable(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    command: list[str],
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(variable, value)
    code, _, err = run(capsys, *command)
    assert code == 2
    line = one_line(err)
    assert f"${variable}" in line and repr(value) in line


def test_audit_in_a_fresh_folder_says_where_it_looked_and_makes_no_file(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "audit")
    assert code == 1
    assert "no database at 'omnistock.db': give the server's --database-url" in one_line(err)
    assert list(Path().iterdir()) == [Path("postcodes.csv")]


@pytest.mark.parametrize(
    "args",
    [
        ["--database-url", "sqlite:///chosen.db", "keys", "create", "pos", "--role", "feed"],
        ["keys", "--database-url", "sqlite:///chosen.db", "create", "pos", "--role", "feed"],
        ["keys", "create", "pos", "--role", "feed", "--database-url", "sqlite:///chosen.db"],
    ],
    ids=["before the command", "between", "after"],
)
def test_database_url_is_taken_anywhere_in_the_command(
    capsys: pytest.CaptureFixture[str], args: list[str]
) -> None:
    code, out, err = run(capsys, *args)
    assert code == 0, err
    assert [p.name for p in Path().glob("*.db")] == ["chosen.db"]
    code, out, _ = run(capsys, "keys", "list", "--database-url", "sqlite:///chosen.db")
    assert code == 0 and "pos: roles feed" in out


def test_every_command_defaults_to_the_database_the_demo_serves(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # The README's order: the demo serves, then `keys create` and `audit` run without flags.
    demo = (ROOT / "scripts" / "demo").read_text()
    assert '"${OMNISTOCK_DATABASE_URL:-' + DEFAULT_DATABASE_URL + '}"' in demo
    code, _, err = run(capsys, "migrate")  # what the demo's server does at start
    assert code == 0, err
    code, _, err = run(capsys, "keys", "create", "pos Amsterdam", "--role", "feed")
    assert code == 0, err
    code, out, err = run(capsys, "keys", "list")
    assert code == 0 and "pos Amsterdam" in out, err
    code, _, err = run(capsys, "audit", "--limit", "20")
    assert code == 0, err
    assert [p.name for p in Path().glob("*.db")] == ["omnistock.db"]


def test_migrate_current_and_history_show_the_revisions(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run(capsys, "migrate", "current")
    assert code == 1  # nothing made yet
    assert run(capsys, "migrate", "upgrade")[0] == 0
    code, out, _ = run(capsys, "migrate", "current")
    assert code == 0 and "(head)" in out
    code, out, _ = run(capsys, "migrate", "history")
    assert code == 0 and "0001" in out and "(head)" in out


def test_serve_no_migrate_refuses_a_database_without_the_schema(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run(capsys, "serve", "--no-migrate", "--listen", "127.0.0.1:0")
    assert code == 1
    assert "run `omnistock migrate`, or serve without --no-migrate" in one_line(err)


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    code, out, _ = run(capsys, "--version")
    assert code == 0 and out.strip() == f"omnistock {version('omnistock')}"


def test_the_installed_command_prints_one_line_not_a_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "omnistock.server.cli", "serve", "--database-url", "foo"],
        env=clean_env(), cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert one_line(done.stderr).startswith("omnistock: --database-url 'foo'")


@pytest.mark.parametrize(
    "command", ["serve", "import", "export", "keys", "audit", "migrate", "import-postcodes"]
)
def test_every_command_has_a_description(command: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "omnistock.server.cli", command, "--help"],
        env=clean_env(), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0
    _usage, description = done.stdout.split("\n\n")[:2]
    assert len(description.split()) >= 5, done.stdout
