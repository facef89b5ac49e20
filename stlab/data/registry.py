"""The data registry: every data set the book uses, where it comes from, and its checksums.

Each :class:`Dataset` lists its :class:`DataFile` s. A file records the original URL it is
published at, the sha256 and size of the file *as the loaders read it*, and how to get it out
of what the URL serves (a plain file, a gzip of it, or a member of a zip archive). Where a
publisher gives a checksum of the download itself (GroupLens gives md5 sums of its zips), that is
checked too.

Some entries are subsets of a larger original (Gowalla NYC is a bounding-box cut of SNAP's
worldwide file): the registry knows both, each with its own checksum.

Introduced in chapter 1 (Behaviour logs); the data appendix prints this registry as a table.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class DataFile:
    """One file of a data set.

    Attributes:
        name: file name inside the data set's folder (``<STLAB_DATA>/<dataset>/<name>``).
        sha256: checksum of the file as loaders read it; ``None`` when no trustworthy value is
            known yet (the first download is then recorded and checked on every later use).
        size: size in bytes of that file, when known.
        url: where the original is published; ``None`` for local-only subsets.
        member: path inside the zip archive served at ``url``, if any.
        gunzip: ``url`` serves a gzip of the file.
        download_md5: publisher's md5 of what ``url`` serves (for example a zip archive).
        manual: ``url`` is a landing page that needs a login or a click; the file must be
            placed by hand.
    """

    name: str
    sha256: str | None
    size: int | None = None
    url: str | None = None
    member: str | None = None
    gunzip: bool = False
    download_md5: str | None = None
    manual: bool = False


@dataclass(frozen=True)
class Dataset:
    """A registered data set.

    Attributes:
        name: registry key and folder name.
        description: one line on what it holds.
        kind: the loader family (``checkins``, ``ecommerce``, ``ratings``, ``counts``,
            ``graph-series``).
        homepage: the publisher's page.
        licence: terms of use, as the publisher states them.
        citation: what to cite.
        files: the files, each with its checksum.
        subset_of: name of the larger data set this one was cut from, if any.
    """

    name: str
    description: str
    kind: str
    homepage: str
    licence: str
    citation: str
    files: tuple[DataFile, ...]
    subset_of: str | None = None
    notes: str = ""
    _by_name: dict[str, DataFile] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {f.name: f for f in self.files})

    def file(self, name: str) -> DataFile:
        """Return the registered file ``name`` or raise a ``KeyError`` listing the known ones."""
        try:
            return self._by_name[name]
        except KeyError:
            raise KeyError(
                f"data set {self.name!r} has no file {name!r}; its files are {sorted(self._by_name)}"
            ) from None


_GOWALLA_CITATION = (
    "E. Cho, S. A. Myers, J. Leskovec. Friendship and Mobility: User Movement in "
    "Location-Based Social Networks. KDD 2011."
)
_DCRNN_CITATION = (
    "Y. Li, R. Yu, C. Shahabi, Y. Liu. Diffusion Convolutional Recurrent Neural Network: "
    "Data-Driven Traffic Forecasting. ICLR 2018."
)
_TGCN_CITATION = (
    "L. Zhao, Y. Song, C. Zhang, Y. Liu, P. Wang, T. Lin, M. Deng, H. Li. T-GCN: A Temporal "
    "Graph Convolutional Network for Traffic Prediction. IEEE T-ITS 2019."
)
_ML_CITATION = (
    "F. M. Harper, J. A. Konstan. The MovieLens Datasets: History and Context. "
    "ACM TiiS 5(4), 2015."
)
_ML100K_ZIP = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
_ML100K_MD5 = "0e33842e24a9c977be4e0107933c0723"
_BIKE_ZIP = "https://archive.ics.uci.edu/static/public/275/bike+sharing+dataset.zip"
_DCRNN_RAW = "https://raw.githubusercontent.com/liyaguang/DCRNN/master/data/sensor_graph/"
_TGCN_RAW = "https://raw.githubusercontent.com/lehaifeng/T-GCN/master/data/"
_TSMC_ZIP = "http://www-public.imtsudparis.eu/~zhang_da/pub/dataset_tsmc2014.zip"
_TSMC_CITATION = (
    "D. Yang, D. Zhang, V. W. Zheng, Z. Yu. Modeling User Activity Preference by "
    "Leveraging User Spatial Temporal Characteristics in LBSNs. IEEE TSMC 45(1), 2015."
)
_STAN_RAW = (
    "https://raw.githubusercontent.com/yingtaoluo/Spatial-Temporal-Attention-Network-for-POI-Recommendation/"
    "8b82f2840e7f435a25398e1d42a835fc4129a4e2/data/"
)


def _ml100k(name: str, sha256: str, size: int) -> DataFile:
    return DataFile(name, sha256, size, _ML100K_ZIP, member=f"ml-100k/{name}", download_md5=_ML100K_MD5)


REGISTRY: dict[str, Dataset] = {
    d.name: d
    for d in [
        Dataset(
            name="gowalla",
            description="Gowalla check-ins worldwide (SNAP): user, UTC time, lat, lon, location id.",
            kind="checkins",
            homepage="https://snap.stanford.edu/data/loc-gowalla.html",
            licence="No licence stated by SNAP; cite the paper.",
            citation=_GOWALLA_CITATION,
            files=(
                DataFile(
                    "loc-gowalla_totalCheckins.txt",
                    "4e02ea12586a1bfb986b468d78672ab256bab5e25559aca2cc23e1ecb55df1ea",
                    394_645_737,
                    "https://snap.stanford.edu/data/loc-gowalla_totalCheckins.txt.gz",
                    gunzip=True,
                ),
            ),
            notes="6,442,890 check-ins, 2009-02 .. 2010-10.",
        ),
        Dataset(
            name="gowalla-nyc",
            description=(
                "Gowalla check-ins inside the New York City bounding box (lon -74.2589..-73.7004, "
                "lat 40.4774..40.9176), cut from SNAP's worldwide file; plus venue names."
            ),
            kind="checkins",
            homepage="https://snap.stanford.edu/data/loc-gowalla.html",
            licence="No licence stated by SNAP; cite the paper.",
            citation=_GOWALLA_CITATION,
            subset_of="gowalla",
            files=(
                DataFile(
                    "gowalla_events_nyc_bbox.tsv.gz",
                    "82bde51330ab2532dea8965197464dcdc5c29b89511656af7e76c226b79061f5",
                    2_294_240,
                ),
                DataFile(
                    "gowalla_venues_nyc.tsv",
                    "931389394a436b7e4c5194eab675282b469e5dc038e9663302d831f2f3c62f8e",
                    1_538_298,
                ),
            ),
            notes=(
                "138,957 check-ins, 7,115 users, 21,509 locations, 2009-04-23 .. 2010-10-23. "
                "Without the local copy, load_gowalla(subset='nyc') cuts the same box from the "
                "downloaded worldwide file."
            ),
        ),
        Dataset(
            name="foursquare-tsmc2014",
            description=(
                "Foursquare check-ins in New York and Tokyo, 2012-04 .. 2013-02: user, venue, "
                "category, lat, lon, time-zone offset, UTC time."
            ),
            kind="checkins",
            homepage="https://sites.google.com/site/yangdingqi/home/foursquare-dataset",
            licence="Research use; cite the paper.",
            citation=_TSMC_CITATION,
            files=(
                DataFile("dataset_TSMC2014_NYC.txt", None, None, _TSMC_ZIP,
                         member="dataset_tsmc2014/dataset_TSMC2014_NYC.txt"),
                DataFile("dataset_TSMC2014_TKY.txt", None, None, _TSMC_ZIP,
                         member="dataset_tsmc2014/dataset_TSMC2014_TKY.txt"),
            ),
            notes="No checksum is published: the first download is recorded and checked afterwards.",
        ),
        Dataset(
            name="foursquare-nyc-stan",
            description=(
                "Foursquare check-ins in New York City as preprocessed and published by STAN: "
                "NYC.npy int32 rows [user, poi, minutes], NYC_POI.npy float64 rows [poi, lat, lon]."
            ),
            kind="checkins",
            homepage="https://github.com/yingtaoluo/Spatial-Temporal-Attention-Network-for-POI-Recommendation",
            licence=(
                "No licence in the STAN repository; the underlying TSMC2014 data is for research use. "
                "Cite both papers."
            ),
            citation=(
                f"{_TSMC_CITATION} Y. Luo, Q. Liu, Z. Liu. STAN: Spatio-Temporal Attention Network "
                "for Next Location Recommendation. WWW 2021."
            ),
            files=(
                DataFile("NYC.npy", "9e28b974a52d233e201ff9e82e1c076818c90b1e8f25f4ef93daaf1d7e8ddf55",
                         1_775_384, _STAN_RAW + "NYC.npy"),
                DataFile("NYC_POI.npy", "f709f4796ca117d0b96ad2d0201a9869920364e2c476c4362e746740ded08d95",
                         123_368, _STAN_RAW + "NYC_POI.npy"),
            ),
            notes=(
                "Derived from foursquare-tsmc2014 (NYC) by STAN's preprocessing: 147,938 check-ins, "
                "1,083 users, 5,135 POIs, about 318 days. Times are minutes from an origin the authors "
                "do not state; the loader takes minute 1 = 2012-04-03 18:00 UTC, the first raw TSMC2014 "
                "NYC check-in (then the last check-in falls on the collection's last day, 2013-02-16 UTC, "
                "and the daily trough near 04:00 New York time). Rows are grouped by user but not "
                "time-ordered; repeated (user, minute) pairs and exact duplicate rows are kept as "
                "published. No venue names, categories or time-zone offsets. STAN's own evaluation "
                "(per user the last 101 check-ins by time, one held out, all POIs ranked, Recall@k, by "
                "default the first 100 users) is its own protocol, not the book's."
            ),
        ),
        Dataset(
            name="taobao-userbehavior",
            description=(
                "Taobao UserBehavior: user, item, category, behaviour (pv/cart/fav/buy), unix time. "
                "Two real slices and the full file."
            ),
            kind="ecommerce",
            homepage="https://tianchi.aliyun.com/dataset/649",
            licence="Research use on Tianchi's terms; do not redistribute.",
            citation=(
                "H. Zhu, X. Li, P. Zhang, G. Li, J. He, H. Li, K. Gai. Learning Tree-based Deep "
                "Model for Recommender Systems. KDD 2018."
            ),
            files=(
                DataFile(
                    "UserBehavior_head.csv",
                    "e6f47712a2ae149885993ac7b520cf5ba3b099b2e52f90cfddd912455c710e6d",
                    161_867,
                ),
                DataFile(
                    "UserBehavior_flink_timesorted_slice.csv",
                    "696e4ff78962da815274f511fb15639847ad2cca413877e2ab70b73004bc18b4",
                    3_526_605,
                ),
                DataFile(
                    "UserBehavior.csv", None, None, "https://tianchi.aliyun.com/dataset/649",
                    manual=True,
                ),
            ),
            notes=(
                "UserBehavior_head.csv: the first 4,321 lines of the original (43 users, full "
                "histories). UserBehavior_flink_timesorted_slice.csv: 96,168 time-sorted events "
                "from two hours of 2017-11-26. The full file (about 100 M events) needs a Tianchi "
                "login."
            ),
        ),
        Dataset(
            name="movielens-100k",
            description="MovieLens 100K: 100,000 ratings with unix times; users with zip codes.",
            kind="ratings",
            homepage="https://grouplens.org/datasets/movielens/100k/",
            licence="Research use; not redistributable (see its README).",
            citation=_ML_CITATION,
            files=(
                _ml100k("u.data", "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490", 1_979_173),
                _ml100k("u.user", "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c", 22_628),
                _ml100k("u.item", "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701", 236_344),
                _ml100k("u.genre", "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb", 202),
                _ml100k("u.occupation", "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d", 193),
                _ml100k("README", "b596d1c03060d840c080083631986a0098c4ba2240c6608b5e32a0602739a545", 6_751),
            ),
        ),
        Dataset(
            name="movielens-1m",
            description="MovieLens 1M: 1,000,209 ratings with unix times; users with zip codes.",
            kind="ratings",
            homepage="https://grouplens.org/datasets/movielens/1m/",
            licence="Research use; not redistributable (see its README).",
            citation=_ML_CITATION,
            files=(
                # GroupLens publishes the zip's md5, so the zip itself is the verified file.
                DataFile(
                    "ml-1m.zip", None, None,
                    "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
                    download_md5="c4d9eecfca2ab87c1945afe126590906",
                ),
            ),
        ),
        Dataset(
            name="uci-bike-sharing",
            description="Capital Bikeshare (Washington DC) rentals per hour and per day, 2011-2012, with weather.",
            kind="counts",
            homepage="https://archive.ics.uci.edu/dataset/275/bike+sharing+dataset",
            licence="CC BY 4.0",
            citation=(
                "H. Fanaee-T, J. Gama. Event labeling combining ensemble detectors and background "
                "knowledge. Progress in Artificial Intelligence 2(2-3), 2013."
            ),
            files=(
                DataFile("hour.csv", "681bc2e64d2fbc7b00dbdb2e3470a511a7c9e944318b8298894a49b5b13ef875",
                         1_139_356, _BIKE_ZIP, member="hour.csv"),
                DataFile("day.csv", "0c9be91685cccfc9f8ef72eb41e9eb0585b8cf98850ccfe9676524618900c2b5",
                         72_672, _BIKE_ZIP, member="day.csv"),
                DataFile("Readme.txt", "6f5ca84b8e9495c6c1f4ce48c31a99f96bba9d952c7f694cbbce3cd82332d471",
                         5_496, _BIKE_ZIP, member="Readme.txt"),
            ),
        ),
        Dataset(
            name="montevideo-bus",
            description=(
                "Hourly passenger inflow at 675 bus stops of Montevideo, October 2020, with a "
                "690-edge stop graph (PyTorch Geometric Temporal JSON layout)."
            ),
            kind="graph-series",
            homepage="https://github.com/benedekrozemberczki/pytorch_geometric_temporal",
            licence="Repository MIT; data from Uruguay's open data catalogue (STM).",
            citation=(
                "B. Rozemberczki et al. PyTorch Geometric Temporal: Spatiotemporal Signal "
                "Processing with Neural Machine Learning Models. CIKM 2021."
            ),
            files=(
                DataFile(
                    "montevideo_bus.json",
                    "37d9c6286d474077b5c05173c1570c4da42c387013116daa8862c7a6cab86a75",
                    3_131_884,
                    "https://raw.githubusercontent.com/benedekrozemberczki/"
                    "pytorch_geometric_temporal/master/dataset/montevideo_bus.json",
                ),
            ),
        ),
        Dataset(
            name="metr-la",
            description=(
                "METR-LA loop-detector graph (207 sensors, Gaussian-kernel adjacency) and LOS-LOOP: "
                "one week of 5-minute speeds for the same sensors with its adjacency."
            ),
            kind="graph-series",
            homepage="https://github.com/liyaguang/DCRNN",
            licence="Code MIT; data terms not stated; cite the papers.",
            citation=f"{_DCRNN_CITATION} {_TGCN_CITATION}",
            files=(
                DataFile("adj_mx.pkl", "a35687c6e15aa228dc45027b0ed2a0ea0f4ec78f573deb992c595092d12f61b3",
                         680_459, _DCRNN_RAW + "adj_mx.pkl"),
                DataFile("graph_sensor_ids.txt", "3ba026caa2e6263ab0ea54b0fa1b125dbfa7216544cd05313b555e826292b990",
                         1_448, _DCRNN_RAW + "graph_sensor_ids.txt"),
                DataFile("graph_sensor_locations.csv",
                         "eb8ea96e07358b45d0e4ba3b89c2673fa20c54af50150249e627389e749ade6f",
                         6_341, _DCRNN_RAW + "graph_sensor_locations.csv"),
                DataFile("los_speed.csv", "7b732d86ae32b2930595becba28aff39dacbfb2197e250fc0332e1744ce2cbf4",
                         3_402_125, _TGCN_RAW + "los_speed.csv"),
                DataFile("los_adj.csv", "7a6eb41e10677992b5af50f5ab187c6c05c5c3a92cb973950cfddbf857361e76",
                         111_686, _TGCN_RAW + "los_adj.csv"),
                DataFile("metr-la.h5", None, None, "https://github.com/liyaguang/DCRNN#data-preparation",
                         manual=True),
            ),
            notes="The full METR-LA speeds (metr-la.h5, 34,272 x 207) are linked from the DCRNN README.",
        ),
    ]
}


def get_dataset(name: str) -> Dataset:
    """Return the registered data set ``name``, or raise a ``KeyError`` naming the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown data set {name!r}; registered: {sorted(REGISTRY)} (or 'synthetic')") from None
