"""The byte-level writer: safetensors headers read without a tensor library, shards written by the kernel."""

import json
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from videollama2_hf import safetensors_copy
from videollama2_hf.safetensors_copy import (
    DTYPE_SIZES,
    encode_header,
    parse_size,
    plan_shards,
    read_safetensors_header,
    source_tensors,
    write_index,
)


def test_copy_fallbacks_give_identical_bytes(monkeypatch, tmp_path):
    """copy_file_range, sendfile and pread/write produce the same shard; renaming never touches the bytes."""
    tensors = {
        "b.weight": torch.randn(7, 5).to(torch.bfloat16),
        "a.bias": torch.randn(3, dtype=torch.float32),
        "c.idx": torch.arange(6, dtype=torch.int64).reshape(2, 3),
        "d.mask": torch.tensor([True, False, True]),
    }
    source = tmp_path / "source.safetensors"
    save_file(tensors, source)
    unknown = []
    plan = source_tensors(source, lambda key: None if key == "d.mask" else f"x.{key}", unknown)
    assert unknown == [] and {t.name for t in plan} == {"x.a.bias", "x.b.weight", "x.c.idx"}
    outputs = []
    for methods in (
        [safetensors_copy._copy_file_range, safetensors_copy._sendfile, safetensors_copy._pread_write],
        [safetensors_copy._sendfile, safetensors_copy._pread_write],
        [safetensors_copy._pread_write],
    ):
        monkeypatch.setattr(safetensors_copy, "_COPY_METHODS", list(methods))
        (shard,) = plan_shards([plan], None)
        path = tmp_path / f"out-{len(methods)}.safetensors"
        safetensors_copy._write_shard(shard, path, lambda n: None, lambda: None)
        outputs.append(path.read_bytes())
        loaded = load_file(path)
        assert set(loaded) == {"x.a.bias", "x.b.weight", "x.c.idx"}
        for key in ("a.bias", "b.weight", "c.idx"):
            assert loaded[f"x.{key}"].dtype == tensors[key].dtype and torch.equal(loaded[f"x.{key}"], tensors[key])
        header = read_safetensors_header(path)
        assert header.data_start % 8 == 0
        for dtype, _, start, _ in header.tensors.values():  # every tensor aligned to its element size
            assert (start - header.data_start) % DTYPE_SIZES[dtype] == 0
    assert outputs[0] == outputs[1] == outputs[2]


def test_header_of_a_real_file_matches_the_safetensors_library(tmp_path):
    tensors = {"w": torch.randn(4, 3), "i": torch.arange(5), "h": torch.zeros(2, 2, dtype=torch.float16)}
    path = tmp_path / "t.safetensors"
    save_file(tensors, path, metadata={"format": "pt"})
    header = read_safetensors_header(path)
    assert header.metadata == {"format": "pt"}
    assert {name: (dtype, shape) for name, (dtype, shape, _, _) in header.tensors.items()} == {
        "w": ("F32", [4, 3]),
        "i": ("I64", [5]),
        "h": ("F16", [2, 2]),
    }
    raw = path.read_bytes()
    for name, (_, _, start, end) in header.tensors.items():
        assert raw[start:end] == tensors[name].contiguous().view(torch.uint8).numpy().tobytes()


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda raw: raw[:5], "shorter than its 8-byte prefix"),
        (lambda raw: struct.pack("<Q", 10**9) + raw[8:], "the header claims"),
        (lambda raw: raw[:9] + b"\xff" + raw[10:], "Corrupt safetensors header"),
        (lambda raw: raw[:-3], "Truncated safetensors file"),
    ],
)
def test_damaged_files_name_the_file_and_the_fix(tmp_path, damage, message):
    path = tmp_path / "t.safetensors"
    save_file({"w": torch.randn(8, 8)}, path)
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(ValueError, match=message) as error:
        read_safetensors_header(path)
    assert str(path) in str(error.value) and "download it again" in str(error.value)


def test_page_aligned_header_keeps_data_offsets_valid(tmp_path):
    """The header is padded so that the data starts at a chosen offset within a 4 KiB page; loaders still read it."""
    source = tmp_path / "source.safetensors"
    save_file({"a": torch.randn(100), "b": torch.randn(3, 7)}, source)
    (shard,) = plan_shards([source_tensors(source, lambda key: f"renamed.{key}", [])], None)
    for page_offset in (0, 8, 1000, 4088):
        encoded = encode_header(shard.tensors, page_offset)
        assert len(encoded) % 8 == 0 and len(encoded) % 4096 == page_offset % 4096
    path = tmp_path / "shard.safetensors"
    safetensors_copy._write_shard(shard, path, lambda n: None, lambda: None)
    loaded = load_file(path)
    original = load_file(source)
    assert set(loaded) == {"renamed.a", "renamed.b"}
    assert all(torch.equal(loaded[f"renamed.{key}"], original[key]) for key in original)


def test_sizes_shards_and_index(tmp_path):
    assert parse_size("5GB") == 5_000_000_000 and parse_size("2GiB") == 2 * 2**30 and parse_size(1000) == 1000
    assert parse_size("500 mb") == 500_000_000
    with pytest.raises(ValueError, match="Cannot parse size"):
        parse_size("five gigabytes")
    source = tmp_path / "s.safetensors"
    save_file({f"t{i}": torch.zeros(250) for i in range(4)}, source)  # 1000 bytes each
    shards = plan_shards([source_tensors(source, lambda key: key, [])], 2000)
    assert [len(shard.tensors) for shard in shards] == [2, 2]
    assert [shard.filename for shard in shards] == [
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ]
    write_index(shards, tmp_path)
    index = json.loads((tmp_path / "model.safetensors.index.json").read_text())
    assert index["metadata"] == {"total_parameters": 1000, "total_size": 4000}
    assert sorted(index["weight_map"]) == ["t0", "t1", "t2", "t3"]
