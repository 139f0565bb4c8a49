"""What the readers and writers share: file formats, compression, optional packages.

A path names its format by its extension, after an optional compression extension:
``preds.csv.gz`` is CSV compressed with gzip, ``run.npz`` an ``.npz`` archive. Bytes name
their format by their first bytes, which is how standard input is read.

>>> split_name("results.csv.gz")
('.csv', '.gz')
>>> split_name("logits.NPY"), split_name("preds")
(('.npy', ''), ('', ''))
>>> compression_of(b"\\x1f\\x8b\\x08\\x00")
'.gz'
>>> format_of(b"\\x93NUMPY\\x01\\x00")
'.npy'
>>> decompress(compress(b"1,2\\n", ".xz"), ".xz")
b'1,2\\n'
"""

from __future__ import annotations

import bz2
import gzip
import importlib
import io
import lzma
import os
from types import ModuleType
from typing import BinaryIO

from lossjit.errors import LossjitError

__all__ = ["COMPRESSIONS", "ZARR", "compress", "compression_of", "decompress", "format_of",
           "open_decompressed", "optional", "split_name", "zarr_parts"]

#: Compression by extension: its magic bytes and the module that reads and writes it.
COMPRESSIONS: dict[str, bytes] = {
    ".gz": b"\x1f\x8b",
    ".bz2": b"BZh",
    ".xz": b"\xfd7zXZ\x00",
    ".zst": b"\x28\xb5\x2f\xfd",
}

#: Formats by their first bytes (text has none: it is what is left).
MAGICS: tuple[tuple[bytes, str], ...] = (
    (b"\x93NUMPY", ".npy"),
    (b"PK\x03\x04", ".npz"),
    (b"PK\x05\x06", ".npz"),  # an empty zip
    (b"PAR1", ".parquet"),
    (b"ARROW1", ".arrow"),  # Arrow IPC file, which Feather version 2 is
    (b"\xff\xff\xff\xff", ".arrows"),  # Arrow IPC stream (a continuation marker first)
)

#: Extensions of the Arrow formats, read and written by pyarrow (the ``parquet`` extra).
ARROW_FORMATS = (".parquet", ".arrow", ".feather", ".ipc", ".arrows")

#: The extension of a Zarr store (a directory of chunks; zarr comes with the ``dask`` extra).
ZARR = ".zarr"

#: Which extra brings each optional package.
EXTRAS = {"pyarrow": "parquet", "zstandard": "zstd", "matplotlib": "plot", "dask": "dask",
          "distributed": "dask", "zarr": "dask"}


