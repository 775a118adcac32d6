"""What a distribution file says about itself: the ``Name`` and ``Version`` of its core metadata.

The upload form's ``name`` and ``version`` are only the client's claim; the file is what pip
installs. So the upload view reads the metadata inside the file and refuses a mismatch:

* a wheel's ``<name>-<version>.dist-info/METADATA`` (name and version taken from the file name,
  as PyPI does), which must sit next to ``WHEEL``;
* an sdist's ``<name>-<version>/PKG-INFO`` (the file name without ``.tar.gz`` / ``.zip``).

The archive is hostile until proven otherwise. Nothing is extracted to disk (so member paths
don't matter), and every read is bounded:

* zip: the member count is read from the end-of-central-directory record *before* ``zipfile``
  builds its index; only stored/deflated, unencrypted members; PyPI's compression-ratio limit;
  at most :data:`MAX_METADATA_BYTES` are decompressed from the metadata member, whatever its
  header claims;
* tar.gz: read as a stream through a counter that stops after :func:`max_unpacked_bytes`
  (a gzip bomb costs bounded CPU), at most :data:`MAX_MEMBERS` members, the metadata member
  must be a regular file of bounded size and appear once.

Errors are :class:`InvalidDistribution` with a client-safe reason in PyPI's words.
"""

from __future__ import annotations

import gzip
import io
import struct
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from email.parser import HeaderParser
from typing import IO

from django.conf import settings
from packaging.utils import canonicalize_name, canonicalize_version
from packaging.version import InvalidVersion, Version

#: Largest METADATA / PKG-INFO read (the long description lives in it).
MAX_METADATA_BYTES = 8 * 1024 * 1024
#: Most members an archive may have (each costs memory when the archive is indexed).
MAX_MEMBERS = 100_000
#: PyPI's zip-bomb rule: above this many unpacked bytes, the ratio must stay under the threshold.
COMPRESSION_RATIO_MIN_SIZE = 64 * 1024 * 1024
COMPRESSION_RATIO_THRESHOLD = 50


