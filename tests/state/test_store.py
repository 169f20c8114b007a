from __future__ import annotations

import threading
from pathlib import Path

from recsys.state import StateStore


def test_takedowns_and_erasures_survive_reopen(tmp_path: Path) -> None:
    path = tmp_path / "state/recsys.sqlite"
    s = StateStore(path)
    assert s.generation() == 0
    assert s.add_takedowns(track_ids=["t1", "t1", "t2"], artist_ids=["a1"], actor="ops") == 3
    assert s.add_takedowns(track_ids=["t1"]) == 0  # repeats are harmless and change nothing
    assert s.erase_user("u9") is True and s.erase_user("u9") is False
    g = s.generation()
    assert g == 2
    s.close()
    again = StateStore(path)
    snap = again.snapshot()
    assert snap.generation == g
    assert snap.takedowns.track_ids == {"t1", "t2"} and snap.takedowns.artist_ids == {"a1"}
    assert not snap.takedowns.label_ids
    assert snap.erased_users == {"u9"}


def test_two_handles_see_each_others_writes(tmp_path: Path) -> None:
    a, b = StateStore(tmp_path / "s.db"), StateStore(tmp_path / "s.db")
    a.add_takedowns(label_ids=["l1"])
    assert b.takedowns().label_ids == {"l1"} and b.generation() == 1


def test_concurrent_writers(tmp_path: Path) -> None:
    s = StateStore(tmp_path / "s.db")

    def work(i: int) -> None:
        for j in range(20):
            s.add_takedowns(track_ids=[f"t{i}-{j}"])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(s.takedowns().track_ids) == 80 and s.generation() == 80
