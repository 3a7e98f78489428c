"""Reading SUMO's XML files (networks, routes, additional files, configurations, polygons)
safely: regular files only, plain or gzipped, streamed, with bounds on what a hostile file can
cost.

Python's expat re-reads an unfinished token from its start on every chunk it is fed, so one
huge attribute costs time quadratic in its length. The reader feeds large chunks and refuses a
token longer than ``MAX_TOKEN_BYTES`` (no element of a SUMO file comes near it: a long route's
edge list or a coastline's shape is a few hundred kilobytes), more than ``XML_LIMIT_BYTES`` of
XML after decompression (a gzip bomb is not read out) and more than ``MAX_ELEMENTS`` elements.
"""

from __future__ import annotations

import gzip
import stat
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Collection, Generator
from pathlib import Path
from typing import IO, cast
from xml.parsers import expat

from cosim.bounded_read import virtual_file
from cosim.errors import InputError

XML_LIMIT_BYTES = 2 * 2**30  # of XML text, after decompression
MAX_TOKEN_BYTES = 4 * 2**20  # between two '>': one tag with its attributes
CHUNK_BYTES = 2**20  # fed to expat at once
# elements in one file: a city's day of routes is a few million; each costs about 2 us to scan
MAX_ELEMENTS = 20_000_000
XML_ERRORS = (OSError, EOFError, zlib.error, ET.ParseError)


def local_name(tag: object) -> str:
    """An element's name without its namespace (SUMO ignores a default namespace)."""
    return str(tag).rsplit("}", 1)[-1]


class _Capped:
    """A binary stream read in ``CHUNK_BYTES`` chunks that ends in an InputError after
    ``XML_LIMIT_BYTES`` or at a token longer than ``MAX_TOKEN_BYTES``."""

    def __init__(self, stream: IO[bytes], path: Path, field: str | None) -> None:
        self._stream, self._path, self._field = stream, path, field
        self._seen = 0
        self._since_close = 0  # bytes since the last '>'

    def close(self) -> None:
        self._stream.close()

    def read(self, size: int = -1) -> bytes:
        data = self._stream.read(CHUNK_BYTES)  # whatever the parser asks: fewer, larger feeds
        self._seen += len(data)
        if self._seen > XML_LIMIT_BYTES:
            raise InputError(self._path, self._field, f"more than {XML_LIMIT_BYTES:,} bytes of "
                             "XML (after decompression): too big to read")
        first = data.find(b">")
        gap = self._since_close + (first if first >= 0 else len(data))
        if gap > MAX_TOKEN_BYTES:  # chunks are smaller than the limit: only this gap can be
            raise InputError(self._path, self._field, f"more than {MAX_TOKEN_BYTES:,} bytes in "
                             "one tag: no element of a SUMO file is that long")
        last = data.rfind(b">")
        self._since_close = len(data) - 1 - last if last >= 0 else gap
        return data


def _open(path: Path, field: str | None) -> _Capped:
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode) or virtual_file(path):
            raise InputError(path, field, "not a regular file (SUMO reads its inputs from files)")
        with path.open("rb") as f:
            gzipped = f.read(2) == b"\x1f\x8b"  # SUMO reads .xml.gz as well
        # closed by the reader (_Capped.close), which reads it as a stream
        stream = cast(IO[bytes], gzip.open(path, "rb") if gzipped else path.open("rb"))  # noqa: SIM115
    except OSError as exc:
        raise InputError(path, field, f"cannot read it: {exc.strerror or exc}") from None
    return _Capped(stream, path, field)


def read_xml(path: Path, field: str | None) -> ET.ElementTree[ET.Element]:
    """A SUMO XML file as a tree (for small files: configurations, view settings, a copy to
    rewrite); InputError, naming ``field``, when it cannot be read."""
    try:
        capped = _open(path, field)
        try:
            return ET.parse(capped)
        finally:
            capped.close()
    except XML_ERRORS as exc:
        raise InputError(path, field, f"cannot read it as XML: {exc}") from None


def xml_elements(path: Path, field: str | None, wanted: Collection[str] | None = None
                 ) -> Generator[tuple[str, str, dict[str, str]], None, None]:
    """(tag, parent's tag, attributes) of each element (of the ``wanted`` tags only, when given),
    streamed through expat's own callbacks: no element is kept, so memory stays small however
    many vehicles a route file, or children one element, holds."""
    capped = _open(path, field)
    parser = expat.ParserCreate(namespace_separator="}")  # "uri}tag": local_name strips it
    stack: list[str] = []
    found: list[tuple[str, str, dict[str, str]]] = []

    count = 0

    def start(tag: str, attributes: dict[str, str]) -> None:
        nonlocal count
        count += 1
        if count > MAX_ELEMENTS:
            raise InputError(path, field, f"more than {MAX_ELEMENTS:,} elements: more than cosim "
                             "reads in one SUMO file")
        name = tag.rpartition("}")[2]
        if wanted is None or name in wanted:
            found.append((name, stack[-1] if stack else "", attributes))
        stack.append(name)

    def end(tag: str) -> None:
        stack.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    try:
        while data := capped.read():
            parser.Parse(data, False)
            yield from found
            found.clear()
        parser.Parse(b"", True)
        yield from found
    except (*XML_ERRORS, expat.ExpatError) as exc:
        raise InputError(path, field, f"cannot read it as XML: {exc}") from None
    finally:
        capped.close()
