"""The shard reader parses untrusted bytes: every header format Python's ``tarfile`` writes (ustar with a name
prefix, GNU long names, pax path records) must read back the names and contents tarfile itself reads, and
members that are not regular files must be skipped."""

import io
import tarfile

import pytest

from vaegan_dist.data.tarstream import tar_members

FORMATS = {"ustar": tarfile.USTAR_FORMAT, "gnu": tarfile.GNU_FORMAT, "pax": tarfile.PAX_FORMAT}


def _tar(fmt: int, members: list[tuple[str, bytes]], extra=()) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=fmt) as tar:
        for info in extra:
            tar.addfile(info)
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _read_by_tarfile(data: bytes) -> list[tuple[str, bytes]]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return [(m.name, tar.extractfile(m).read()) for m in tar.getmembers() if m.isreg()]


# A short name; a 150-character path that ustar splits into prefix + name; a 250-character file name that
# only GNU ('L' records) and pax ('x' records) can hold; an empty member; one of exactly one block.
SHORT = ("faces/000001.jpg", b"\xff\xd8jpeg")
PREFIXED = ("d" * 60 + "/" + "e" * 40 + "/sample_000002.cls", b"7")
LONG_NAME = ("shard/" + "n" * 250 + ".json", b'{"a": 1}')
EMPTY = ("faces/000003.txt", b"")
ONE_BLOCK = ("faces/000004.bin", bytes(range(256)) * 2)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_tarfile_writes_reads_back_as_tarfile_reads_it(fmt):
    members = [SHORT, PREFIXED, EMPTY, ONE_BLOCK] + ([] if fmt == "ustar" else [LONG_NAME])
    data = _tar(FORMATS[fmt], members)
    ours = [(name, bytes(contents)) for name, contents in tar_members(data)]
    assert ours == _read_by_tarfile(data) == members


def test_the_ustar_prefix_is_really_used_for_long_paths():
    data = _tar(tarfile.USTAR_FORMAT, [PREFIXED])
    prefix, name = data[345:500].rstrip(b"\0"), data[0:100].rstrip(b"\0")  # the header fields this reader joins
    assert prefix and (prefix + b"/" + name).decode() == PREFIXED[0]
    assert [name for name, _ in tar_members(data)] == [PREFIXED[0]]


def test_pax_names_in_utf8():
    member = ("faces/" + "é" * 120 + ".jpg", b"x")
    data = _tar(tarfile.PAX_FORMAT, [member])
    assert [(n, bytes(c)) for n, c in tar_members(data)] == [member] == _read_by_tarfile(data)


@pytest.mark.parametrize("fmt", FORMATS)
def test_directories_and_links_are_skipped_and_do_not_lend_their_long_name(fmt):
    directory = tarfile.TarInfo("faces")
    directory.type = tarfile.DIRTYPE
    link = tarfile.TarInfo("faces/" + "l" * 120 if fmt != "ustar" else "faces/link")
    link.type, link.linkname = tarfile.SYMTYPE, "faces/000001.jpg"
    data = _tar(FORMATS[fmt], [SHORT], extra=[directory, link])
    assert [(n, bytes(c)) for n, c in tar_members(data)] == [SHORT]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_truncated_member_is_an_error_naming_its_offset(fmt):
    data = _tar(FORMATS[fmt], [SHORT, ONE_BLOCK])
    cut = data.rindex(bytes(range(256)))  # inside the last member's contents
    with pytest.raises(ValueError, match=r"truncated member at byte \d+ \(512 bytes announced\)"):
        list(tar_members(data[:cut]))
