"""Models that keep learning after deployment, and the prequential evaluation that measures them.

A model evaluated once on a fixed test period answers "how good was it on the day it shipped".
A deployed recommender lives on: users keep checking in, places rise and fall, and every night
(or every event) the system may learn what it has just seen. **Prequential evaluation**
("test-then-train", Dawid 1984; Gama et al., 2013) measures that life: the evaluation period is
replayed one local day at a time, and each day

1. the day's queries are scored with the model as it stands (full ranking, the rank of the true
   POI, exactly as :func:`stlab.protocol.query_ranks` does), then
2. the model learns the day's check-ins, and the seconds that took are recorded.

On day ``d`` the model has learned only events before day ``d``: the day's own check-ins become
training data only after they have been predicted. (Queries still carry their history, which
includes the user's earlier check-ins of the same day, as in the book's protocol: a deployed
system has logged them by then. What learning changes is the model's parameters or counts.)

A :class:`Strategy` says how a model keeps up:

* :class:`Frozen` -- trained once on the training events, never again.
* :class:`Incremental` -- the model updates itself with each day's check-ins (any model that is
  :class:`Updatable`): :class:`OnlineCountModel`, whose counts simply grow, or
  :class:`FineTunedTransformer`, chapter 8's Transformer fine-tuned for a few gradient steps on
  the day's check-ins at a small learning rate.
* :class:`NightlyRetrain` -- refitted from scratch every night on everything logged so far
  (:func:`training_until`).

For a count model, incremental updates and nightly retraining give the *same* model (counts
add), at a fraction of the cost; for a neural model they do not, and the prequential curves show
what the difference buys.

Introduced in chapter 14 (Testing and running a recommender).
"""

from stlab.online.models import (
    NO_TIME,
    FineTunedTransformer,
    OnlineCountModel,
    Updatable,
    queries_at,
    training_until,
)
from stlab.online.replay import (
    Frozen,
    Incremental,
    ModelSource,
    NightlyRetrain,
    PrequentialResult,
    Strategy,
    prequential,
    prequential_curves,
    prequential_table,
    replay_days,
)

__all__ = [
    "NO_TIME", "FineTunedTransformer", "Frozen", "Incremental", "ModelSource", "NightlyRetrain", "OnlineCountModel",
    "PrequentialResult", "Strategy", "Updatable", "prequential", "prequential_curves", "prequential_table",
    "queries_at", "replay_days", "training_until",
]
