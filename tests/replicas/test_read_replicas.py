"""Read replicas (docs/scaling.md): reads go to a PostgreSQL streaming replica in rotation,
a replica lagging past the bound leaves the rotation until it catches up, holds follow the
primary, and a read after a change notice never caches what the replica has not replayed.

Each test runs against a real primary and standby made for the session (standby_pair.py).
"""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
from factories import store, update
from omnistock.client import Client, Exposure, FailedPreconditionError, cart, origin
from omnistock.server.cli import main
from omnistock.server.config import ServerConfig
from omnistock.server.testing import InProcessServer
from standby_pair import StandbyPair, server_binaries, start_pair

STORE = "NL-AMS-01"
BOUND = 1.0  # --replica-max-lag's default


@pytest.fixture(scope="session")
def pair() -> Iterator[StandbyPair]:
    binaries = server_binaries()
    if binaries is None:
        pytest.skip("the PostgreSQL server binaries are missing (no /usr/lib/postgresql/*/bin)")
    yield from start_pair(binaries)


@pytest.fixture
def fresh(pair: StandbyPair) -> StandbyPair:
    pair.reset()
    return pair


def serving(pair: StandbyPair, **options: object) -> InProcessServer:
    config = ServerConfig(
        listen="127.0.0.1:0",
        insecure=True,
        database_url=pair.primary_url,
        read_database_urls=(pair.standby_url,),
        **options,  # type: ignore[arg-type]
    )
    return InProcessServer(config)


