"""The data layer: registry, verified fetching, loaders, validation, and the synthetic world.

Introduced in chapter 1 (Behaviour logs). See :mod:`stlab.data.registry` for the data sets,
:mod:`stlab.data.fetch` for the resolution order, :mod:`stlab.data.validate` for the schemas.
"""

from stlab.data.cache import cached_frame, fingerprint
from stlab.data.errors import ChecksumError, DataError, DataNotFoundError, DataValidationError
from stlab.data.fetch import Resolved, fetch, fetch_file, file_digest, verify_file
from stlab.data.loaders import (
    CHECKIN_DATASETS,
    DATASET_CITY,
    SMOKE_USERS,
    SMOKE_WORLD,
    TKY_BBOX,
    load_chapter_checkins,
    NYC_BBOX,
    BBox,
    GRAPH_SERIES_DATASETS,
    GraphSeries,
    RatingsData,
    SensorGraph,
    load_bike_sharing,
    load_checkins,
    load_foursquare,
    load_gowalla,
    load_gowalla_venues,
    load_graph_series,
    load_los_loop,
    load_metr_la_graph,
    load_montevideo_bus,
    load_movielens,
    load_taobao,
    read_checkins,
    read_graph_series,
    restricted_unpickle,
    subgraph,
)
from stlab.data.registry import REGISTRY, DataFile, Dataset, get_dataset
from stlab.data.synthetic import SyntheticWorld, WorldConfig, chapter_world, simulate_road_network
from stlab.data.validate import (
    CHECKIN_COLUMNS,
    CHECKIN_REQUIRED,
    parse_timestamps,
    validate_checkins,
)

__all__ = [
    "BBox", "CHECKIN_COLUMNS", "CHECKIN_DATASETS", "CHECKIN_REQUIRED", "DATASET_CITY", "SMOKE_USERS", "SMOKE_WORLD", "TKY_BBOX", "load_chapter_checkins", "ChecksumError",
    "DataError", "DataFile", "GRAPH_SERIES_DATASETS", "load_graph_series", "subgraph", "DataNotFoundError", "DataValidationError", "Dataset", "GraphSeries",
    "NYC_BBOX", "REGISTRY", "RatingsData", "Resolved", "SensorGraph", "SyntheticWorld", "WorldConfig",
    "cached_frame", "simulate_road_network", "chapter_world", "fetch", "fetch_file", "file_digest", "fingerprint", "get_dataset",
    "load_bike_sharing", "load_checkins", "load_foursquare", "load_gowalla", "load_gowalla_venues",
    "load_los_loop", "load_metr_la_graph", "load_montevideo_bus", "load_movielens", "load_taobao",
    "parse_timestamps", "read_checkins", "read_graph_series", "restricted_unpickle", "validate_checkins",
    "verify_file",
]
