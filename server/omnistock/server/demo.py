"""The demo data set: 50 stores in Dutch cities, 2 warehouses, 3,000 skus, and the groups
and channels a Dutch retailer would sell through.

Groups: ``warehouses`` (both), one per region's stores (``stores-<region>``, REGIONS), and
``network`` (member groups: the warehouses and every region). Channels: ``web`` (the
network, ship and pickup, every store keeping 2 units back, selling incoming supply),
``app`` (the network, ship and pickup, stores keeping 1 back), ``kiosk`` (the network,
pickup only) and ``marketplace`` (the warehouses, ship only).

Deterministic for a seed. Stock ages are relative to ``now``, so the demo
always shows fresh stores, plus one store whose feed has gone stale.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from omnistock.server.domain.channels import Channel, ChannelMethod, LocationGroup
from omnistock.server.domain.locations import (
    Capabilities,
    HoursException,
    Location,
    LocationKind,
    WeeklyHours,
)
from omnistock.server.domain.timeutil import to_micros
from omnistock.server.store.channels import ChannelRepository
from omnistock.server.store.feeds import FeedWriter
from omnistock.server.store.locations import LocationRepository

log = logging.getLogger(__name__)

TIME_ZONE = "Europe/Amsterdam"
SKU_COUNT = 3_000
CATEGORIES = ("ELEC", "HOME", "KITCH", "SPORT", "TOYS", "GARDEN")
STALE_STORE = "NL-LWD-01"

# (store code, name, address, postal code, latitude, longitude)
STORES: tuple[tuple[str, str, str, str, float, float], ...] = (
    ("NL-AMS-01", "Amsterdam Kalverstraat", "Kalverstraat 92", "1012 PH", 52.3702, 4.8910),
    ("NL-AMS-02", "Amsterdam Zuid", "Zuidplein 36", "1077 XV", 52.3389, 4.8722),
    ("NL-AMS-03", "Amsterdam Noord", "Buikslotermeerplein 100", "1025 ET", 52.4006, 4.9319),
    ("NL-AMS-04", "Amsterdam Oost", "Javastraat 55", "1094 HB", 52.3631, 4.9379),
    ("NL-RTM-01", "Rotterdam Lijnbaan", "Lijnbaan 80", "3012 ER", 51.9199, 4.4737),
    ("NL-RTM-02", "Rotterdam Zuidplein", "Zuidplein 520", "3083 CX", 51.8827, 4.4880),
    ("NL-RTM-03", "Rotterdam Alexandrium", "Poolsterweg 3", "3067 GA", 51.9524, 4.5556),
    ("NL-DHG-01", "Den Haag Grote Marktstraat", "Grote Marktstraat 30", "2511 BJ", 52.0762, 4.3096),
    ("NL-DHG-02", "Den Haag Leyweg", "Leyweg 800", "2545 GR", 52.0441, 4.2632),
    ("NL-UTR-01", "Utrecht Hoog Catharijne", "Godebaldkwartier 10", "3511 DX", 52.0901, 5.1115),
    ("NL-UTR-02", "Utrecht Leidsche Rijn", "Leidsche Rijn Centrum 5", "3541 AA", 52.0945, 5.0588),
    ("NL-EHV-01", "Eindhoven Demer", "Demer 20", "5611 AS", 51.4393, 5.4779),
    ("NL-GRQ-01", "Groningen Herestraat", "Herestraat 40", "9711 LK", 53.2160, 6.5680),
    ("NL-TLB-01", "Tilburg Heuvelstraat", "Heuvelstraat 60", "5038 AD", 51.5560, 5.0880),
    ("NL-ALM-01", "Almere Centrum", "Stadhuisplein 12", "1315 HT", 52.3712, 5.2180),
    ("NL-BRD-01", "Breda Ginnekenstraat", "Ginnekenstraat 25", "4811 JB", 51.5870, 4.7770),
    ("NL-NMG-01", "Nijmegen Broerstraat", "Broerstraat 30", "6511 KL", 51.8469, 5.8642),
    ("NL-APD-01", "Apeldoorn Hoofdstraat", "Hoofdstraat 150", "7311 BB", 52.2118, 5.9651),
    ("NL-HLM-01", "Haarlem Grote Houtstraat", "Grote Houtstraat 70", "2011 SP", 52.3792, 4.6339),
    ("NL-ARN-01", "Arnhem Ketelstraat", "Ketelstraat 20", "6811 DK", 51.9819, 5.9089),
    ("NL-ENS-01", "Enschede Kalanderstraat", "Kalanderstraat 8", "7511 HR", 52.2205, 6.8937),
    ("NL-AMF-01", "Amersfoort Utrechtsestraat", "Utrechtsestraat 15", "3811 LR", 52.1550, 5.3857),
    ("NL-ZDM-01", "Zaandam Gedempte Gracht", "Gedempte Gracht 60", "1506 CE", 52.4389, 4.8260),
    (
        "NL-DBS-01",
        "'s-Hertogenbosch Hinthamerstraat",
        "Hinthamerstraat 40",
        "5211 MN",
        51.6887,
        5.3058,
    ),
    ("NL-ZWO-01", "Zwolle Diezerstraat", "Diezerstraat 50", "8011 RJ", 52.5130, 6.0937),
    ("NL-LEI-01", "Leiden Haarlemmerstraat", "Haarlemmerstraat 100", "2312 DL", 52.1611, 4.4908),
    ("NL-MST-01", "Maastricht Grote Staat", "Grote Staat 30", "6211 CV", 50.8497, 5.6901),
    ("NL-DOR-01", "Dordrecht Voorstraat", "Voorstraat 200", "3311 ES", 51.8148, 4.6660),
    ("NL-ZTM-01", "Zoetermeer Stadshart", "Promenade 40", "2711 AG", 52.0594, 4.4935),
    ("NL-EDE-01", "Ede Grotestraat", "Grotestraat 70", "6711 AL", 52.0432, 5.6658),
    ("NL-LWD-01", "Leeuwarden Nieuwestad", "Nieuwestad 40", "8911 CM", 53.2022, 5.7950),
    ("NL-ALK-01", "Alkmaar Langestraat", "Langestraat 60", "1811 JE", 52.6320, 4.7470),
    ("NL-DLF-01", "Delft Markt", "Markt 40", "2611 GW", 52.0115, 4.3590),
    ("NL-VNL-01", "Venlo Vleesstraat", "Vleesstraat 50", "5911 JE", 51.3705, 6.1717),
    (
        "NL-DEV-01",
        "Deventer Lange Bisschopstraat",
        "Lange Bisschopstraat 20",
        "7411 LB",
        52.2530,
        6.1580,
    ),
    ("NL-HVS-01", "Hilversum Kerkstraat", "Kerkstraat 60", "1211 CN", 52.2240, 5.1760),
    ("NL-AVN-01", "Amstelveen Stadshart", "Rembrandtweg 10", "1181 GX", 52.3035, 4.8607),
    ("NL-HRL-01", "Heerlen Saroleastraat", "Saroleastraat 30", "6411 HW", 50.8871, 5.9784),
    ("NL-HMD-01", "Helmond Markt", "Markt 10", "5701 RK", 51.4786, 5.6574),
    ("NL-OSS-01", "Oss Heuvelstraat", "Heuvelstraat 30", "5341 CC", 51.7646, 5.5210),
    ("NL-RSD-01", "Roosendaal Nieuwe Markt", "Nieuwe Markt 20", "4701 AE", 51.5322, 4.4619),
    ("NL-GOU-01", "Gouda Kleiweg", "Kleiweg 20", "2801 GJ", 52.0137, 4.7074),
    ("NL-PMR-01", "Purmerend Koemarkt", "Koemarkt 10", "1441 DB", 52.5030, 4.9530),
    ("NL-SCH-01", "Schiedam Hoogstraat", "Hoogstraat 80", "3111 HK", 51.9167, 4.3975),
    ("NL-LLS-01", "Lelystad Stadhuisplein", "Stadhuisplein 20", "8232 ZX", 52.5098, 5.4753),
    ("NL-HFD-01", "Hoofddorp Polderplein", "Polderplein 5", "2132 BA", 52.3025, 4.6900),
    ("NL-ASS-01", "Assen Koopmansplein", "Koopmansplein 10", "9401 JG", 52.9945, 6.5625),
    ("NL-MDB-01", "Middelburg Lange Delft", "Lange Delft 30", "4331 AM", 51.4996, 3.6120),
    ("NL-EMN-01", "Emmen Noordbargerstraat", "Noordbargerstraat 30", "7811 AB", 52.7860, 6.8975),
    ("NL-HDR-01", "Den Helder Beatrixstraat", "Beatrixstraat 40", "1781 EN", 52.9580, 4.7590),
)

WAREHOUSES: tuple[tuple[str, str, str, str, float, float], ...] = (
    ("NL-WH-TLB", "Warehouse Tilburg", "Kraaiven 30", "5048 AT", 51.6010, 5.0470),
    ("NL-WH-ZWO", "Warehouse Zwolle", "Hessenpoort 12", "8028 PN", 52.5420, 6.1550),
)


# The stores of each region, by the city part of their code.
REGIONS: dict[str, frozenset[str]] = {
    "north": frozenset({"GRQ", "LWD", "ASS", "EMN"}),
    "east": frozenset({"NMG", "APD", "ARN", "ENS", "ZWO", "EDE", "DEV"}),
    "north-holland": frozenset(
        {"AMS", "ZDM", "HLM", "ALM", "HVS", "AVN", "ALK", "PMR", "LLS", "HFD", "HDR"}
    ),
    "south-holland-utrecht": frozenset(
        {"RTM", "DHG", "UTR", "LEI", "DOR", "ZTM", "DLF", "GOU", "SCH", "AMF"}
    ),
    "south": frozenset(
        {"EHV", "TLB", "BRD", "DBS", "MST", "VNL", "HRL", "HMD", "OSS", "RSD", "MDB"}
    ),
}
# Units every store keeps back from the web shop (and from the app) for walk-in shoppers.
WEB_STORE_PROTECTION = 2
APP_STORE_PROTECTION = 1


def demo_groups() -> list[LocationGroup]:
    """Members first: the warehouses, each region's stores, then the whole network."""
    groups = [LocationGroup("warehouses", "All warehouses", frozenset(c for c, *_ in WAREHOUSES))]
    groups += [
        LocationGroup(
            f"stores-{region}",
            f"Stores: {region.replace('-', ' ')}",
            frozenset(code for code, *_ in STORES if code[3:6] in cities),
        )
        for region, cities in REGIONS.items()
    ]
    members = frozenset(group.id for group in groups)
    return [*groups, LocationGroup("network", "The whole network", frozenset(), members)]


