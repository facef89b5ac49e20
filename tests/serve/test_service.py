"""The recommendation service: answers, validation, cold start, learning from posted check-ins,
and a durable log -- nothing acknowledged is lost, not even to ``kill -9``."""

from __future__ import annotations

import copy
import json
import sqlite3
import threading

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient

from stlab.features import haversine_km
from stlab.serve import (
    CheckIn,
    Recommender,
    ServeConfig,
    build_recommender,
    create_app,
    load_service_data,
    run_in_background,
)
from stlab.serve.__main__ import main

WHEN = "2010-03-20T12:30:00-04:00"  # a week after the smoke city's last day


@pytest.fixture(scope="module")
def base() -> Recommender:
    return build_recommender(load_service_data("synthetic", smoke=True))


@pytest.fixture
def recommender(base) -> Recommender:
    return copy.deepcopy(base)  # every test changes its own


@pytest.fixture
def client(recommender, tmp_path):
    with TestClient(create_app(recommender, tmp_path / "events.sqlite", data_label="smoke city")) as test_client:
        yield test_client


def ranking(client, user, **extra):
    response = client.post("/recommend", json={"user": user, "time": WHEN, "k": 1000, **extra})
    assert response.status_code == 200, response.text
    return response.json()


def rank_of(answer, poi):
    return next(item["rank"] for item in answer["items"] if item["poi"] == poi)


# --------------------------------------------------------------------------- answers

def test_health_describes_the_model_and_the_log(client, recommender):
    health = client.get("/health").json()
    assert health["status"] == "ok" and health["data"] == "smoke city"
    assert (health["users"], health["pois"]) == (recommender.num_users, recommender.num_pois)
    assert health["events_learned"] == recommender.num_events > 0
    assert health["events_stored"] == health["events_replayed"] == 0
    assert health["base_fingerprint"] == recommender.base_fingerprint


def test_a_known_user_gets_k_ranked_pois_with_coordinates(client, recommender):
    user = recommender.user_ids[0]
    answer = client.post("/recommend", json={"user": user, "time": WHEN, "lat": 40.75, "lon": -73.98, "k": 5}).json()
    assert answer["cold_start"] is False and answer["k"] == 5 and answer["user"] == str(user)
    items = answer["items"]
    assert [item["rank"] for item in items] == [1, 2, 3, 4, 5]
    scores = [item["score"] for item in items]
    assert scores == sorted(scores, reverse=True) and 0 < scores[0] <= 1
    for item in items:
        index = recommender.poi_index(item["poi"])
        assert (item["lat"], item["lon"]) == (recommender.poi_lat[index], recommender.poi_lon[index])
    # Ids are compared as text; k beyond the catalogue gives the whole catalogue.
    assert ranking(client, str(user))["items"][:5] == items
    assert len(ranking(client, user)["items"]) == recommender.num_pois


def test_the_answer_is_the_online_model_of_the_prequential_evaluation(client, recommender):
    user = recommender.user_ids[1]
    answer = ranking(client, user)
    index = recommender.user_index(user)
    query = recommender._query(index, int(pd.Timestamp(WHEN).timestamp()), 12, 5)
    scores = recommender.model.score(query)[0]
    np.testing.assert_allclose([item["score"] for item in answer["items"]], np.sort(scores)[::-1])


