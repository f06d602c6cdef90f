"""The one cut: shard = blake2b(campaign id, token) mod N — stable, documented, and a partition."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pushctl.errors import InputError
from pushctl.scale import Shard, shard_key, shard_of


def test_the_documented_formula() -> None:
    # README / pushctl.scale.shards: BLAKE2b-64 over "campaign\0token", big-endian, mod N.
    digest = hashlib.blake2b(b"spring-sale\0abc123", digest_size=8).digest()
    assert shard_key("spring-sale", "abc123") == int.from_bytes(digest, "big")
    assert shard_of("spring-sale", "abc123", 4) == int.from_bytes(digest, "big") % 4
    # Pinned: a change of the cut would silently re-deal every sharded campaign being resumed.
    assert shard_key("spring-sale", "abc123") == 0x3DBC99C783BB28CF


def test_a_device_changes_shard_with_the_campaign_not_with_the_order() -> None:
    tokens = [f"t{i:04d}" for i in range(2000)]
    first = {t: shard_of("a", t, 4) for t in tokens}
    assert {t: shard_of("a", t, 4) for t in reversed(tokens)} == first
    other = {t: shard_of("b", t, 4) for t in tokens}
    assert sum(first[t] != other[t] for t in tokens) > 1000  # another campaign, another deal
    sizes = [list(first.values()).count(i) for i in range(4)]
    assert all(400 < n < 600 for n in sizes), sizes  # about even


@given(st.lists(st.text(min_size=1, max_size=40), max_size=50), st.integers(1, 7), st.integers(1, 5))
def test_split_parts_partition_their_shard(tokens: list[str], count: int, parts: int) -> None:
    for index in range(count):
        shard = Shard(index, count)
        pieces = shard.split(parts)
        for token in tokens:
            inside = [p for p in pieces if p.contains("camp", token)]
            assert len(inside) == (1 if shard.contains("camp", token) else 0)
            assert all(p.member("camp")(token) == p.contains("camp", token) for p in pieces)


def test_parse() -> None:
    assert Shard.parse("2/4") == Shard(2, 4)
    assert str(Shard.parse(" 0 / 1 ")) == "0/1" and Shard.parse("0/1").whole
    assert Shard.parse("auto/8", {"JOB_COMPLETION_INDEX": "5"}) == Shard(5, 8)
    assert Shard.parse("auto/4", {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_MIN": "1"}) == Shard(2, 4)
    for bad in ("4/4", "x/4", "1/0", "1-4", "-1/4"):
        with pytest.raises(InputError) as err:
            Shard.parse(bad)
        assert err.value.field == "--shard"
    with pytest.raises(InputError, match="JOB_COMPLETION_INDEX"):
        Shard.parse("auto/4", {})


def test_usable_cores_honour_a_cgroup_cpu_limit(tmp_path: Path) -> None:
    import os

    from pushctl.scale import usable_cores

    affinity = len(os.sched_getaffinity(0))
    assert usable_cores(tmp_path) == affinity  # no cpu.max: the affinity
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert usable_cores(tmp_path) == affinity
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a core: one worker
    assert usable_cores(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{(affinity + 4) * 100000} 100000\n")
    assert usable_cores(tmp_path) == affinity