def until(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Seconds until ``condition`` holds (fails after ``timeout``)."""
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, "timed out"
        time.sleep(0.01)
    return time.monotonic() - start


def replica(server: InProcessServer) -> object:
    assert server.server is not None
    (only,) = server.server.replicas.replicas
    return only


def in_rotation(server: InProcessServer) -> bool:
    return bool(replica(server).in_rotation)  # type: ignore[attr-defined]


def replica_reads(server: InProcessServer) -> int:
    return int(replica(server).reads)  # type: ignore[attr-defined]


def put(client: Client, sku: str, on_hand: int) -> None:
    client.apply_stock_updates([update(STORE, sku, on_hand, datetime.now(UTC))])


def on_hand(client: Client, sku: str) -> int:
    (answer,) = client.get_availability(sku, [STORE], exposure=Exposure.EXACT)
    return int(answer.on_hand)


def standby_on_hand(pair: StandbyPair, sku: str) -> int | None:
    value = pair.sql(
        pair.standby_port,
        "SELECT on_hand FROM stock WHERE sku = %s AND location_id = %s",
        sku,
        STORE,
    )
    return None if value is None else int(value)


def standby_stock_readers(pair: StandbyPair) -> int:
    """The standby's sessions of omnistock's readers whose last statement read stock."""
    return int(
        pair.sql(
            pair.standby_port,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'omnistock-read-%%'"
            " AND query LIKE '%%FROM stock%%'",
        )
    )


def test_reads_are_served_by_the_replica(fresh: StandbyPair) -> None:
    with serving(fresh, read_cache_size=0) as server, Client(server.target) as client:
        client.upsert_locations([store(STORE)])
        put(client, "PHONE", 4)
        fresh.caught_up()
        until(lambda: in_rotation(server))
        reads = replica_reads(server)
        assert [on_hand(client, "PHONE") for _ in range(20)] == [4] * 20
        assert replica_reads(server) - reads >= 15
        reads = replica_reads(server)
        (answer,) = client.batch_get_availability([("PHONE", STORE)], exposure=Exposure.EXACT)
        assert answer.on_hand == 4 and replica_reads(server) > reads
        # The standby itself shows omnistock's reader sessions and what they last read.
        assert standby_stock_readers(fresh) >= 1


def test_a_write_is_visible_through_the_replica_within_the_bound(fresh: StandbyPair) -> None:
    with serving(fresh, read_cache_size=0) as server, Client(server.target) as client:
        client.upsert_locations([store(STORE)])
        for count in (3, 8, 13):
            put(client, "PHONE", count)
            assert on_hand(client, "PHONE") == count  # this process reads its own write
            seconds = until(lambda count=count: standby_on_hand(fresh, "PHONE") == count)
            print(f"write visible on the standby after {seconds * 1000:.1f} ms")
            assert seconds < BOUND


def _metric(port: int, name: str) -> float | None:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


def test_a_paused_replica_leaves_the_rotation_and_comes_back(fresh: StandbyPair) -> None:
    options = {"read_cache_size": 0, "metrics_listen": "127.0.0.1:0"}
    with serving(fresh, **options) as server, Client(server.target) as client:
        assert server.server is not None and server.server.metrics_endpoint is not None
        port = server.server.metrics_endpoint.port
        client.upsert_locations([store(STORE)])
        put(client, "PHONE", 1)
        until(lambda: in_rotation(server))
        assert _metric(port, "omnistock_read_replica_in_rotation") == 1
        fresh.pause()
        put(client, "PHONE", 2)  # the primary moves on; the replica does not replay it
        out = until(lambda: not in_rotation(server), timeout=BOUND + 3)
        print(f"paused replica out of rotation {out:.2f} s after the write (bound {BOUND} s)")
        assert BOUND * 0.8 <= out <= BOUND + 1.0
        assert _metric(port, "omnistock_read_replica_in_rotation") == 0
        lag = _metric(port, "omnistock_read_replica_lag_seconds")
        assert lag is not None and lag > BOUND
        reads = replica_reads(server)
        assert [on_hand(client, "PHONE") for _ in range(10)] == [2] * 10
        assert replica_reads(server) == reads  # out of rotation: none of them
        fresh.resume()
        back = until(lambda: in_rotation(server), timeout=5)
        print(f"resumed replica back in rotation after {back * 1000:.0f} ms")
        assert back < BOUND
        assert [on_hand(client, "PHONE") for _ in range(10)] == [2] * 10
        assert replica_reads(server) > reads
        assert _metric(port, "omnistock_read_replica_lag_seconds") == 0
        assert (_metric(port, "omnistock_database_reads_total") or 0) >= 10  # the primary's


def test_a_hold_is_never_made_against_replica_data(fresh: StandbyPair) -> None:
    # A bound the test never reaches: the paused replica stays in rotation throughout.
    with serving(fresh, replica_max_lag=600.0) as server, Client(server.target) as client:
        client.upsert_locations([store(STORE)])
        put(client, "PHONE", 0)
        put(client, "CASE", 10)
        fresh.caught_up()
        until(lambda: in_rotation(server))
        fresh.pause()
        put(client, "PHONE", 5)
        put(client, "CASE", 2)
        assert (standby_on_hand(fresh, "PHONE"), standby_on_hand(fresh, "CASE")) == (0, 10)
        made = client.create_reservation(STORE, {"PHONE": 3}, customer_reference="o-1")
        assert made.holds_stock
        with pytest.raises(FailedPreconditionError) as refused:
            client.create_reservation(STORE, {"CASE": 5}, customer_reference="o-2")
        assert "requested 5, available 2" in str(refused.value)
        assert in_rotation(server)
        (answer,) = client.get_availability("PHONE", [STORE], exposure=Exposure.EXACT)
        assert (answer.on_hand, answer.reserved, answer.available_to_sell) == (5, 3, 2)
        fresh.resume()


def test_a_process_reads_its_own_writes_past_a_paused_replica(fresh: StandbyPair) -> None:
    with serving(fresh, replica_max_lag=600.0) as server, Client(server.target) as client:
        client.upsert_locations([store(STORE)])
        put(client, "PHONE", 0)
        fresh.caught_up()
        until(lambda: in_rotation(server))
        fresh.pause()
        for count in range(1, 21):
            put(client, "PHONE", count)
            assert on_hand(client, "PHONE") == count
        assert standby_on_hand(fresh, "PHONE") == 0 and in_rotation(server)
        fresh.resume()


def test_a_read_after_a_notice_never_caches_what_the_replica_lacks(fresh: StandbyPair) -> None:
    options = {"replica_max_lag": 600.0, "read_cache_ttl": 600.0}
    with (
        serving(fresh, **options) as writer,
        serving(fresh, **options) as reader,
        Client(writer.target) as a,
        Client(reader.target) as b,
    ):
        a.upsert_locations([store(STORE)])
        put(a, "PHONE", 1)
        fresh.caught_up()
        until(lambda: in_rotation(reader) and STORE in [x.id for x in b.list_locations()])
        assert on_hand(b, "PHONE") == 1  # now in the reader's cache
        fresh.pause()
        put(a, "PHONE", 7)  # another process's write: the reader hears of it
        until(lambda: on_hand(b, "PHONE") == 7, timeout=3)
        assert standby_on_hand(fresh, "PHONE") == 1 and in_rotation(reader)
        assert [on_hand(b, "PHONE") for _ in range(20)] == [7] * 20
        put(b, "PHONE", 9)  # the reader's own write
        assert on_hand(b, "PHONE") == 9
        until(lambda: on_hand(a, "PHONE") == 9, timeout=3)
        fresh.resume()
        fresh.caught_up()
        assert on_hand(a, "PHONE") == on_hand(b, "PHONE") == 9


def test_an_export_reads_the_replica(fresh: StandbyPair) -> None:
    with serving(fresh) as server, Client(server.target) as client:
        client.upsert_locations([store(STORE)])
        for index in range(5):
            put(client, f"SKU-{index}", index)
        fresh.caught_up()
        until(lambda: in_rotation(server))
        reads = replica_reads(server)
        exported = {answer.sku: answer.on_hand for answer in client.export_stock(STORE)}
        assert exported == {f"SKU-{index}": index for index in range(5)}
        assert replica_reads(server) > reads


def test_a_search_reads_the_replica(fresh: StandbyPair) -> None:
    with serving(fresh, read_cache_size=0) as server, Client(server.target) as client:
        client.upsert_locations([store(STORE)])
        put(client, "PHONE", 6)
        fresh.caught_up()
        until(lambda: in_rotation(server))
        reads = replica_reads(server)
        here = origin(latitude=52.37, longitude=4.89)
        found = client.search_nearby(cart({"PHONE": 1}), here, exposure=Exposure.EXACT)
        assert [x.location_id for x in found.locations] == [STORE]
        assert replica_reads(server) > reads


def test_a_read_the_replica_fails_is_answered_by_the_primary(fresh: StandbyPair) -> None:
    with serving(fresh, read_cache_size=0) as server, Client(server.target) as client:
        client.upsert_locations([store(STORE)])
        put(client, "PHONE", 4)
        fresh.caught_up()
        until(lambda: in_rotation(server))
        assert on_hand(client, "PHONE") == 4
        # The standby ends every session of omnistock's readers: the next read on one
        # fails, is made again on the primary, and the replica returns at its next check.
        fresh.sql(
            fresh.standby_port,
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE application_name LIKE 'omnistock-read-%%'",
        )
        assert [on_hand(client, "PHONE") for _ in range(10)] == [4] * 10
        until(lambda: in_rotation(server))
        reads = replica_reads(server)
        assert on_hand(client, "PHONE") == 4 and replica_reads(server) > reads


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    try:
        code = main(list(args))
    except SystemExit as exit:
        code = int(exit.code or 0)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return code, lines[0]


def test_sqlite_with_a_read_replica_is_a_one_line_usage_error(
    capsys: pytest.CaptureFixture[str], tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # type: ignore[arg-type]
    code, line = run(
        capsys,
        *("serve", "--listen", "127.0.0.1:0", "--database-url", "sqlite:///omnistock.db"),
        *("--read-database-url", "postgresql://app@replica/omnistock"),
    )
    assert code == 2
    assert "--read-database-url needs a PostgreSQL --database-url" in line


@pytest.mark.parametrize(
    ("replica_url", "status", "says"),
    [
        ("nonsense", 2, "--read-database-url 'nonsense' is not a database URL"),
        ("sqlite:///other.db", 2, "must be a PostgreSQL streaming replica"),
        ("postgresql://postgres@127.0.0.1:1/omnistock", 1, "cannot open read replica"),
        ("{primary}", 2, "is not a streaming replica (pg_is_in_recovery() is false)"),
    ],
)
def test_a_bad_read_replica_url_is_one_line(
    capsys: pytest.CaptureFixture[str],
    fresh: StandbyPair,
    replica_url: str,
    status: int,
    says: str,
) -> None:
    code, line = run(
        capsys,
        *("serve", "--listen", "127.0.0.1:0", "--database-url", fresh.primary_url),
        *("--read-database-url", replica_url.format(primary=fresh.primary_url)),
    )
    assert (code, says in line) == (status, True), line


def test_the_environment_names_read_replicas_too(
    capsys: pytest.CaptureFixture[str], fresh: StandbyPair, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OMNISTOCK_READ_DATABASE_URL", f"{fresh.standby_url} nonsense")
    code, line = run(
        capsys, "serve", "--listen", "127.0.0.1:0", "--database-url", fresh.primary_url
    )
    assert code == 2 and "--read-database-url 'nonsense' is not a database URL" in line
