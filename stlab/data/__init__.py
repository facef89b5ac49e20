"""The data layer: registry, verified fetching, loaders, validation, and the synthetic world.

Introduced in chapter 1 (Behaviour logs). See :mod:`stlab.data.registry` for the data sets,
:mod:`stlab.data.fetch` for the resolution order, :mod:`stlab.data.validate` for the schemas.
Modules depend one way: ``errors``, ``schema``, ``validate``, ``graphseries`` <- ``synthetic``
<- ``loaders``; ``registry`` <- ``fetch`` <- ``cache`` <- ``loaders``; ``series`` builds model-ready
series from loaded tables. What the book's chapters
share (each data set's city, smoke sizes) is in :mod:`stlab.chapters`, not here.
"""

from stlab.data.cache import CACHE_FORMAT, cached_frame, fingerprint
from stlab.data.errors import ChecksumError, DataError, DataNotFoundError, DataValidationError
from stlab.data.fetch import Resolved, fetch, fetch_file, file_digest, verify_file
from stlab.data.graphseries import GraphSeries, read_graph_series, subgraph
from stlab.data.loaders import (
    CHECKIN_DATASETS,
    GRAPH_SERIES_DATASETS,
    RatingsData,
    STAN_NYC_ORIGIN,
    SensorGraph,
    load_bike_sharing,
    load_checkins,
    load_foursquare,
    load_foursquare_stan,
    load_gowalla,
    load_gowalla_venues,
    load_graph_series,
    load_los_loop,
    load_metr_la_graph,
    load_montevideo_bus,
    load_movielens,
    load_taobao,
    read_checkins,
    restricted_unpickle,
)
from stlab.data.registry import REGISTRY, DataFile, Dataset, get_dataset
from stlab.data.schema import NYC_BBOX, TAOBAO_BEHAVIORS, BBox
from stlab.data.series import bike_regressors, hourly_bike_series, region_hour_counts, synthetic_rentals
from stlab.data.synthetic import SyntheticWorld, WorldConfig, cached_world, simulate_road_network
from stlab.data.validate import (
    CHECKIN_COLUMNS,
    CHECKIN_REQUIRED,
    parse_timestamps,
    validate_checkins,
)

__all__ = [
    "BBox", "CACHE_FORMAT", "CHECKIN_COLUMNS", "CHECKIN_DATASETS", "CHECKIN_REQUIRED", "ChecksumError",
    "DataError", "DataFile", "DataNotFoundError", "DataValidationError", "Dataset", "GRAPH_SERIES_DATASETS",
    "GraphSeries", "NYC_BBOX", "REGISTRY", "RatingsData", "Resolved", "STAN_NYC_ORIGIN", "SensorGraph",
    "SyntheticWorld",
    "TAOBAO_BEHAVIORS", "WorldConfig", "bike_regressors", "cached_frame", "cached_world", "fetch", "fetch_file",
    "file_digest", "hourly_bike_series", "region_hour_counts", "synthetic_rentals",
    "fingerprint", "get_dataset", "load_bike_sharing", "load_checkins", "load_foursquare", "load_foursquare_stan",
    "load_gowalla", "load_gowalla_venues", "load_graph_series", "load_los_loop", "load_metr_la_graph",
    "load_montevideo_bus",
    "load_movielens", "load_taobao", "parse_timestamps", "read_checkins", "read_graph_series",
    "restricted_unpickle", "simulate_road_network", "subgraph", "validate_checkins", "verify_file",
]
