"""Policies: from a model's scores to the lists people see, and what those lists do to a city.

A next-visit model (:class:`stlab.protocol.NextVisitModel`) ranks every place for a query. A
*policy* decides what to show. This package holds the pieces a policy is built from and the
measures to compare policies by:

1. **Patterns in the log** (:mod:`stlab.policy.patterns`): frequent ``A -> B`` moves per slot of
   the day with support, confidence and lift; clusters of users by their hour x region profile;
   hotspots, the grid cells where check-ins concentrate. They say what a policy works with.
2. **Context** (:mod:`stlab.policy.ranking`): top-k inside a distance budget from where the user
   stands and among places active at that time of day, with a stated policy when too few qualify.
3. **Re-ranking** (:mod:`stlab.policy.ranking`): maximal marginal relevance (Carbonell & Goldstein,
   1998) trades relevance for variety inside a list; calibration (Steck, 2018) makes a list's
   category mix match the user's. Both re-rank a candidate pool with one ``trade_off`` in
   ``[0, 1]`` whose 0 gives back the ranking by score.
4. **Beyond accuracy** (:mod:`stlab.policy.measures`): coverage, novelty, intra-list diversity,
   popularity bias and exposure inequality beside Acc@k and NDCG@k, one table row per policy.
5. **Guidance** (:mod:`stlab.policy.guidance`): a crowding penalty on forecast load steers demand
   away from places about to overflow; :func:`guidance_curve` traces what users would still
   choose against the load places would carry, as the penalty grows.

Lists are ``[Q, k]`` arrays of place indices, best first, with ``-1`` for an empty position; every
function here accepts them. The package imports no deep-learning framework: scores come from any
model, probabilities from a model's softmax or, in the synthetic world, from the truth.

Introduced in chapter 13 (Recommending and guiding).
"""

from __future__ import annotations

from stlab.policy.guidance import (CrowdingPenalty, DemandModel, LoadForecast, guidance_curve, guided_top_k,
                                   list_shares, load_after, load_report, slot_demand, slot_totals)
from stlab.policy.measures import (average_popularity, coverage, exposure, exposure_gini, gini,
                                   intra_list_diversity, list_accuracy, list_metrics, list_ranks, novelty)
from stlab.policy.patterns import (DaySlots, DensityGrid, UserClusters, density_grid, frequent_transitions, hotspots,
                                   user_clusters, user_profiles)
from stlab.policy.ranking import (CategorySimilarity, DistanceSimilarity, EmbeddingSimilarity, ItemSimilarity,
                                  MatrixSimilarity, active_in_slot, as_similarity, calibrated_rerank,
                                  candidate_pool, category_distribution, masked_top_k, miscalibration, mmr_rerank,
                                  place_distances, query_origin, slot_activity, top_k_nearby, within_distance)

__all__ = [
    # patterns
    "DaySlots", "DensityGrid", "UserClusters", "density_grid", "frequent_transitions", "hotspots", "user_clusters",
    "user_profiles",
    # context and re-ranking
    "CategorySimilarity", "DistanceSimilarity", "EmbeddingSimilarity", "ItemSimilarity", "MatrixSimilarity",
    "active_in_slot", "as_similarity", "calibrated_rerank", "candidate_pool", "category_distribution",
    "masked_top_k", "miscalibration", "mmr_rerank", "place_distances", "query_origin", "slot_activity",
    "top_k_nearby", "within_distance",
    # beyond accuracy
    "average_popularity", "coverage", "exposure", "exposure_gini", "gini", "intra_list_diversity", "list_accuracy",
    "list_metrics", "list_ranks", "novelty",
    # guidance
    "CrowdingPenalty", "DemandModel", "LoadForecast", "guidance_curve", "guided_top_k", "list_shares", "load_after",
    "load_report", "slot_demand", "slot_totals",
]
