"""Shared vocabulary of the data layer: the bounding box, the New York City box, Taobao's actions.

These sit below the loaders and the synthetic world, which both use them, so that neither has to
import the other's module for them. Introduced in chapter 1 (Behaviour logs).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class BBox:
    """A latitude/longitude bounding box in WGS84 degrees (edges included)."""

    lon_min: float
    lat_min: float
    lon_max: float
    lat_max: float

    def __post_init__(self) -> None:
        if not (self.lon_min < self.lon_max and self.lat_min < self.lat_max):
            raise ValueError(f"empty bounding box {self}: need lon_min < lon_max and lat_min < lat_max")

    def contains(self, lat: Any, lon: Any) -> np.ndarray:
        """Boolean mask of points inside the box."""
        lat, lon = np.asarray(lat), np.asarray(lon)
        return (lat >= self.lat_min) & (lat <= self.lat_max) & (lon >= self.lon_min) & (lon <= self.lon_max)


#: The New York City box used to cut the Gowalla NYC subset.
NYC_BBOX = BBox(lon_min=-74.2589, lat_min=40.4774, lon_max=-73.7004, lat_max=40.9176)

#: Taobao's four kinds of action, weakest first: page view, add to cart, favourite, buy.
TAOBAO_BEHAVIORS: tuple[str, ...] = ("pv", "cart", "fav", "buy")