def demo_channels() -> list[Channel]:
    both = frozenset(ChannelMethod)
    stores = [code for code, *_ in STORES]
    return [
        Channel(
            "web", "Web shop", "network", methods=both, sells_incoming=True,
            protection={code: WEB_STORE_PROTECTION for code in stores},
        ),
        Channel(
            "app", "Mobile app", "network", methods=both,
            protection={code: APP_STORE_PROTECTION for code in stores},
        ),
        Channel("kiosk", "In-store kiosk", "network", methods=frozenset({ChannelMethod.PICKUP})),
        Channel(
            "marketplace", "Partner marketplace", "warehouses",
            methods=frozenset({ChannelMethod.SHIP}), low_threshold=5,
        ),
    ]  # fmt: skip


def _hours(opens: str, closes: str, weekday: int) -> WeeklyHours:
    return WeeklyHours(weekday, time.fromisoformat(opens), time.fromisoformat(closes))


def store_hours(*, big_city: bool) -> tuple[WeeklyHours, ...]:
    """Dutch high-street hours: late Mondays, a Thursday shopping evening, Sundays in big cities."""
    week = [
        _hours("11:00", "18:00", 1),
        _hours("09:30", "18:00", 2),
        _hours("09:30", "18:00", 3),
        _hours("09:30", "21:00", 4),
        _hours("09:30", "18:00", 5),
        _hours("09:30", "17:00", 6),
    ]
    if big_city:
        week.append(_hours("12:00", "17:00", 7))
    return tuple(week)


