"""Tiny pure-Python safetensors reader/writer for ember's golden files.

Format: 8-byte little-endian header length N, then N bytes of JSON header
{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}},
then the raw little-endian tensor bytes (offsets are relative to the byte after
the header). Writing is deterministic: keys sorted, compact JSON (no spaces),
header padded with spaces to a multiple of 8 bytes, tensor data laid out in key
order. So regenerating the same tensors gives a byte-identical file. The writer
stores the CRC-32 of the data section in the metadata as "data_crc32" (8 hex
digits), as ember's writer does; the reader checks it when present.

Works on plain (dtype, shape, bytes) triples; torch helpers are at the bottom
and import torch lazily, so the core reader needs only the standard library.
"""
import json
import struct
import sys
import zlib

# safetensors dtype name -> (struct format char, item size in bytes)
DTYPES = {
    "F64": ("d", 8),
    "F32": ("f", 4),
    "I64": ("q", 8),
    "I32": ("i", 4),
    "U8": ("B", 1),
}


CHECKSUM_KEY = "data_crc32"


def _numel(shape):
    n = 1
    for s in shape:
        n *= int(s)
    return n


def write_raw(path, tensors, metadata=None):
    """tensors: {name: (dtype, shape, little-endian bytes)}; metadata: {str: str}."""
    header = {}
    chunks = []
    offset = 0
    for name in sorted(tensors):
        if name == "__metadata__":
            raise ValueError("tensor name '__metadata__' is reserved")
        dtype, shape, data = tensors[name]
        if dtype not in DTYPES:
            raise ValueError(f"{name}: unsupported dtype {dtype}")
        expected = _numel(shape) * DTYPES[dtype][1]
        if len(data) != expected:
            raise ValueError(f"{name}: {len(data)} bytes, expected {expected} for {dtype} {list(shape)}")
        header[name] = {"dtype": dtype, "shape": [int(s) for s in shape],
                        "data_offsets": [offset, offset + len(data)]}
        chunks.append(data)
        offset += len(data)
    metadata = dict(metadata or {})
    for k, v in metadata.items():
        if not isinstance(k, str) or not isinstance(v, str):
            raise ValueError(f"metadata must map str to str, got {k!r}: {v!r}")
    crc = 0
    for c in chunks:
        crc = zlib.crc32(c, crc)
    metadata[CHECKSUM_KEY] = f"{crc:08x}"
    header["__metadata__"] = metadata
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    raw = text.encode("utf-8")
    raw += b" " * ((8 - len(raw) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)))
        f.write(raw)
        for c in chunks:
            f.write(c)


def read_raw(path):
    """Returns ({name: (dtype, shape, bytes)}, metadata dict)."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError(f"{path}: header length {n} exceeds file size {len(blob)}")
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    metadata = header.pop("__metadata__", {}) or {}
    base = 8 + n
    out = {}
    for name, info in header.items():
        dtype, shape = info["dtype"], info["shape"]
        begin, end = info["data_offsets"]
        if dtype not in DTYPES:
            raise ValueError(f"{name}: unsupported dtype {dtype}")
        if end - begin != _numel(shape) * DTYPES[dtype][1] or base + end > len(blob):
            raise ValueError(f"{name}: bad data_offsets {begin}..{end}")
        out[name] = (dtype, shape, blob[base + begin:base + end])
    if CHECKSUM_KEY in metadata and int(metadata[CHECKSUM_KEY], 16) != zlib.crc32(blob[base:]):
        raise ValueError(f"{path}: the data does not match its {CHECKSUM_KEY}: the file is damaged")
    return out, metadata


def unpack_values(dtype, shape, data):
    """Flat Python list of the values of one raw tensor (row-major)."""
    fmt, size = DTYPES[dtype]
    return list(struct.unpack("<%d%s" % (len(data) // size, fmt), data))


# ---- torch helpers -------------------------------------------------------
# numpy().tobytes() is host order; safetensors is little-endian.
assert sys.byteorder == "little", "safetensors_io: big-endian hosts are not supported"


def _torch_maps():
    import torch
    to_st = {torch.float64: "F64", torch.float32: "F32", torch.int64: "I64",
             torch.int32: "I32", torch.uint8: "U8"}
    return torch, to_st, {v: k for k, v in to_st.items()}


def save_file(tensors, path, metadata=None):
    """tensors: {name: torch.Tensor} (CPU). Same signature order as safetensors.torch."""
    torch, to_st, _ = _torch_maps()
    raw = {}
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype not in to_st:
            raise ValueError(f"{name}: unsupported torch dtype {t.dtype}")
        raw[name] = (to_st[t.dtype], list(t.shape), t.numpy().tobytes())
    write_raw(path, raw, metadata)


def load_file(path):
    """Returns ({name: torch.Tensor}, metadata)."""
    torch, _, from_st = _torch_maps()
    raw, metadata = read_raw(path)
    out = {}
    for name, (dtype, shape, data) in raw.items():
        t = torch.frombuffer(bytearray(data), dtype=from_st[dtype]) if data else \
            torch.empty(0, dtype=from_st[dtype])
        out[name] = t.reshape(shape).clone()
    return out, metadata
