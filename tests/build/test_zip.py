"""The code package's zip is deterministic and FC-safe (deployer/build/zipfile_det.py)."""

from __future__ import annotations

import os
import stat
import zipfile

import pytest

from deployer.build import zipfile_det


def tree(root):
    (root / "b").mkdir(parents=True)
    (root / "b" / "run").write_text("#!/bin/sh\n")
    os.chmod(root / "b" / "run", 0o700)
    (root / "a.txt").write_text("a")
    (root / "node_modules" / ".bin").mkdir(parents=True)
    os.symlink("../../a.txt", root / "node_modules" / ".bin" / "a")
    os.symlink("a.txt", root / "linked.txt")
    (root / "__pycache__").mkdir()
    (root / "__pycache__" / "x.pyc").write_bytes(b"\0")
    return root


def test_the_same_tree_gives_the_same_bytes_sorted_with_fixed_times_modes_and_no_links(tmp_path):
    one, two = tmp_path / "one.zip", tmp_path / "two.zip"
    zipfile_det.write_zip(tree(tmp_path / "t1"), one)
    os.utime(tmp_path / "t1" / "a.txt", (0, 0))  # a different mtime changes nothing
    zipfile_det.write_zip(tmp_path / "t1", two)
    assert one.read_bytes() == two.read_bytes()
    with zipfile.ZipFile(one) as zf:
        infos = zf.infolist()
    assert [i.filename for i in infos] == ["a.txt", "b/run", "linked.txt"]  # no .bin, no __pycache__
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    modes = {i.filename: i.external_attr >> 16 for i in infos}
    assert modes == {
        "a.txt": stat.S_IFREG | 0o644,
        "b/run": stat.S_IFREG | 0o755,
        "linked.txt": stat.S_IFREG | 0o644,
    }


def test_a_link_to_a_directory_is_refused(tmp_path):
    (tmp_path / "t" / "d").mkdir(parents=True)
    os.symlink("d", tmp_path / "t" / "e")
    with pytest.raises(zipfile_det.SymlinkRefused):
        zipfile_det.write_zip(tmp_path / "t", tmp_path / "x.zip")


def test_fc_checksum_is_crc64_xz_and_the_size_limit_counts_base64():
    assert zipfile_det.checksum(b"123456789") == str(0x995DC9BBDF1939FA)
    assert zipfile_det.base64_size(3) == 4 and zipfile_det.base64_size(4) == 8