def holidays(year: int) -> tuple[HoursException, ...]:
    return (
        HoursException(date(year, 1, 1)),
        HoursException(date(year, 4, 27), time(10, 0), time(16, 0)),  # King's Day
        HoursException(date(year, 12, 25)),
        HoursException(date(year, 12, 26), time(12, 0), time(17, 0)),
        HoursException(date(year, 12, 31), time(9, 30), time(16, 0)),
    )


def demo_locations(now: datetime) -> list[Location]:
    exceptions = holidays(now.year) + holidays(now.year + 1)
    locations = [
        Location(
            id=code,
            kind=LocationKind.STORE,
            name=name,
            address=address,
            postal_code=postal,
            country="NL",
            latitude=lat,
            longitude=lng,
            time_zone=TIME_ZONE,
            weekly_hours=store_hours(big_city=code[3:6] in {"AMS", "RTM", "DHG", "UTR", "EHV"}),
            hours_exceptions=exceptions,
            capabilities=Capabilities(pickup=True, ship_from=False, ship_to_store=True),
            pickup_lead_time_minutes=30 if code.endswith("-01") else 60,
            default_safety_stock=1,
        )
        for code, name, address, postal, lat, lng in STORES
    ]
    locations += [
        Location(
            id=code,
            kind=LocationKind.WAREHOUSE,
            name=name,
            address=address,
            postal_code=postal,
            country="NL",
            latitude=lat,
            longitude=lng,
            time_zone=TIME_ZONE,
            weekly_hours=tuple(_hours("06:00", "22:00", day) for day in range(1, 7)),
            capabilities=Capabilities(pickup=False, ship_from=True, ship_to_store=False),
            shipping_days=1 if code.endswith("TLB") else 2,
            default_safety_stock=5,
        )
        for code, name, address, postal, lat, lng in WAREHOUSES
    ]
    return locations