@pytest.mark.parametrize(("body", "field"), [
    ({"time": "2010-03-20T12:30:00"}, "time"),  # no offset
    ({"time": "yesterday evening"}, "time"),
    ({"time": 1269102600}, "time"),  # seconds or milliseconds? refused
    ({"lat": 90.5, "lon": 0.0}, "lat"),
    ({"lat": 40.0, "lon": -180.5}, "lon"),
    ({"lat": 40.0}, "lon"),  # one coordinate without the other
    ({"lat": float("nan"), "lon": 0.0}, "lat"),
    ({"k": 0}, "k"),
    ({"k": -3}, "k"),
    ({"k": 100_000}, "k"),
    ({"user": ""}, "user"),
    ({"user": True}, "user"),
    ({"colour": "blue"}, "colour"),  # unknown fields are refused, not ignored
])
def test_a_malformed_recommend_request_gets_422_naming_the_field(client, recommender, body, field):
    request = {"user": recommender.user_ids[0], "time": WHEN, "k": 5, **body}
    # Python's json writes NaN as the bare token NaN, which the service reads (and must refuse).
    response = client.post("/recommend", content=json.dumps(request), headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    locations = [error["loc"] for error in response.json()["detail"]]
    assert ["body", field] in locations, locations


@pytest.mark.parametrize(("body", "location"), [
    ({"user": 1, "poi": 2}, ["body", 0, "time"]),
    ({"user": 1, "poi": 2, "time": "2010-03-20T12:00:00"}, ["body", 0, "time"]),
    ([{"user": 1, "poi": 2, "time": WHEN}, {"user": 1, "time": WHEN}], ["body", 1, "poi"]),
    ({"user": 1, "poi": 2, "time": WHEN, "lat": 10.0}, ["body", 0, "lon"]),
    ([], ["body"]),
])
def test_a_malformed_check_in_gets_422_and_nothing_is_stored(client, body, location):
    response = client.post("/events", json=body)
    assert response.status_code == 422, response.text
    assert location in [error["loc"] for error in response.json()["detail"]]
    assert client.get("/health").json()["events_stored"] == 0


def test_a_check_in_at_an_unknown_place_needs_its_coordinates(client, recommender):
    user = recommender.user_ids[0]
    refused = client.post("/events", json={"user": user, "poi": "new cafe", "time": WHEN})
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["loc"] == ["body", 0, "poi"] and "lat and lon" in refused.json()["detail"][0]["msg"]
    lat, lon = float(recommender.poi_lat[0]), float(recommender.poi_lon[0])
    accepted = client.post("/events", json=[{"user": user, "poi": "new cafe", "time": WHEN, "lat": lat, "lon": lon},
                                            {"user": user, "poi": "new cafe", "time": "2010-03-20T18:00:00-04:00"}])
    assert accepted.status_code == 200 and accepted.json()["accepted"] == 2
    assert client.get("/health").json()["pois"] == recommender.num_pois
    assert "new cafe" in [item["poi"] for item in ranking(client, user)["items"][:3]]


# --------------------------------------------------------------------------- cold start

def test_an_unknown_user_gets_the_cold_start_answer_near_them(client, recommender):
    here, there = (40.70, -74.02), (40.82, -73.95)
    near_here = ranking(client, "someone new", lat=here[0], lon=here[1])
    near_there = ranking(client, "someone new", lat=there[0], lon=there[1])
    anywhere = ranking(client, "someone new")
    assert near_here["cold_start"] and near_there["cold_start"] and anywhere["cold_start"]

    def mean_km(answer, place):
        top = answer["items"][:10]
        return haversine_km(place[0], place[1], np.array([i["lat"] for i in top]), np.array([i["lon"] for i in top])).mean()

    assert mean_km(near_here, here) < mean_km(anywhere, here)
    assert mean_km(near_there, there) < mean_km(near_here, there)
    # Without a place: what is popular at this hour, which differs from what is popular at 3 a.m.
    at_night = ranking(client, "someone new", time="2010-03-20T03:00:00-04:00")
    assert [i["poi"] for i in at_night["items"][:5]] != [i["poi"] for i in anywhere["items"][:5]]
    assert sum(i["score"] for i in anywhere["items"]) == pytest.approx(1.0)


def test_a_new_user_is_known_after_a_first_check_in(client, recommender):
    poi = recommender.poi_ids[5]
    assert ranking(client, "newcomer")["cold_start"]
    assert client.post("/events", json={"user": "newcomer", "poi": poi, "time": WHEN}).status_code == 200
    answer = ranking(client, "newcomer")
    assert not answer["cold_start"]
    assert client.get("/health").json()["users"] == recommender.num_users


# --------------------------------------------------------------------------- learning

def test_posted_visits_raise_the_place_for_that_user(client, recommender):
    user = recommender.user_ids[2]
    before = ranking(client, user)
    poi = before["items"][-1]["poi"]  # the user's least likely place
    other = recommender.user_ids[3]
    other_before = rank_of(ranking(client, other), poi)
    visits = [{"user": user, "poi": poi, "time": f"2010-03-2{d}T1{d}:00:00-04:00"} for d in range(3)]
    assert client.post("/events", json=visits).json()["accepted"] == 3
    after = ranking(client, user)
    assert rank_of(after, poi) < rank_of(before, poi) and rank_of(after, poi) <= 3
    # Another user sees the place a little more popular, nothing like the visitor's change.
    assert rank_of(ranking(client, other), poi) >= rank_of(after, poi)
    assert other_before - rank_of(ranking(client, other), poi) < rank_of(before, poi) - rank_of(after, poi)


def test_a_retried_check_in_is_counted_once(client, recommender):
    event = {"user": recommender.user_ids[0], "poi": recommender.poi_ids[0], "time": WHEN, "event_id": "phone-17"}
    first = client.post("/events", json=event).json()
    learned = client.get("/health").json()["events_learned"]
    again = client.post("/events", json=[event, {**event, "event_id": "phone-18"}]).json()
    assert (first["accepted"], first["duplicates"]) == (1, 0)
    assert (again["accepted"], again["duplicates"]) == (1, 1) and again["ids"][0] is None
    health = client.get("/health").json()
    assert health["events_stored"] == 2 and health["events_learned"] == learned + 1


# --------------------------------------------------------------------------- durability

def post_some(client, recommender, n: int) -> list[str]:
    rng = np.random.default_rng(0)
    ids = []
    for i in range(n):
        ids.append(f"e{i}")
        event = {"user": recommender.user_ids[int(rng.integers(5))], "poi": recommender.poi_ids[int(rng.integers(30))],
                 "time": f"2010-03-21T{8 + i % 12:02d}:{i % 60:02d}:00-04:00", "event_id": ids[-1]}
        assert client.post("/events", json=event).status_code == 200
    return ids


def test_a_restart_replays_the_log_into_the_model(base, tmp_path):
    db = tmp_path / "events.sqlite"
    with TestClient(create_app(copy.deepcopy(base), db)) as first:
        post_some(first, base, 25)
        expected = [ranking(first, u) for u in base.user_ids[:5]]
        learned = first.get("/health").json()["events_learned"]
    with TestClient(create_app(copy.deepcopy(base), db)) as second:
        health = second.get("/health").json()
        assert health["events_replayed"] == health["events_stored"] == 25
        assert health["events_learned"] == learned
        assert [ranking(second, u) for u in base.user_ids[:5]] == expected


def test_a_log_is_only_replayed_into_the_model_it_was_written_for(base, tmp_path):
    db = tmp_path / "events.sqlite"
    with TestClient(create_app(copy.deepcopy(base), db)) as client:
        post_some(client, base, 2)
    other = build_recommender(load_service_data("synthetic", smoke=True), ServeConfig(weight=0.7))
    with pytest.raises(ValueError, match="another model"):
        create_app(other, db)
    served = copy.deepcopy(base)
    served.learn([CheckIn(user_id="someone", poi_id=str(base.poi_ids[0]), time=1_269_000_000)])
    with pytest.raises(ValueError, match="twice"):
        create_app(served, tmp_path / "fresh.sqlite")


def test_a_saved_state_serves_the_same_answers(base, tmp_path):
    digest = base.save(tmp_path / "state.npz")
    assert len(digest) == 64
    loaded = Recommender.load(tmp_path / "state.npz")
    assert loaded.base_fingerprint == base.base_fingerprint and loaded.user_ids == base.user_ids
    when = pd.Timestamp(WHEN)
    for user in [*base.user_ids[:3], "someone new"]:
        pd.testing.assert_frame_equal(loaded.recommend(user, when, lat=40.7, lon=-74.0).items,
                                      base.recommend(user, when, lat=40.7, lon=-74.0).items)
    (tmp_path / "bogus.npz").write_bytes(b"not a state")
    with pytest.raises(ValueError):
        Recommender.load(tmp_path / "bogus.npz")
    with pytest.raises(FileNotFoundError, match="save-state"):
        Recommender.load(tmp_path / "missing.npz")


def test_the_command_line_explains_what_is_missing(tmp_path, capsys):
    checkins = tmp_path / "mine.csv"
    checkins.write_text("user_id,poi_id,timestamp,lat,lon\n1,10,2024-05-06 08:15:00,48.85,2.35\n")
    assert main(["--data", str(checkins), "--db", str(tmp_path / "e.sqlite")]) == 2
    assert "name the time zone" in capsys.readouterr().err  # a file's zone cannot be guessed
    assert main(["--data", "no-such-data", "--db", str(tmp_path / "e.sqlite")]) == 2
    assert "unknown check-in data set" in capsys.readouterr().err


def test_a_service_in_this_process_serves_concurrent_posts(tmp_path):
    with run_in_background("synthetic", tmp_path / "events.sqlite", smoke=True, in_process=True) as service:
        start = service.health()
        users, pois = start["users"], start["pois"]
        assert start["events_stored"] == 0

        def post(worker: int) -> None:
            with service.client() as http:
                for i in range(10):
                    event = {"user": f"w{worker}", "poi": f"p{i}", "time": WHEN, "lat": 40.7, "lon": -74.0}
                    assert http.post("/events", json=event).status_code == 200

        threads = [threading.Thread(target=post, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        end = service.health()
    assert end["events_stored"] == 40 and end["events_learned"] == start["events_learned"] + 40
    assert (end["users"], end["pois"]) == (users + 4, pois + 10)


def test_kill_9_loses_no_acknowledged_check_in(tmp_path):
    """A service in a subprocess acknowledges check-ins, is killed with SIGKILL, restarts on
    the same log: every acknowledged check-in is there and learned again."""
    db = tmp_path / "events.sqlite"
    service = run_in_background("synthetic", db, smoke=True)
    try:
        health = service.health()
        with service.client() as http:
            users = [int(u) for u in np.unique(load_service_data("synthetic", smoke=True).checkins["user_id"])[:3]]
            acknowledged = []
            for i in range(40):
                event = {"user": users[i % 3], "poi": f"kiosk {i % 4}", "lat": 40.7 + i % 4 / 100, "lon": -74.0,
                         "time": f"2010-03-21T{8 + i % 12:02d}:{i:02d}:00-04:00", "event_id": f"k{i}"}
                batch = [event] if i % 2 else [event, {**event, "event_id": f"k{i}b"}]
                response = http.post("/events", json=batch)
                assert response.status_code == 200
                acknowledged += [e["event_id"] for e in batch]
            before = [http.post("/recommend", json={"user": u, "time": WHEN, "k": 10}).json() for u in users]
        service.kill()
        assert not service.running
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as log:
            stored = {row[0] for row in log.execute("SELECT event_id FROM events")}
        assert set(acknowledged) <= stored and len(stored) == len(acknowledged) == 60
        service.restart()
        after_health = service.health()
        assert after_health["events_replayed"] == after_health["events_stored"] == len(acknowledged)
        assert after_health["events_learned"] == health["events_learned"] + len(acknowledged)
        with service.client() as http:
            after = [http.post("/recommend", json={"user": u, "time": WHEN, "k": 10}).json() for u in users]
        assert after == before  # the replayed model is the model that was killed
    finally:
        service.stop()
    assert "Traceback" not in service.log()


def test_a_service_can_start_from_a_saved_state(base, tmp_path):
    base.save(tmp_path / "state.npz")
    with run_in_background(model_state=tmp_path / "state.npz", db=tmp_path / "events.sqlite", in_process=True) as service:
        health = service.health()
        assert health["base_fingerprint"] == base.base_fingerprint and health["events_learned"] == base.num_events
        with service.client() as http:
            answer = http.post("/recommend", json={"user": base.user_ids[0], "time": WHEN, "k": 3}).json()
    expected = base.recommend(base.user_ids[0], pd.Timestamp(WHEN), k=3).items
    assert [item["poi"] for item in answer["items"]] == list(expected["poi"])
