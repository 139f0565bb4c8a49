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
import lzma
import os
from types import ModuleType

from lossjit.errors import LossjitError

__all__ = ["COMPRESSIONS", "compress", "compression_of", "decompress", "format_of",
           "optional", "split_name"]

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

#: Which extra brings each optional package.
EXTRAS = {"pyarrow": "parquet", "zstandard": "zstd", "matplotlib": "plot"}


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


def _unzstd(data: bytes) -> bytes:
    """Zstandard frames, one after another; a truncated frame is an error (EOFError), and
    frames written without their size in the header decompress too."""
    zstandard = _zstd("reading")
    parts = []
    while data:
        frame = zstandard.ZstdDecompressor().decompressobj()
        parts.append(frame.decompress(data))
        if not frame.eof:
            raise EOFError("compressed data ended before the end of the zstd frame")
        data = frame.unused_data
    return b"".join(parts)


def decompress(data: bytes, ext: str) -> bytes:
    """The bytes inside ``data``, compressed as ``ext`` says (one of ``COMPRESSIONS``).

    Raises OSError, EOFError, lzma.LZMAError, zstandard.ZstdError or ValueError for damaged
    data; the reader names the file.
    """
    if ext == ".gz":
        return gzip.decompress(data)
    if ext == ".bz2":
        return bz2.decompress(data)
    if ext == ".xz":
        return lzma.decompress(data)
    if ext == ".zst":
        return _unzstd(data)
    raise ValueError(f"unknown compression {ext!r}")


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
