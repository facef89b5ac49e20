"""Online learning and prequential evaluation: counts that grow as if refitted, replays that
never score a day with its own check-ins, and strategies that are reproducible."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stlab.baselines import Markov, UserFrequency, UserMarkovBlend
from stlab.cleaning import CleaningConfig
from stlab.data import NYC_BBOX, SyntheticWorld, WorldConfig
from stlab.online import (
    FineTunedTransformer,
    Frozen,
    Incremental,
    NightlyRetrain,
    OnlineCountModel,
    prequential,
    prequential_curves,
    prequential_table,
    queries_at,
    replay_days,
    training_until,
)
from stlab.protocol import NotFittedError, build_task, query_ranks
from stlab.splits import clean_and_split, per_user_split

TIMEZONE = "America/New_York"
EVERYTHING = np.iinfo(np.int64).max  # a cutoff after every event


@pytest.fixture(scope="module")
def task():
    # Two weeks from 1 March 2010: the replayed days include 14 March, when New York's clocks
    # went forward.
    world = SyntheticWorld(WorldConfig(num_users=30, num_pois=80, num_days=14, seed=7))
    checkins, split, _ = clean_and_split(world.checkins, CleaningConfig(bbox=NYC_BBOX, min_user_checkins=3,
                                                                        min_poi_checkins=3))
    return build_task(checkins, split, timezone=TIMEZONE, history_len=4)


def later_events_by_day(task):
    """The validation and test events, one frame per local day, in time order."""
    later = task.events[task.events["part"] > 0]
    day = pd.to_datetime(later["time"], unit="s", utc=True).dt.tz_convert(TIMEZONE).dt.date
    return [frame for _, frame in later.groupby(day.to_numpy(), sort=True)]


def assert_same_counts(a: OnlineCountModel, b: OnlineCountModel) -> None:
    np.testing.assert_array_equal(a.user_poi_counts.toarray(), b.user_poi_counts.toarray())
    np.testing.assert_array_equal(a.transition_counts.toarray(), b.transition_counts.toarray())
    for name in ("popularity_", "hour_counts_", "out_degree_", "last_poi_", "last_time_"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.num_events_ == b.num_events_


# --------------------------------------------------------------------------- the count model

@pytest.mark.parametrize("part", ["val", "test"])
def test_fitted_on_training_it_scores_as_the_blend_of_chapter_4(task, part):
    queries = task.queries(part)
    for weight in (0.0, 0.3, 1.0):
        online = OnlineCountModel(weight=weight, smoothing=2.0).fit(task).score(queries)
        blend = UserMarkovBlend(weight=weight, smoothing=2.0).fit(task).score(queries)
        np.testing.assert_array_equal(online, blend)
    # With a maximum gap, weight 0 is chapter 4's Markov chain with that gap.
    online = OnlineCountModel(weight=0.0, max_gap_hours=12).fit(task).score(queries)
    np.testing.assert_array_equal(online, Markov(max_gap_hours=12).fit(task).score(queries))


@pytest.mark.parametrize("max_gap_hours", [None, 6.0])
def test_learning_day_by_day_equals_fitting_on_all_of_it(task, max_gap_hours):
    incremental = OnlineCountModel(max_gap_hours=max_gap_hours).fit(task)
    for day in later_events_by_day(task):
        incremental.learn(day)
    scratch = OnlineCountModel(max_gap_hours=max_gap_hours).fit(training_until(task, EVERYTHING))
    assert_same_counts(incremental, scratch)
    queries = task.queries("test")
    np.testing.assert_array_equal(incremental.score(queries), scratch.score(queries))


@pytest.mark.parametrize("arrival", ["by time", "shuffled"])
def test_one_event_at_a_time_equals_one_batch(task, arrival):
    """Learning is a stream: batches do not matter, only the order, even with late check-ins."""
    later = task.events[task.events["part"] > 0].sort_values("time", kind="stable")
    if arrival == "shuffled":  # many check-ins now arrive after later ones of their user
        later = later.iloc[np.random.default_rng(0).permutation(len(later))]
    one_by_one = OnlineCountModel(max_gap_hours=24).fit(task)
    for i in range(len(later)):
        one_by_one.learn(later.iloc[[i]])
    assert_same_counts(one_by_one, OnlineCountModel(max_gap_hours=24).fit(task).learn(later))
    in_two = OnlineCountModel(max_gap_hours=24).fit(task).learn(later.iloc[:50]).learn(later.iloc[50:])
    assert_same_counts(one_by_one, in_two)
    if arrival == "by time":  # every check-in in order: the same counts as a refit
        assert_same_counts(one_by_one, OnlineCountModel(max_gap_hours=24).fit(training_until(task, EVERYTHING)))


def test_a_late_event_counts_as_a_visit_but_not_as_a_move(task):
    model = OnlineCountModel().fit(task)
    user = int(task.train["user"].iloc[0])
    last_poi, last_time = int(model.last_poi_[user]), int(model.last_time_[user])
    moves_before = model.transition_counts
    events = pd.DataFrame({"user": user, "poi": [3, 4, 5], "hour": 5,
                           "time": [last_time + 60, last_time - 3600, last_time + 120]})  # the second is late
    model.learn(events)
    added = (model.transition_counts - moves_before).toarray()
    expected = np.zeros_like(added)
    expected[last_poi, 3] += 1
    expected[3, 5] += 1  # the trail skips the late check-in
    np.testing.assert_array_equal(added, expected)
    assert (model.last_poi_[user], model.last_time_[user]) == (5, last_time + 120)
    assert model.user_poi_counts[user, 4] >= 1 and model.num_events_ == len(task.train) + 3


def test_growing_makes_room_for_new_users_and_pois(task):
    model = OnlineCountModel().fit(task)
    U, P = task.num_users, task.num_pois
    new_event = pd.DataFrame({"user": [U], "poi": [P], "time": [2_000_000_000], "hour": [9]})
    with pytest.raises(ValueError, match="grow"):
        model.learn(new_event)
    model.grow(U + 1, P + 1).learn(new_event)
    assert model.user_poi_counts.shape == (U + 1, P + 1)
    assert model.user_poi_counts[U, P] == 1 and model.popularity_[P] == 1 and model.last_poi_[U] == P


def test_state_round_trips_through_an_npz_file_without_pickle(task, tmp_path):
    model = OnlineCountModel(weight=0.7).fit(task).learn(task.events[task.events["part"] > 0])
    np.savez(tmp_path / "state.npz", **model.state_dict())
    with np.load(tmp_path / "state.npz", allow_pickle=False) as stored:
        again = OnlineCountModel(**model.params()).load_state_dict(dict(stored))
    assert_same_counts(model, again)
    queries = task.queries("test")
    np.testing.assert_array_equal(again.score(queries), model.score(queries))


def test_scoring_or_learning_before_fit_is_refused(task):
    with pytest.raises(NotFittedError, match="fit"):
        OnlineCountModel().score(task.queries("test"))
    with pytest.raises(NotFittedError, match="fit"):
        OnlineCountModel().learn(task.train)
    with pytest.raises(ValueError, match="hour"):
        OnlineCountModel().fit(task).learn(task.train.drop(columns="hour"))


def test_cold_start_hour_popularity_follows_the_hour(task):
    model = OnlineCountModel().fit(task)
    table = model.hour_popularity(np.arange(24))
    assert table.shape == (24, task.num_pois) and (table > 0).all()
    busiest = task.train.groupby("hour")["poi"].agg(lambda p: p.value_counts().index[0])
    hour = int(task.train["hour"].value_counts().index[0])
    assert table[hour].argmax() == busiest[hour]


# --------------------------------------------------------------------------- tasks and queries

def test_training_until_moves_the_cut_and_keeps_rows(task):
    start = int(replay_days(task)["start"].iloc[2])
    view = training_until(task, start)
    part = view.events["part"].to_numpy()
    assert set(np.unique(part)) <= {0, 2}  # nothing left to validate on: early stopping cannot peek
    assert (view.events["time"].to_numpy()[part == 0] < start).all()
    assert (view.events["time"].to_numpy()[part == 2] >= start).all()
    pd.testing.assert_frame_equal(view.events.drop(columns="part"), task.events.drop(columns="part"))


def test_queries_at_rows_are_the_task_queries(task):
    for code, part in ((1, "val"), (2, "test")):
        rows = np.flatnonzero(task.events["part"].to_numpy() == code)
        got, expected = queries_at(task, rows), task.queries(part)
        for field in expected.__dataclass_fields__:
            np.testing.assert_array_equal(getattr(got, field), getattr(expected, field), err_msg=field)


def test_replay_days_start_at_local_midnight_across_a_clock_change(task):
    days = replay_days(task)
    local = pd.to_datetime(days["start"], unit="s", utc=True).dt.tz_convert(TIMEZONE)
    assert (local.dt.hour == 0).all() and (local.dt.minute == 0).all()
    assert (local.dt.date == days["day"].dt.date).all()
    assert pd.Timestamp("2010-03-14") in set(days["day"])  # the day the clocks went forward
    later = task.events[task.events["part"] > 0]
    assert days["events"].sum() == len(later)
    assert days["queries"].sum() == len(task.queries("val")) + len(task.queries("test"))


# --------------------------------------------------------------------------- prequential replay

def test_a_frozen_model_ranks_as_query_ranks(task):
    model = UserMarkovBlend(weight=0.5).fit(task)
    result = prequential(task, Frozen(model))
    expected = pd.concat([
        pd.DataFrame({"user": q.user, "time": q.time, "target": q.target, "rank": query_ranks(model, q)})
        for q in (task.queries("val"), task.queries("test"))])
    merged = result.ranks.merge(expected, on=["user", "time", "target"], suffixes=("", " expected"))
    assert len(merged) == len(result.ranks) == len(expected)
    np.testing.assert_array_equal(merged["rank"], merged["rank expected"])
    assert result.daily["queries"].sum() == len(expected)
    assert result.catch_up_seconds == 0.0


def test_no_day_is_scored_with_what_the_model_learns_from_it(task):
    """Day d's ranks are those of a model fitted from scratch on everything before day d. A
    replay that learned a day before scoring it would match the model fitted through day d."""
    result = prequential(task, Incremental(OnlineCountModel()))
    days = replay_days(task)
    frames = later_events_by_day(task)
    assert len(frames) == len(days)
    learning_the_day_changes_its_ranks = False
    for i, (day, start, frame) in enumerate(zip(days["day"], days["start"], frames)):
        on_day = result.ranks.loc[result.ranks["day"] == day, "rank"].to_numpy()
        before = OnlineCountModel().fit(training_until(task, int(start)))
        np.testing.assert_array_equal(on_day, query_ranks(before, queries_at(before.task, frame.index)),
                                      err_msg=str(day))
        if i + 1 < len(days):
            leaky = OnlineCountModel().fit(training_until(task, int(days["start"].iloc[i + 1])))
            leaky_ranks = query_ranks(leaky, queries_at(leaky.task, frame.index))
            learning_the_day_changes_its_ranks |= not np.array_equal(leaky_ranks, on_day)
    assert learning_the_day_changes_its_ranks, "the check has no power: learning a day would not change its ranks"


class Spy(OnlineCountModel):
    """Logs, each time it scores, the latest check-in it was fitted on, the latest it learned by
    updates since, and the earliest query."""

    def __init__(self, log: list[tuple[int, int, int]]) -> None:
        super().__init__()
        self.log = log

    def fit(self, task):
        self.latest_fitted, self.latest_update = int(task.train["time"].max()), np.iinfo(np.int64).min
        return super().fit(task)

    def update(self, task, new_events):
        if len(new_events):
            self.latest_update = max(self.latest_update, int(new_events["time"].max()))
        super().update(task, new_events)

    def score(self, queries):
        self.log.append((self.latest_fitted, self.latest_update, int(queries.time.min())))
        return super().score(queries)


@pytest.mark.parametrize("parts", [("val", "test"), ("test",)])
def test_a_model_has_learned_nothing_from_the_day_it_scores(task, parts):
    """Updates stop at the start of the day scored; the training events precede every query
    (the first day may begin with training events, before the split's cut)."""
    log: list[tuple[int, int, int]] = []
    prequential(task, Incremental(lambda: Spy(log)), parts=parts)
    days = replay_days(task, parts)
    assert len(log) == len(days) and (days["queries"] > 0).all()
    for (latest_fitted, latest_update, earliest_query), start in zip(log, days["start"]):
        assert latest_fitted < earliest_query
        assert latest_update < start <= earliest_query


def test_incremental_counts_match_nightly_retraining(task):
    incremental = prequential(task, Incremental(OnlineCountModel()))
    nightly = prequential(task, NightlyRetrain(OnlineCountModel))
    nightly_blend = prequential(task, NightlyRetrain(lambda: UserMarkovBlend(weight=0.5)))
    pd.testing.assert_frame_equal(incremental.ranks, nightly.ranks)
    pd.testing.assert_frame_equal(incremental.ranks, nightly_blend.ranks)
    assert (incremental.daily["events learned"].iloc[:-1] > 0).all()


def test_replaying_only_the_test_days_first_catches_up_on_validation(task):
    result = prequential(task, Incremental(OnlineCountModel()), parts=("test",))
    start = int(replay_days(task, ("test",))["start"].iloc[0])
    first_day = result.ranks[result.ranks["day"] == result.daily["day"].iloc[0]]
    caught_up = OnlineCountModel().fit(training_until(task, start))
    queries = task.queries("test")
    queries = queries.subset(np.isin(queries.time, first_day["time"]))
    np.testing.assert_array_equal(first_day["rank"].to_numpy(), query_ranks(caught_up, queries))
    assert result.catch_up_seconds > 0
    assert len(result.ranks) == len(task.queries("test"))


def test_a_replay_is_reproducible(task):
    runs = [prequential(task, Incremental(OnlineCountModel())) for _ in range(2)]
    timing = ["update seconds", "score seconds"]
    pd.testing.assert_frame_equal(runs[0].daily.drop(columns=timing), runs[1].daily.drop(columns=timing))
    pd.testing.assert_frame_equal(runs[0].ranks, runs[1].ranks)


def test_replays_refuse_what_they_cannot_measure(task):
    with pytest.raises(TypeError, match="NightlyRetrain"):
        prequential(task, Incremental(UserFrequency()))
    with pytest.raises(ValueError, match="'val' and/or 'test'"):
        prequential(task, Frozen(UserFrequency()), parts=("train",))
    world = SyntheticWorld(WorldConfig(num_users=10, num_pois=30, num_days=5, seed=1))
    checkins = world.checkins.drop_duplicates(["user_id", "timestamp"]).reset_index(drop=True)
    leave_last_out = build_task(checkins, per_user_split(checkins), timezone=TIMEZONE, history_len=2)
    with pytest.raises(ValueError, match="temporal split"):
        prequential(leave_last_out, Frozen(UserFrequency()))


def test_tables_and_curves(task):
    results = [prequential(task, Frozen(UserMarkovBlend(), label="frozen")),
               prequential(task, Incremental(OnlineCountModel(), label="incremental"))]
    table = prequential_table(results)
    assert list(table.index) == ["frozen", "incremental"]
    assert table.loc["frozen", "MRR"] == pytest.approx(results[0].metrics()["MRR"])
    curves = prequential_curves(results, "Acc@10")
    assert curves.shape == (len(replay_days(task)), 2)
    np.testing.assert_allclose(curves["frozen"], results[0].daily["Acc@10"])
    pooled = prequential_curves(results, window=len(curves))
    assert pooled["incremental"].iloc[-1] == pytest.approx(results[1].metrics()["MRR"])
    with pytest.raises(ValueError, match="distinct labels"):
        prequential_curves([results[0], results[0]])
    with pytest.raises(ValueError, match="metric"):
        prequential_curves(results, "NDCG@5")


# --------------------------------------------------------------------------- fine-tuning

def test_a_fine_tuned_transformer_learns_each_day_and_leaves_its_base_alone(task):
    pytest.importorskip("torch")
    from stlab.models.attention.config import TransformerConfig
    from stlab.models.torch.attention import TransformerNextVisit

    config = TransformerConfig(d_model=8, num_heads=2, ffn_dim=16, num_epochs=1, device="cpu", progress=False)
    base = TransformerNextVisit(config).fit(task)
    before = base.export_weights()
    frozen = prequential(task, Frozen(base))
    tuned = [prequential(task, Incremental(FineTunedTransformer(base, steps=3, lr=5e-3))) for _ in range(2)]
    for name, weights in base.export_weights().items():
        np.testing.assert_array_equal(weights, before[name], err_msg=f"the base model's {name} changed")
    first = frozen.daily["day"].iloc[0]
    # Day one is scored before any update; later days by weights that have moved.
    np.testing.assert_array_equal(tuned[0].ranks.loc[tuned[0].ranks["day"] == first, "rank"],
                                  frozen.ranks.loc[frozen.ranks["day"] == first, "rank"])
    assert not tuned[0].ranks["rank"].equals(frozen.ranks["rank"])
    pd.testing.assert_frame_equal(tuned[0].ranks, tuned[1].ranks)  # seeded: the same run twice
    assert (tuned[0].daily["update seconds"].iloc[:-1] > 0).all()
    with pytest.raises(ValueError, match="fitted on another task"):
        FineTunedTransformer(TransformerNextVisit(config)).fit(task)