class InvalidDistribution(Exception):
    """The file is not a distribution this index accepts; ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class DistMetadata:
    name: str
    version: Version


def max_unpacked_bytes() -> int:
    """How much of an sdist tarball is decompressed at most (10x the upload limit)."""
    return 10 * getattr(settings, "INDEX_MAX_FILE_SIZE", 100 * 1024 * 1024)


def _invalid(detail: str) -> InvalidDistribution:
    return InvalidDistribution(f"Invalid distribution file. {detail}".strip())


def read_metadata(fileobj: IO[bytes], filename: str) -> DistMetadata:
    """Name and version from the core metadata inside ``fileobj`` (a seekable binary file)."""
    fileobj.seek(0)
    try:
        if filename.endswith(".whl"):
            name, version = filename[: -len(".whl")].split("-")[:2]
            dist_info = f"{name}-{version}.dist-info"
            raw = _read_from_zip(
                fileobj, f"{dist_info}/METADATA", f"{dist_info}/WHEEL",
                missing=f"Wheel {filename!r} does not contain the required METADATA file: "
                        f"{dist_info}/METADATA",
            )
        elif filename.endswith(".zip"):
            top = filename[: -len(".zip")]
            raw = _read_from_zip(fileobj, f"{top}/PKG-INFO",
                                 missing=f"Invalid distribution file. PKG-INFO not found at "
                                         f"{top}/PKG-INFO")
        elif filename.endswith(".tar.gz"):
            raw = _read_from_tar_gz(fileobj, filename[: -len(".tar.gz")])
        else:
            raise _invalid("")
    finally:
        fileobj.seek(0)
    return _parse(raw)


# --- zip (wheels and .zip sdists) -------------------------------------------------------------
_EOCD = struct.Struct("<4s4H2LH")  # end of central directory record
_ZIP64_LOCATOR = struct.Struct("<4sLQL")
_ZIP64_EOCD = struct.Struct("<4sQ2H2L4Q")


def _zip_member_count(fileobj: IO[bytes]) -> int:
    """The entry count the end-of-central-directory record declares (zip64 aware)."""
    fileobj.seek(0, io.SEEK_END)
    size = fileobj.tell()
    tail_start = max(0, size - (_EOCD.size + 0xFFFF))
    fileobj.seek(tail_start)
    tail = fileobj.read()
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < _EOCD.size:
        raise _invalid("File is not a zipfile")
    count = _EOCD.unpack_from(tail, at)[4]
    if count != 0xFFFF:
        return count
    locator_at = tail_start + at - _ZIP64_LOCATOR.size
    if locator_at < 0:
        raise _invalid("File is not a zipfile")
    fileobj.seek(locator_at)
    signature, _, zip64_offset, _ = _ZIP64_LOCATOR.unpack(fileobj.read(_ZIP64_LOCATOR.size))
    if signature != b"PK\x06\x07":
        return count
    fileobj.seek(zip64_offset)
    record = fileobj.read(_ZIP64_EOCD.size)
    if len(record) < _ZIP64_EOCD.size or record[:4] != b"PK\x06\x06":
        raise _invalid("File is not a zipfile")
    return _ZIP64_EOCD.unpack(record)[7]


def _read_from_zip(fileobj: IO[bytes], path: str, *required: str, missing: str) -> bytes:
    if _zip_member_count(fileobj) > MAX_MEMBERS:
        raise _invalid(f"File has more than {MAX_MEMBERS} members")
    fileobj.seek(0)
    try:
        with zipfile.ZipFile(fileobj) as archive:
            infos = archive.infolist()
            if len(infos) > MAX_MEMBERS:
                raise _invalid(f"File has more than {MAX_MEMBERS} members")
            compressed = fileobj.seek(0, io.SEEK_END) or 1
            unpacked = sum(info.file_size for info in infos)
            if (unpacked > COMPRESSION_RATIO_MIN_SIZE
                    and unpacked / compressed > COMPRESSION_RATIO_THRESHOLD):
                raise _invalid(f"File exceeds compression ratio of {COMPRESSION_RATIO_THRESHOLD}")
            if any(info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED)
                   for info in infos):
                raise _invalid("File does not use a supported compression type")
            found = [info for info in infos if info.filename == path]
            if not found:
                raise InvalidDistribution(missing)
            if len(found) > 1:
                raise _invalid(f"{path} appears more than once")
            names = {info.filename for info in infos}
            for other in required:
                if other not in names:
                    raise _invalid(f"{other.rpartition('/')[2]} not found at {other}")
            info = found[0]
            if info.flag_bits & 0x1:
                raise _invalid(f"{path} is encrypted")
            if info.file_size > MAX_METADATA_BYTES:
                raise _invalid(f"{path} is larger than {MAX_METADATA_BYTES} bytes")
            with archive.open(info) as member:
                # Bounded whatever the header claims: a lying size can't make this read more.
                data = member.read(MAX_METADATA_BYTES + 1)
    except InvalidDistribution:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, RuntimeError,
            NotImplementedError, struct.error):
        raise _invalid("File is not a valid zipfile") from None
    if len(data) > MAX_METADATA_BYTES:
        raise _invalid(f"{path} is larger than {MAX_METADATA_BYTES} bytes")
    return data


# --- tar.gz (sdists) --------------------------------------------------------------------------
class _TooLarge(Exception):
    pass


class _BoundedReader(io.RawIOBase):
    """Reads the decompressed stream, refusing to go past ``limit`` bytes."""

    def __init__(self, stream: IO[bytes], limit: int) -> None:
        self._stream = stream
        self._left = limit

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            size = self._left + 1
        data = self._stream.read(min(size, self._left + 1))
        self._left -= len(data)
        if self._left < 0:
            raise _TooLarge()
        return data


def _read_from_tar_gz(fileobj: IO[bytes], top: str) -> bytes:
    path = f"{top}/PKG-INFO"
    limit = max_unpacked_bytes()
    found: bytes | None = None
    try:
        # "r|": a forward-only stream, never seeks; every byte goes through the counter.
        with gzip.GzipFile(fileobj=fileobj, mode="rb") as unzipped, \
                tarfile.open(fileobj=_BoundedReader(unzipped, limit), mode="r|") as archive:
            for count, member in enumerate(archive, start=1):
                if count > MAX_MEMBERS:
                    raise _invalid(f"File has more than {MAX_MEMBERS} members")
                name = member.name[2:] if member.name.startswith("./") else member.name
                if name != path:
                    continue
                if found is not None:
                    raise _invalid(f"{path} appears more than once")
                if not member.isreg():
                    raise _invalid(f"{path} is not a regular file")
                if member.size > MAX_METADATA_BYTES:
                    raise _invalid(f"{path} is larger than {MAX_METADATA_BYTES} bytes")
                extracted = archive.extractfile(member)
                assert extracted is not None  # a regular file
                found = extracted.read(MAX_METADATA_BYTES + 1)
    except InvalidDistribution:
        raise
    except _TooLarge:
        raise _invalid(f"File unpacks to more than {limit} bytes") from None
    except (tarfile.TarError, zlib.error, EOFError, OSError, ValueError):
        raise _invalid("File is not a tarfile") from None
    if found is None:
        raise _invalid(f"PKG-INFO not found at {path}")
    return found


# --- the metadata itself ----------------------------------------------------------------------
def _parse(raw: bytes) -> DistMetadata:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid("The metadata is not valid UTF-8") from None
    headers = HeaderParser().parsestr(text, headersonly=True)
    names = headers.get_all("Name") or []
    versions = headers.get_all("Version") or []
    if len(names) != 1 or len(versions) != 1:
        raise _invalid("The metadata must have exactly one Name and one Version")
    name, version = str(names[0]).strip(), str(versions[0]).strip()
    if not name or len(name) > 200:
        raise _invalid("The metadata has an empty or overlong Name")
    try:
        parsed = Version(version)
    except InvalidVersion:
        raise _invalid(f"The metadata has an invalid Version {version[:100]!r}") from None
    return DistMetadata(name=name, version=parsed)


def normalized_filename(filename: str) -> str:
    """The file name with its project name and version normalised, for duplicate checks.

    ``Kit-2.0.tar.gz``, ``kit-2.0.tar.gz`` and ``kit-2.tar.gz`` are one file; so are
    ``Foo.Bar-1.0-py3-none-any.whl`` and ``foo_bar-1.0-py3-none-any.whl`` (PEP 503 names, the
    binary distribution format's ``_``, PEP 440 versions without trailing ``.0``). The caller
    has already checked that the name parses.
    """
    for extension in (".whl", ".tar.gz", ".zip"):
        if filename.endswith(extension):
            break
    else:
        return filename
    stem = filename[: -len(extension)]
    if extension == ".whl":
        name, version, *rest = stem.split("-")
    else:
        name, _, version = stem.rpartition("-")
        rest = []
    parts = [canonicalize_name(name).replace("-", "_"), canonicalize_version(version)]
    return "-".join(parts + [part.lower() for part in rest]) + extension
