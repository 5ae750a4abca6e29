"""The registry's copy of every region (the chooser's list), over a real SQLite store.

With 80 regions, reading and opening every region's document cost about 1.8 ms of each chooser
page; the list is now kept for :data:`~gateway.registry.CACHE_SECONDS` like lookups by key: a
write through this registry is seen at once, one made elsewhere within that time.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateway.registry import CACHE_SECONDS, Region, Registry
from gateway.sealing import RegionSecretSealer
from gateway.store import SqlStore

NOW = datetime.datetime(2026, 12, 1, tzinfo=datetime.UTC)
SEALER = RegionSecretSealer.from_keys(["k" * 32], fallback="f" * 32)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    engine = SqlStore.from_url(f"sqlite:///{tmp_path / 'store.db'}")
    engine.migrate()
    yield engine
    engine.close()


def region(code: str, **extra: Any) -> Region:
    return Region.model_validate(
        {
            "code": code,
            "names": {"zh": "区", "en": "Region"},
            "kind": "province",
            "issuer": f"https://idp.{code}.example.cn/realms/{code}",
            "client_id": "tongxing",
            "client_secret": "upstream-secret",
            **extra,
        }
    )


def test_the_region_list_is_read_once_then_from_the_copy(store: SqlStore) -> None:
    clock = Clock()
    registry = Registry(store, sealer=SEALER, clock=clock)
    for n in range(80):
        registry.put_region(region(f"r{n:02d}"), NOW)
    reads: list[int] = []
    real = store.list_documents

    def counted(*args: Any, **kwargs: Any) -> Any:
        reads.append(1)
        return real(*args, **kwargs)

    store.list_documents = counted  # type: ignore[method-assign]
    first = registry.regions()
    assert len(first) == 80
    assert registry.regions() == first
    assert len(reads) == 1
    clock.now += CACHE_SECONDS + 0.1
    assert registry.regions() == first
    assert len(reads) == 2


def test_a_region_written_through_the_registry_is_listed_at_once(store: SqlStore) -> None:
    clock = Clock()
    registry = Registry(store, sealer=SEALER, clock=clock)
    registry.put_region(region("zj"), NOW)
    assert [r.code for r in registry.regions()] == ["zj"]
    registry.put_region(region("sh"), NOW)
    assert [r.code for r in registry.regions()] == ["sh", "zj"]
    registry.put_region(region("sh", enabled=False), NOW)
    assert [r.enabled for r in registry.regions()] == [False, True]
    registry.delete_region("zj")
    assert [r.code for r in registry.regions()] == ["sh"]


def test_a_region_written_elsewhere_is_listed_within_the_cache_time(store: SqlStore) -> None:
    clock = Clock()
    here = Registry(store, sealer=SEALER, clock=clock)
    elsewhere = Registry(store, sealer=SEALER)  # another replica on the same store
    elsewhere.put_region(region("zj"), NOW)
    assert [r.code for r in here.regions()] == ["zj"]
    elsewhere.put_region(region("zj", enabled=False), NOW)
    assert here.regions()[0].enabled is True
    clock.now += CACHE_SECONDS + 0.1
    assert here.regions()[0].enabled is False


def test_a_list_read_during_a_write_is_not_kept(store: SqlStore) -> None:
    registry = Registry(store, sealer=SEALER, clock=Clock())
    registry.put_region(region("zj"), NOW)
    real = store.list_documents

    def racing(*args: Any, **kwargs: Any) -> Any:
        found = real(*args, **kwargs)
        registry.put_region(region("sh"), NOW)  # finishes while the list is being opened
        return found

    store.list_documents = racing  # type: ignore[method-assign]
    assert [r.code for r in registry.regions()] == ["zj"]
    store.list_documents = real  # type: ignore[method-assign]
    assert [r.code for r in registry.regions()] == ["sh", "zj"]
