"""The topic map as a picture (`tessera map --png`): each note a dot at its place (search's t-SNE layout), coloured by
its cluster, with each cluster's name at the middle of its notes. No I/O: points in, PNG bytes out."""

from __future__ import annotations

import io
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PIL import Image, ImageDraw, ImageFont

#: Okabe-Ito and Tableau colours, told apart with most kinds of colour blindness for the first eight.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
           "#8C564B", "#7F7F7F", "#BCBD22", "#17BECF")
MARGIN = 40
TITLE_H = 36


@dataclass(frozen=True)
class Dot:
    x: float  # in [0, 1]
    y: float
    cluster_id: int


def colour_of(cluster_id: int, order: Sequence[int]) -> str:
    """A cluster's colour: by its place among the clusters shown (the page uses the same rule)."""
    return PALETTE[order.index(cluster_id) % len(PALETTE)] if cluster_id in order else "#999999"


def render(dots: Sequence[Dot], names: Mapping[int, str], title: str, width: int = 1200, height: int = 900) -> bytes:
    """The map as PNG bytes: ``dots`` coloured by cluster, ``names`` (cluster id → name) at the middle of each cluster's dots."""
    img = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(img)
    font = ImageFont.load_default(size=15)
    small = ImageFont.load_default(size=13)
    draw.text((MARGIN, 10), title, fill="#222222", font=font)
    order = sorted(names)
    w, h = width - 2 * MARGIN, height - 2 * MARGIN - TITLE_H
    radius = 5 if len(dots) < 500 else 3 if len(dots) < 5000 else 2
    spots: dict[int, list[tuple[float, float]]] = defaultdict(list)
    for d in dots:
        px, py = MARGIN + d.x * w, MARGIN + TITLE_H + (1 - d.y) * h
        draw.ellipse((px - radius, py - radius, px + radius, py + radius), fill=colour_of(d.cluster_id, order), outline="white")
        spots[d.cluster_id].append((px, py))
    for cid, where in spots.items():
        label = names.get(cid, "")
        if not label:
            continue
        cx, cy = sum(p[0] for p in where) / len(where), sum(p[1] for p in where) / len(where)
        box = draw.textbbox((cx, cy), label, font=small, anchor="mm")
        draw.rectangle((box[0] - 3, box[1] - 2, box[2] + 3, box[3] + 2), fill="white", outline=colour_of(cid, order))
        draw.text((cx, cy), label, fill="#222222", font=small, anchor="mm")
    out = io.BytesIO()
    img.save(out, format="PNG", optimize=True)
    return out.getvalue()
