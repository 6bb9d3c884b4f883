"""Size check of classic (NETCDF3) files, which the netCDF library reads past their end.

A truncated classic file opens without complaint and its missing data come back as zeros; the
only way to notice is to compare the file size with what its header describes.
"""

from __future__ import annotations

import math
import os
import struct
from pathlib import Path
from typing import Any


def netcdf3_size_problem(path: str | os.PathLike[str]) -> str | None:
    """Say whether a classic-format NetCDF file is shorter than its header describes.

    The netCDF library reads a truncated classic file without complaint (missing data come
    back as zeros), so the size is compared with what the header promises.

    Parameters
    ----------
    path : str or path-like
        A local file starting with ``CDF``.

    Returns
    -------
    str or None
        A message if the file is truncated, ``None`` if it is complete or not classic NetCDF
        or the header cannot be parsed.
    """
    try:
        actual = Path(path).stat().st_size
        with open(path, "rb") as fh:
            expected = _nc3_expected_size(fh)
    except Exception:
        return None
    if expected is not None and actual < expected:
        return (f"is truncated: the file has {actual} bytes but its NetCDF header describes "
                f"{expected} bytes")
    return None


_NC3_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}


def _pad4(n: int) -> int:
    return (n + 3) // 4 * 4


def _nc3_expected_size(fh: Any) -> int | None:
    magic = fh.read(4)
    if len(magic) < 4 or magic[:3] != b"CDF" or magic[3] not in (1, 2, 5):
        return None
    version = magic[3]

    def take(n: int) -> bytes:
        data = fh.read(n)
        if len(data) < n:
            raise EOFError("header ends early")
        return data

    def u32() -> int:
        return struct.unpack(">I", take(4))[0]

    def nonneg() -> int:
        return struct.unpack(">Q", take(8))[0] if version == 5 else u32()

    def skip_name() -> None:
        take(_pad4(nonneg()))

    def skip_attributes() -> None:
        tag, count = u32(), nonneg()
        if tag == 0:
            return
        if tag != 0x0C:
            raise ValueError("bad attribute tag")
        for _ in range(count):
            skip_name()
            nc_type = u32()
            take(_pad4(nonneg() * _NC3_TYPE_SIZES[nc_type]))

    numrecs = nonneg()
    streaming = numrecs == (2**64 - 1 if version == 5 else 2**32 - 1)
    tag, n_dims = u32(), nonneg()
    if tag not in (0, 0x0A):
        raise ValueError("bad dimension tag")
    dims = []
    for _ in range(n_dims):
        skip_name()
        dims.append(nonneg())
    skip_attributes()
    tag, n_vars = u32(), nonneg()
    if tag not in (0, 0x0B):
        raise ValueError("bad variable tag")
    variables = []
    for _ in range(n_vars):
        skip_name()
        dimids = [nonneg() for _ in range(nonneg())]
        skip_attributes()
        nc_type = u32()
        vsize = nonneg()
        begin = struct.unpack(">Q", take(8))[0] if version in (2, 5) else u32()
        is_record = bool(dimids) and dims[dimids[0]] == 0
        shape = [dims[d] for d in (dimids[1:] if is_record else dimids)]
        size = math.prod(shape) * _NC3_TYPE_SIZES[nc_type]
        variables.append((is_record, size, vsize, begin))
    records = [v for v in variables if v[0]]
    if len(records) == 1:
        recsize = records[0][1]
    else:
        recsize = sum(_pad4(v[1]) for v in records)
    end = 0
    for is_record, size, _vsize, begin in variables:
        if is_record:
            if streaming or numrecs == 0:
                continue
            end = max(end, begin + (numrecs - 1) * recsize + size)
        else:
            end = max(end, begin + size)
    return end


