"""Fill in the chunk CRCs of an MCAP file that ``rosbags`` wrote with CRC 0 ("not set").

rosbags 0.11 writes every Chunk record's ``uncompressed_crc`` as 0, which MCAP readers take as
"no checksum": a flipped bit in a stored bag then reads back as a wrong depth value instead of
an error. :func:`add_chunk_crcs` walks the file's records once and patches each chunk's CRC-32
(of its uncompressed records, as the MCAP specification defines it) in place; rosbags' reader,
like the other MCAP readers, then verifies it on every read.

Record layout (MCAP v0): ``opcode u8, length u64, content``; a Chunk's content starts with
``message_start_time u64, message_end_time u64, uncompressed_size u64, uncompressed_crc u32,
compression string (u32 length + bytes), records (u64 length + bytes)``.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Union

__all__ = ['add_chunk_crcs']

MAGIC = b'\x89MCAP0\r\n'
CHUNK, FOOTER = 0x06, 0x02
_CRC_OFFSET = 24  # within a Chunk's content


def add_chunk_crcs(path: Union[str, Path]) -> int:
    """Write the CRC-32 of every chunk whose CRC is 0; return how many were set."""
    from rosbags.rosbag2.storage_mcap import decompress
    path = Path(path)
    patched = 0
    with path.open('r+b') as handle:
        if handle.read(len(MAGIC)) != MAGIC:
            raise ValueError(f'{path} is not an MCAP file')
        while True:
            start = handle.tell()
            head = handle.read(9)
            if len(head) < 9:
                break
            opcode, length = struct.unpack('<BQ', head)
            if opcode == FOOTER:
                break
            if opcode != CHUNK:
                handle.seek(length, 1)
                continue
            content = handle.read(length)
            size, crc = struct.unpack_from('<QI', content, 16)
            name_length, = struct.unpack_from('<I', content, 28)
            compression = content[32:32 + name_length].decode()
            data_length, = struct.unpack_from('<Q', content, 32 + name_length)
            data_start = 40 + name_length
            if crc == 0:
                raw = decompress(content[data_start:data_start + data_length], compression,
                                 size, 0)
                handle.seek(start + 9 + _CRC_OFFSET)
                handle.write(struct.pack('<I', zlib.crc32(raw)))
                patched += 1
            handle.seek(start + 9 + length)
    return patched