def demo_skus(count: int = SKU_COUNT) -> list[str]:
    return [f"{CATEGORIES[i % len(CATEGORIES)]}-{10_000 + i}" for i in range(count)]


def demo_stock(now: datetime, *, seed: int = 7) -> Iterator[DemoSnapshot]:
    """One snapshot per location. Popular skus are carried widely and deeply; a few POS
    counts are negative; one store's last snapshot is older than its freshness budget."""
    rng = random.Random(seed)
    skus = demo_skus()
    # Zipf-like popularity: the first skus sell (and are stocked) most.
    popularity = [1.0 / (1 + i / 150) for i in range(len(skus))]
    for code, *_ in STORES:
        age = timedelta(hours=30) if code == STALE_STORE else timedelta(minutes=rng.randint(1, 240))
        records = []
        for sku, pop in zip(skus, popularity, strict=True):
            if rng.random() > 0.35 + 0.6 * pop:
                continue
            roll = rng.random()
            if roll < 0.12:
                on_hand = 0
            elif roll < 0.13:
                on_hand = -1
            elif roll < 0.35:
                on_hand = rng.randint(1, 3)
            else:
                on_hand = rng.randint(2, 6 + int(30 * pop))
            records.append((sku, on_hand, None))
        yield DemoSnapshot(code, now - age, records)
    for code, *_ in WAREHOUSES:
        records = [
            (sku, rng.randint(0, 40) + int(rng.randint(0, 600) * pop), None)
            for sku, pop in zip(skus, popularity, strict=True)
        ]
        yield DemoSnapshot(code, now - timedelta(minutes=rng.randint(1, 30)), records)


@dataclass(frozen=True)
class DemoSnapshot:
    location_id: str
    as_of: datetime
    records: Sequence[tuple[str, int, int | None]]


def seed_if_empty(
    locations: LocationRepository,
    writer: FeedWriter,
    *,
    now: datetime,
    channels: ChannelRepository | None = None,
) -> bool:
    """Load the demo data set unless the database already has locations. True when it loaded.

    The stock goes in as one snapshot per location, through the same path as any feed;
    the groups and channels (with ``channels``) straight after the locations.
    """
    if locations.count() > 0:
        log.info("demo mode: the database already has locations, so no demo data was loaded")
        return False
    locations.upsert_many(demo_locations(now), now=now)
    if channels is not None:
        channels.upsert_groups(demo_groups(), now=now)
        channels.upsert_channels(demo_channels(), now=now)
    loaded = 0
    for snapshot in demo_stock(now):
        staging = writer.begin_snapshot(
            snapshot.location_id, to_micros(snapshot.as_of), now_us=to_micros(now)
        )
        staging.add(snapshot.records)
        loaded += staging.commit().applied
    log.info(
        "demo mode: loaded %d stores, %d warehouses, %d stock records, %d groups and %d channels",
        len(STORES),
        len(WAREHOUSES),
        loaded,
        len(demo_groups()) if channels is not None else 0,
        len(demo_channels()) if channels is not None else 0,
    )
    return True
