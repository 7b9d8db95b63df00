"""Read a TensorFlow "tensor bundle" V2 checkpoint (`.index` + `.data-00000-of-00001`) without TensorFlow.

The MSD-MusiCNN weights ship only as such a checkpoint inside the `musicnn` wheel, and TensorFlow is
a heavy dependency we never want to need just to read 9 MB of floats. The `.index` file is a LevelDB
table whose values are serialized `BundleEntryProto`s; see the golden CHECKPOINT_FORMAT.md.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np

_MAGIC = 0xDB4775248B80FB57
_FOOTER_LEN = 48
_TRAILER_LEN = 5  # 1 byte compression type + 4 bytes masked crc32c
_DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 9: "<i8"}  # DT_FLOAT, DT_DOUBLE, DT_INT32, DT_INT64


def _crc32c_table() -> list[int]:
    """Byte table for CRC-32C (Castagnoli, reflected 0x82F63B78); zlib only has plain CRC-32."""
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE = _crc32c_table()


def crc32c(data: bytes) -> int:
    """Plain table-driven CRC-32C: instant for index blocks, ~15 MB/s on tensor data."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """LevelDB/TF store CRCs rotated and offset so a CRC of CRC-bearing data stays well spread."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Decode a base-128 varint at `pos`; return (value, next position)."""
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("truncated or overlong varint in checkpoint index")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def _read_block(index: bytes, offset: int, size: int) -> bytes:
    """Return a block's contents after checking bounds, compression byte and CRC."""
    end = offset + size
    if offset < 0 or end + _TRAILER_LEN > len(index):
        raise ValueError(f"checkpoint index block [{offset}, {end}) lies outside the file")
    block = index[offset:end]
    compression = index[end]
    if compression != 0:
        raise ValueError(
            f"checkpoint index block at {offset} is compressed (type {compression}); unsupported"
        )
    (stored,) = struct.unpack_from("<I", index, end + 1)
    if masked_crc32c(index[offset : end + 1]) != stored:
        raise ValueError(f"checkpoint index block at {offset} fails its crc32c check (corrupt file?)")
    return block


def _block_entries(block: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Yield (key, value) of a LevelDB block, expanding shared key prefixes."""
    if len(block) < 4:
        raise ValueError("checkpoint index block too short")
    (n_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    limit = len(block) - 4 - 4 * n_restarts
    if limit < 0:
        raise ValueError("checkpoint index block has an impossible restart count")
    pos, key = 0, b""
    while pos < limit:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_len, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + value_len > limit:
            raise ValueError("malformed entry in checkpoint index block")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        yield key, block[pos : pos + value_len]
        pos += value_len


def _proto_fields(buf: bytes) -> Iterator[tuple[int, int | bytes]]:
    """Yield (field number, value) of a protobuf message; only the wire types a bundle uses."""
    pos = 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        field, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield field, value
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ValueError("truncated length-delimited protobuf field")
            yield field, buf[pos : pos + length]
            pos += length
        elif wire == 5:
            if pos + 4 > len(buf):
                raise ValueError("truncated fixed32 protobuf field")
            yield field, struct.unpack_from("<I", buf, pos)[0]
            pos += 4
        elif wire == 1:
            if pos + 8 > len(buf):
                raise ValueError("truncated fixed64 protobuf field")
            yield field, struct.unpack_from("<Q", buf, pos)[0]
            pos += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _parse_shape(buf: bytes) -> tuple[int, ...]:
    """Decode a TensorShapeProto: repeated field 2 `dim`, each with field 1 `size`."""
    shape = []
    for field, dim in _proto_fields(buf):
        if field == 2 and isinstance(dim, bytes):
            sizes = [v for f, v in _proto_fields(dim) if f == 1 and isinstance(v, int)]
            shape.append(sizes[0] if sizes else 0)
    return tuple(shape)


def _parse_entry(name: str, value: bytes) -> tuple[int, tuple[int, ...], int, int, int | None]:
    """Decode a BundleEntryProto into (dtype, shape, offset, size, masked crc32c or None)."""
    dtype = offset = size = 0
    shape: tuple[int, ...] = ()
    crc: int | None = None
    for field, val in _proto_fields(value):
        if isinstance(val, bytes):
            if field == 2:
                shape = _parse_shape(val)
            elif field == 7:
                raise ValueError(f"tensor {name!r} is partitioned into slices; unsupported")
        elif field == 1:
            dtype = val
        elif field == 3 and val:
            raise ValueError(f"tensor {name!r} lives in shard {val}; only single-shard bundles are supported")
        elif field == 4:
            offset = val
        elif field == 5:
            size = val
        elif field == 6:
            crc = val
    return dtype, shape, offset, size, crc


def _is_optimizer_slot(name: str) -> bool:
    """Adam moments and beta powers are training state, never model weights."""
    leaf = name.rsplit("/", 1)[-1]
    return leaf.startswith("Adam") or (leaf.startswith("beta") and leaf.endswith("_power"))


def read_checkpoint(prefix: str | Path, verify_data: bool = False) -> dict[str, np.ndarray]:
    """Return every non-optimizer tensor of the bundle at `prefix` as float32, keyed by variable name.

    `prefix` is the path without the `.index` suffix (for musicnn: the directory plus '/').
    Index blocks are always CRC-checked (cheap); tensor bytes only with `verify_data` (pure Python, slow).
    """
    prefix = str(prefix)
    index = Path(prefix + ".index").read_bytes()
    data = Path(prefix + ".data-00000-of-00001").read_bytes()
    if len(index) < _FOOTER_LEN:
        raise ValueError(f"{prefix}.index is too short to be a checkpoint index ({len(index)} bytes)")
    footer = index[-_FOOTER_LEN:]
    if struct.unpack_from("<Q", footer, 40)[0] != _MAGIC:
        raise ValueError(f"{prefix}.index has no LevelDB table magic; not a TF checkpoint index")
    _, pos = _varint(footer, 0)  # metaindex handle: offset
    _, pos = _varint(footer, pos)  # metaindex handle: size (unused: bundles have no meta blocks)
    index_offset, pos = _varint(footer, pos)
    index_size, _ = _varint(footer, pos)

    tensors: dict[str, np.ndarray] = {}
    for _, handle in _block_entries(_read_block(index, index_offset, index_size)):
        block_offset, hpos = _varint(handle, 0)
        block_size, _ = _varint(handle, hpos)
        for raw_key, value in _block_entries(_read_block(index, block_offset, block_size)):
            if not raw_key:
                continue  # BundleHeaderProto
            name = raw_key.decode("utf-8")
            if _is_optimizer_slot(name):
                continue
            dtype, shape, offset, size, crc = _parse_entry(name, value)
            if dtype not in _DTYPES:
                raise ValueError(f"tensor {name!r} has unsupported dtype enum {dtype}")
            raw = data[offset : offset + size]
            itemsize = np.dtype(_DTYPES[dtype]).itemsize
            if len(raw) != size or size != itemsize * int(np.prod(shape, dtype=np.int64)):
                raise ValueError(f"tensor {name!r}: {size} bytes at {offset} do not fit shape {shape}")
            if verify_data and crc is not None and masked_crc32c(raw) != crc:
                raise ValueError(f"tensor {name!r} fails its crc32c check (corrupt .data file?)")
            tensors[name] = np.frombuffer(raw, dtype=_DTYPES[dtype]).reshape(shape).astype(np.float32)
    if not tensors:
        raise ValueError(f"{prefix}.index lists no tensors")
    return tensors