def optional(module: str, needed_for: str) -> ModuleType:
    """Import an optional package, or say which extra of lossjit installs it.

    >>> optional("no_such_package_here", "reading .xyz")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lossjit.errors.LossjitError: reading .xyz needs the optional package no_such_package_here...
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        extra = EXTRAS.get(top)
        how = (f"pip install 'lossjit[{extra}]'" if extra else f"pip install {top}")
        raise LossjitError(f"{needed_for} needs the optional package {top}, which is not "
                           f"installed; install it with {how}") from None


def zarr_parts(path: str) -> tuple[str, str | None] | None:
    """``(store, name)`` of a path that names a Zarr array: ``x.zarr`` is an array (name
    None), ``run.zarr:name`` the array ``name`` in a group; None for any other path.

    >>> zarr_parts("out/g.zarr"), zarr_parts("run.zarr:grad"), zarr_parts("g.npy")
    (('out/g.zarr', None), ('run.zarr', 'grad'), None)
    """
    store, colon, name = path.rpartition(":")
    if colon and store.rstrip("/").lower().endswith(ZARR):
        return store.rstrip("/") or store, name
    if path.rstrip("/").lower().endswith(ZARR):
        return path.rstrip("/") or path, None
    return None


def split_name(path: str) -> tuple[str, str]:
    """``(format extension, compression extension)`` of a path, both lower-case, '' if none."""
    stem, ext = os.path.splitext(os.path.basename(os.fspath(path)))
    ext = ext.lower()
    if ext in COMPRESSIONS:
        return os.path.splitext(stem)[1].lower(), ext
    return ext, ""


def compression_of(head: bytes) -> str:
    """The compression extension whose magic bytes ``head`` starts with, or ''."""
    for ext, magic in COMPRESSIONS.items():
        if head.startswith(magic):
            return ext
    return ""


def format_of(head: bytes) -> str:
    """The format extension whose magic bytes ``head`` starts with, or '' (text, or unknown)."""
    for magic, ext in MAGICS:
        if head.startswith(magic):
            return ext
    return ""


def _zstd(action: str) -> ModuleType:
    return optional("zstandard", f"{action} .zst (Zstandard) data")


#: The first four bytes of a zstd frame, and of a skippable frame (its low four bits vary).
_ZSTD_FRAME, _ZSTD_SKIPPABLE = 0xFD2FB528, 0x184D2A50


def _check_zstd_frames(stream: BinaryIO) -> None:
    """Walk the zstd frames of a seekable ``stream`` from where it is, without decompressing,
    and come back: EOFError when the last one is cut short, ValueError for what is no frame.

    zstandard's streaming reader ends quietly at a truncated frame; the block sizes tell it.
    """
    start = stream.tell()
    end = stream.seek(0, os.SEEK_END)
    pos = start

    def take(size: int) -> int:
        nonlocal pos
        stream.seek(pos)
        data = stream.read(size)
        if len(data) < size:
            raise EOFError("compressed data ended before the end of a zstd frame")
        pos += size
        return int.from_bytes(data, "little")

    def skip(size: int) -> None:
        nonlocal pos
        pos += size
        if pos > end:
            raise EOFError("compressed data ended before the end of a zstd frame")

    while pos < end:
        magic = take(4)
        if magic & 0xFFFFFFF0 == _ZSTD_SKIPPABLE:
            skip(take(4))
            continue
        if magic != _ZSTD_FRAME:
            raise ValueError(f"no zstd frame at byte {pos - 4}")
        descriptor = take(1)
        single_segment = descriptor >> 5 & 1
        content_size = (single_segment, 2, 4, 8)[descriptor >> 6]
        skip(1 - single_segment + (0, 1, 2, 4)[descriptor & 3] + content_size)
        last = 0
        while not last:
            block = take(3)
            last, kind, size = block & 1, block >> 1 & 3, block >> 3
            skip(1 if kind == 1 else size)  # an RLE block holds one byte, repeated
        skip(4 * (descriptor >> 2 & 1))  # the checksum
    stream.seek(start)


def open_decompressed(stream: BinaryIO, ext: str) -> BinaryIO:
    """A file object that reads what ``stream`` decompresses to, as ``ext`` (one of
    ``COMPRESSIONS``) says: each ``read(n)`` decompresses no more than it returns, so a small
    file that expands enormously costs only what is read of it. Concatenated streams
    (members, frames) are read one after another.

    ``stream`` must be seekable for ``.zst``. Reads raise OSError, EOFError (truncated data),
    lzma.LZMAError, zlib.error, zstandard.ZstdError or ValueError for damaged data; the reader
    names the file.

    >>> open_decompressed(io.BytesIO(compress(b"1,2\\n" * 3, ".gz")), ".gz").read(8)
    b'1,2\\n1,2\\n'
    """
    if ext == ".gz":
        return gzip.GzipFile(fileobj=stream, mode="rb")
    if ext == ".bz2":
        return bz2.BZ2File(stream)
    if ext == ".xz":
        return lzma.LZMAFile(stream)
    if ext == ".zst":
        zstandard = _zstd("reading")
        _check_zstd_frames(stream)
        return zstandard.ZstdDecompressor().stream_reader(stream, read_across_frames=True,
                                                           closefd=False)
    raise ValueError(f"unknown compression {ext!r}")


def decompress(data: bytes, ext: str) -> bytes:
    """The bytes inside ``data``, compressed as ``ext`` says (one of ``COMPRESSIONS``), read
    whole; errors as :func:`open_decompressed` raises them."""
    with open_decompressed(io.BytesIO(data), ext) as stream:
        return stream.read()


def compress(data: bytes, ext: str) -> bytes:
    """``data`` compressed as ``ext`` says; '' leaves it as it is."""
    if ext == "":
        return data
    if ext == ".gz":
        return gzip.compress(data, compresslevel=6, mtime=0)
    if ext == ".bz2":
        return bz2.compress(data)
    if ext == ".xz":
        return lzma.compress(data)
    if ext == ".zst":
        return _zstd("writing").ZstdCompressor(write_checksum=True).compress(data)
    raise ValueError(f"unknown compression {ext!r}")
