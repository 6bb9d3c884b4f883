"""Rebuild ``assets/land_110m.json`` from npm ``world-atlas`` (Natural Earth 1:110m land).

This script is a maintainer tool: it is NOT run at install or test time, and the project does not
depend on ``world-atlas``. It only needs Python and numpy (and ``npm`` if no source is given).

Usage (from the repository root)::

    # let the script fetch the pinned package with `npm pack` into a temporary folder
    python assets/build_land_outline.py

    # or convert a package tarball / TopoJSON file you already have
    npm pack world-atlas@2.0.2            # -> world-atlas-2.0.2.tgz
    python assets/build_land_outline.py world-atlas-2.0.2.tgz
    python assets/build_land_outline.py path/to/land-110m.json -o assets/land_110m.json

What it does:

1. reads ``land-110m.json`` (TopoJSON; object ``land``, one MultiPolygon; quantized arcs,
   delta-encoded, with a ``transform``) and decodes the arcs into lon/lat rings;
2. world-atlas stitches polygons across the antimeridian for spherical rendering (Antarctica is a
   ring around the South Pole, Chukotka and Fiji cross 180°). For a plain lon/lat map each ring is
   unwrapped, a ring that encircles a pole is closed through that pole, and rings are cut at
   ±180° (Sutherland-Hodgman against the two meridians) and shifted back into [-180, 180];
3. rounds coordinates to 0.01°, drops repeated points and degenerate rings, orients exteriors
   counter-clockwise and holes clockwise (as in RFC 7946), and writes the compact JSON.

The output format (read by :mod:`loaders.geography`)::

    {"format": "callmip-land-outline", "version": 1, "precision_deg": 0.01, "source": {...},
     "polygons": [[exterior_ring, hole_ring, ...], ...]}

where each ring is a closed list of ``[lon, lat]`` pairs (first point repeated at the end).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import numpy as np

PACKAGE = "world-atlas"
PACKAGE_VERSION = "2.0.2"
MEMBER = "package/land-110m.json"
#: SHA-256 of ``land-110m.json`` inside world-atlas 2.0.2 (the file this asset was built from).
PINNED_SHA256 = "ead5f68119c49a9250902e7da303bcb209341bbb8fefe7369a439b48b704658a"
PRECISION = 2  # decimals: 0.01 degree
DEFAULT_OUTPUT = Path(__file__).resolve().parent / "land_110m.json"


# --------------------------------------------------------------------------- reading
def read_topojson_bytes(source: Path | None) -> bytes:
    """Return the bytes of ``land-110m.json`` from a tarball, a JSON file or ``npm pack``.

    Parameters
    ----------
    source : pathlib.Path or None
        A world-atlas ``.tgz``, a ``land-110m.json`` file, or None to run ``npm pack``.

    Returns
    -------
    bytes
        The TopoJSON document.
    """
    if source is None:
        with tempfile.TemporaryDirectory() as tmp:
            spec = f"{PACKAGE}@{PACKAGE_VERSION}"
            subprocess.run(["npm", "pack", spec], cwd=tmp, check=True, capture_output=True)
            tgz = next(Path(tmp).glob("*.tgz"))
            return read_topojson_bytes(tgz)
    if source.suffix in {".tgz", ".gz"}:
        with tarfile.open(source, "r:gz") as tar:
            member = tar.extractfile(MEMBER)
            if member is None:
                raise SystemExit(f"{source}: no {MEMBER} inside")
            return member.read()
    return source.read_bytes()


def decode_arcs(topology: dict) -> list[np.ndarray]:
    """Decode quantized, delta-encoded TopoJSON arcs into lon/lat arrays.

    Parameters
    ----------
    topology : dict
        A parsed TopoJSON ``Topology`` with a ``transform``.

    Returns
    -------
    list of numpy.ndarray
        One (N, 2) array of lon/lat per arc.
    """
    transform = topology.get("transform")
    scale = np.asarray(transform["scale"], dtype=float) if transform else np.ones(2)
    translate = np.asarray(transform["translate"], dtype=float) if transform else np.zeros(2)
    decoded = []
    for arc in topology["arcs"]:
        points = np.asarray(arc, dtype=float)[:, :2]
        if transform:
            points = np.cumsum(points, axis=0)
        decoded.append(points * scale + translate)
    return decoded


def stitch_ring(arc_indices: list[int], arcs: list[np.ndarray]) -> np.ndarray:
    """Join the arcs of one ring (negative index ``~i`` means arc ``i`` reversed).

    Parameters
    ----------
    arc_indices : list of int
        TopoJSON arc references of the ring.
    arcs : list of numpy.ndarray
        Decoded arcs.

    Returns
    -------
    numpy.ndarray
        The closed ring, shape (N, 2).
    """
    parts = []
    for k, index in enumerate(arc_indices):
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        parts.append(arc if k == 0 else arc[1:])  # consecutive arcs share their end point
    return np.concatenate(parts)


def topology_polygons(topology: dict, name: str = "land") -> list[list[np.ndarray]]:
    """Return the polygons (exterior + holes) of one TopoJSON object.

    Parameters
    ----------
    topology : dict
        Parsed TopoJSON.
    name : str
        Object name.

    Returns
    -------
    list of list of numpy.ndarray
        Polygons, each a list of rings (first is the exterior).
    """
    arcs = decode_arcs(topology)
    obj = topology["objects"][name]
    geometries = obj["geometries"] if obj["type"] == "GeometryCollection" else [obj]
    polygons = []
    for geometry in geometries:
        if geometry["type"] == "Polygon":
            groups = [geometry["arcs"]]
        elif geometry["type"] == "MultiPolygon":
            groups = geometry["arcs"]
        else:
            continue
        for group in groups:
            polygons.append([stitch_ring(ring, arcs) for ring in group])
    return polygons


# --------------------------------------------------------------------------- geometry
def signed_area(ring: np.ndarray) -> float:
    """Shoelace signed area in degrees² (positive = counter-clockwise).

    Parameters
    ----------
    ring : numpy.ndarray
        Ring of shape (N, 2), closed or not.

    Returns
    -------
    float
        Signed area.
    """
    x, y = ring[:, 0], ring[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def unwrap_ring(ring: np.ndarray) -> np.ndarray:
    """Make longitudes continuous; close a pole-encircling ring through the pole.

    Parameters
    ----------
    ring : numpy.ndarray
        Closed ring whose longitudes may jump by ~360° at the antimeridian.

    Returns
    -------
    numpy.ndarray
        Closed ring in extended longitudes (may leave [-180, 180]).
    """
    lon = np.degrees(np.unwrap(np.radians(ring[:, 0])))
    lon = lon - (lon[0] - ring[0, 0])  # keep the first point where it was
    out = np.column_stack([lon, ring[:, 1]])
    turn = out[-1, 0] - out[0, 0]
    if abs(turn) > 180:  # the ring goes once around a pole: close it through that pole
        pole = -90.0 if np.mean(out[:, 1]) < 0 else 90.0
        end, start = out[-1], out[0]
        # down the end meridian to the pole, along the pole to the start meridian, back up
        out = np.vstack([out, [end[0], pole], [start[0], pole], start])
    return out


def clip_half_plane(ring: np.ndarray, limit: float, keep_below: bool) -> np.ndarray:
    """Sutherland-Hodgman clip of a closed ring against ``lon <= limit`` or ``lon >= limit``.

    Parameters
    ----------
    ring : numpy.ndarray
        Closed ring (N, 2).
    limit : float
        Longitude of the cutting meridian.
    keep_below : bool
        Keep ``lon <= limit`` if True, else ``lon >= limit``.

    Returns
    -------
    numpy.ndarray
        Closed clipped ring (possibly empty, shape (0, 2)).
    """
    def inside(p: np.ndarray) -> bool:
        return p[0] <= limit if keep_below else p[0] >= limit

    pts = ring[:-1]
    out: list[np.ndarray] = []
    for i in range(len(pts)):
        cur, nxt = pts[i], pts[(i + 1) % len(pts)]
        cur_in, nxt_in = inside(cur), inside(nxt)
        if cur_in:
            out.append(cur)
        if cur_in != nxt_in:
            t = (limit - cur[0]) / (nxt[0] - cur[0])
            out.append(np.array([limit, cur[1] + t * (nxt[1] - cur[1])]))
    if not out:
        return np.empty((0, 2))
    return np.vstack(out + [out[0]])


def split_at_antimeridian(ring: np.ndarray) -> list[np.ndarray]:
    """Cut an unwrapped ring into pieces inside [-180, 180].

    Parameters
    ----------
    ring : numpy.ndarray
        Closed ring in extended longitudes.

    Returns
    -------
    list of numpy.ndarray
        Closed rings, each shifted into [-180, 180].
    """
    kmin = int(np.floor((ring[:, 0].min() + 180) / 360))
    kmax = int(np.floor((ring[:, 0].max() + 180) / 360))
    if kmin == kmax or (kmax == kmin + 1 and ring[:, 0].max() == 180 + 360 * kmin):
        return [ring - [360 * kmin, 0]]
    pieces = []
    for k in range(kmin, kmax + 1):
        piece = clip_half_plane(ring, -180 + 360 * k, keep_below=False)
        if len(piece):
            piece = clip_half_plane(piece, 180 + 360 * k, keep_below=True)
        if len(piece) >= 4:
            pieces.append(piece - [360 * k, 0])
    return pieces


def clean_ring(ring: np.ndarray) -> np.ndarray | None:
    """Round to the output precision and drop repeated points; None if degenerate.

    Parameters
    ----------
    ring : numpy.ndarray
        Closed ring.

    Returns
    -------
    numpy.ndarray or None
        Closed rounded ring, or None if it has no area left.
    """
    ring = np.round(ring, PRECISION)
    ring[:, 0] = np.clip(ring[:, 0], -180, 180)
    ring[:, 1] = np.clip(ring[:, 1], -90, 90)
    keep = np.ones(len(ring), dtype=bool)
    keep[1:] = np.any(ring[1:] != ring[:-1], axis=1)
    ring = ring[keep]
    if len(ring) and np.any(ring[0] != ring[-1]):
        ring = np.vstack([ring, ring[:1]])
    if len(ring) < 4 or abs(signed_area(ring[:-1])) < 10.0 ** (-2 * PRECISION):
        return None
    return ring


def point_in_ring(x: float, y: float, ring: np.ndarray) -> bool:
    """Even-odd test of one point against one closed ring.

    Parameters
    ----------
    x, y : float
        The point.
    ring : numpy.ndarray
        Closed ring.

    Returns
    -------
    bool
        True if inside.
    """
    x1, y1 = ring[:-1, 0], ring[:-1, 1]
    x2, y2 = ring[1:, 0], ring[1:, 1]
    crosses = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xi = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    return bool(np.count_nonzero(crosses & (xi > x)) % 2)


def planar_polygons(polygons: list[list[np.ndarray]]) -> list[list[np.ndarray]]:
    """Turn spherical (stitched) polygons into lon/lat polygons inside [-180, 180].

    Parameters
    ----------
    polygons : list of list of numpy.ndarray
        Decoded TopoJSON polygons.

    Returns
    -------
    list of list of numpy.ndarray
        Polygons with rounded, oriented rings (exterior CCW, holes CW).
    """
    exteriors: list[np.ndarray] = []
    holes: list[np.ndarray] = []
    for rings in polygons:
        for j, ring in enumerate(rings):
            for piece in split_at_antimeridian(unwrap_ring(ring)):
                cleaned = clean_ring(piece)
                if cleaned is not None:
                    (exteriors if j == 0 else holes).append(cleaned)
    out = [[ring if signed_area(ring) > 0 else ring[::-1]] for ring in exteriors]
    for hole in holes:
        hole = hole if signed_area(hole) < 0 else hole[::-1]
        owners = [p for p in out if point_in_ring(hole[0, 0], hole[0, 1], p[0])]
        if not owners:
            raise SystemExit(f"hole at {hole[0]} lies in no exterior ring")
        min(owners, key=lambda p: abs(signed_area(p[0]))).append(hole)
    return out


# --------------------------------------------------------------------------- output
def build(source: Path | None, output: Path) -> dict:
    """Convert the TopoJSON land polygons and write the compact asset.

    Parameters
    ----------
    source : pathlib.Path or None
        See :func:`read_topojson_bytes`.
    output : pathlib.Path
        Where to write the JSON.

    Returns
    -------
    dict
        Summary (hash, polygon, ring and point counts, size in bytes).
    """
    raw = read_topojson_bytes(source)
    sha = hashlib.sha256(raw).hexdigest()
    if sha != PINNED_SHA256:
        print(f"warning: land-110m.json SHA-256 {sha} differs from the pinned {PINNED_SHA256}",
              file=sys.stderr)
    topology = json.load(io.BytesIO(raw))
    polygons = planar_polygons(topology_polygons(topology, "land"))
    document = {
        "format": "callmip-land-outline",
        "version": 1,
        "description": "Natural Earth 1:110m land polygons as lon/lat rings (degrees, WGS84), "
        "cut at the antimeridian; each polygon is [exterior, hole, ...]; rings are closed; "
        "exteriors counter-clockwise, holes clockwise.",
        "precision_deg": 10.0 ** -PRECISION,
        "source": {
            "data": "Natural Earth 1:110m physical vectors, land (ne_110m_land), v4.1.0; "
            "public domain; Made with Natural Earth. naturalearthdata.com",
            "package": f"npm {PACKAGE}@{PACKAGE_VERSION} (ISC licence, Mike Bostock), "
            "file land-110m.json",
            "sha256": sha,
            "converter": "assets/build_land_outline.py",
        },
        "polygons": [
            [[[round(float(x), PRECISION), round(float(y), PRECISION)] for x, y in ring]
             for ring in polygon]
            for polygon in polygons
        ],
    }
    text = json.dumps(document, separators=(",", ":"))
    output.write_text(text + "\n", encoding="utf-8")
    n_rings = sum(len(p) for p in polygons)
    n_points = sum(len(r) for p in polygons for r in p)
    return {"sha256": sha, "polygons": len(polygons), "rings": n_rings, "points": n_points,
            "bytes": output.stat().st_size}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point.

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.
    """
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", nargs="?", type=Path,
                        help="world-atlas .tgz or land-110m.json (default: npm pack "
                        f"{PACKAGE}@{PACKAGE_VERSION})")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    summary = build(args.source, args.output)
    print(f"wrote {args.output}: {summary}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
