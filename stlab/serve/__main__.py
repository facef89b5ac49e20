"""``python -m stlab.serve``: build (or load) the model, replay the event log, serve over HTTP.

Examples (from the repository root)::

    python -m stlab.serve --data synthetic --smoke --db events.sqlite --port 8000
    python -m stlab.serve --data gowalla-nyc --save-state nyc.npz
    python -m stlab.serve --model-state nyc.npz --db nyc-events.sqlite

Then ``POST /recommend``, ``POST /events``, ``GET /health``; the API is documented at ``/docs``.

Introduced in chapter 14 (Testing and running a recommender).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from stlab.data import BBox


def _bbox(text: str) -> BBox:
    try:
        lon_min, lat_min, lon_max, lat_max = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--bbox is lon_min,lat_min,lon_max,lat_max in degrees, got {text!r}") from None
    return BBox(lon_min=lon_min, lat_min=lat_min, lon_max=lon_max, lat_max=lat_max)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m stlab.serve", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    source = parser.add_argument_group("the model")
    source.add_argument("--data", default="synthetic",
                        help="'synthetic', a registered check-in data set (gowalla-nyc, foursquare-nyc, ...) or the "
                             "path of a check-in file (CSV, TSV or Parquet)")
    source.add_argument("--smoke", action="store_true", help="the small synthetic city: starts in about a second")
    source.add_argument("--timezone", help="the city's IANA zone (default: the registered city's; required for a file)")
    source.add_argument("--bbox", type=_bbox, help="the city's box lon_min,lat_min,lon_max,lat_max for cleaning")
    source.add_argument("--min-checkins", type=int, help="k-core threshold for users and POIs (default 3 smoke, 5 else)")
    source.add_argument("--seed", type=int, default=0, help="seed of the synthetic city and of the distance fit")
    source.add_argument("--history-len", type=int, default=20, help="recent check-ins kept per user")
    source.add_argument("--weight", type=float, default=0.5, help="the user model's share of the user + Markov blend")
    source.add_argument("--smoothing", type=float, default=1.0, help="the Markov chain's smoothing a")
    source.add_argument("--model-state", help="start from a state file written by --save-state (no data is loaded)")
    source.add_argument("--save-state", help="after building, write the model's state here (an .npz of arrays)")
    service = parser.add_argument_group("the service")
    service.add_argument("--db", default="events.sqlite", help="the SQLite event log (created if missing)")
    service.add_argument("--host", default="127.0.0.1", help="address to listen on")
    service.add_argument("--port", type=int, default=8000, help="port to listen on")
    service.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import uvicorn

    from stlab.serve.app import create_app
    from stlab.serve.model import (
        Recommender,
        ServeConfig,
        build_recommender,
        load_service_data,
    )

    try:
        if args.model_state:
            recommender = Recommender.load(args.model_state)
            label = f"state {args.model_state}"
        else:
            config = ServeConfig(history_len=args.history_len, weight=args.weight, smoothing=args.smoothing,
                                 seed=args.seed)
            data = load_service_data(args.data, smoke=args.smoke, seed=args.seed, timezone=args.timezone,
                                     bbox=args.bbox, min_checkins=args.min_checkins)
            recommender, label = build_recommender(data, config), data.label
        if args.save_state:
            digest = recommender.save(args.save_state)
            print(f"stlab.serve: model state written to {args.save_state} (sha256 {digest})", file=sys.stderr)
        app = create_app(recommender, args.db, data_label=label)
    except (ValueError, FileNotFoundError) as err:
        print(f"stlab.serve: error: {err}", file=sys.stderr)
        return 2
    service = app.state.service
    print(f"stlab.serve: {recommender.name} on {label}: {recommender.num_users:,} users, {recommender.num_pois:,} "
          f"POIs; replayed {service.events_replayed:,} check-ins from {args.db} in {service.replay_seconds:.2f} s; "
          f"listening on http://{args.host}:{args.port}", file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    sys.exit(main())
