"""align.atomic: the one atomic-write helper. Concurrent writers of one file (the ranks of an
`accelerate launch` sharing the fingerprint memo) never collide, and a failed write leaves the old file."""
import json
import threading

import pytest

from align.atomic import write_atomic, write_json_atomic


def test_concurrent_writers_of_one_file_never_collide(tmp_path):
    target = tmp_path / "memo.json"
    errors = []

    def writer(k):
        try:
            for i in range(100):
                write_json_atomic(target, {"writer": k, "i": i}, indent=None)
        except Exception as e:  # the old fixed ".tmp" name raised FileNotFoundError here
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    last = json.loads(target.read_text())
    assert last["writer"] in range(4) and last["i"] == 99
    assert [p.name for p in tmp_path.iterdir()] == ["memo.json"]  # no temp file left behind


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "result.json"
    write_atomic(target, '{"ok": 1}\n')

    def half_then_fail(fh):
        fh.write(b'{"half": ')
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="mid-write"):
        write_atomic(target, half_then_fail)
    assert target.read_text() == '{"ok": 1}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["result.json"]
    write_atomic(tmp_path / "sub" / "b.bin", b"\x00\x01")  # creates the folder; bytes as given
    assert (tmp_path / "sub" / "b.bin").read_bytes() == b"\x00\x01"
