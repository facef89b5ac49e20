"""Graph models in PyTorch: a graph convolution from its equation, LightGCN and a graph-attention
next-POI model, the last two behind the book's next-visit interface.

* :class:`GCNLayer` -- ``H' = S H W + b`` with the normalised adjacency ``S`` of
  :func:`stlab.graphs.gcn_propagation` (Kipf & Welling, ICLR 2017), a sparse matrix product and
  nothing else; the tests check it against PyTorch Geometric's ``GCNConv``.
* :class:`LightGCN` -- LightGCN (He et al., SIGIR 2020) on the user--POI graph, trained with the
  BPR loss (Rendle et al., UAI 2009). With ``num_layers=0`` it *is* BPR matrix factorisation.
* :class:`GATNextPOI` -- POI embeddings refined by one graph-attention layer (Veličković et al.,
  ICLR 2018; PyTorch Geometric's ``GATConv``) over the POI transition graph, scoring the next POI
  from the previous one; :meth:`GATNextPOI.attention_weights` returns the coefficients ``α_ij``.

Introduced in chapter 10 (Graph convolutions for behaviour).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Self

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import nn

from stlab.graphs import gcn_propagation, to_torch_sparse, transition_graph, user_poi_graph
from stlab.metrics import ranking_metrics_from_ranks
from stlab.protocol import NextVisitModel, NextVisitQueries, NextVisitTask, query_ranks, training_transitions
from stlab.training import EarlyStopping, seed_everything, select_device, train_epochs


# --------------------------------------------------------------------------- GCN from the equation

def propagation_matrix(edge_index: np.ndarray | torch.Tensor, edge_weight: np.ndarray | torch.Tensor | None,
                       num_nodes: int, *, add_self_loops: bool = True,
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[N, N]`` sparse COO tensor ``S`` of :func:`stlab.graphs.gcn_propagation` (row = receiving node).

    Args:
        edge_index: ``[2, E]`` sources and targets (NumPy or torch).
        edge_weight: ``[E]`` non-negative weights, or ``None`` for ones.
        num_nodes: (int) ``N``.
        add_self_loops: (bool) use ``A + I``, as GCN does; LightGCN does not.
        dtype: of the values.
    """
    if isinstance(edge_index, torch.Tensor):
        edge_index = edge_index.detach().cpu().numpy()
    if isinstance(edge_weight, torch.Tensor):
        edge_weight = edge_weight.detach().cpu().numpy()
    matrix = gcn_propagation(edge_index, edge_weight, num_nodes, add_self_loops=add_self_loops)
    # SciPy's COO arrays always satisfy the invariants; saying so keeps torch from warning about the check.
    with torch.sparse.check_sparse_tensor_invariants(enable=False):
        return to_torch_sparse(matrix, dtype=dtype)


class GCNLayer(nn.Module):
    """One graph convolution, ``H' = S H W + b`` (Kipf & Welling, ICLR 2017), without activation.

    ``S = D~^-1/2 (A + I) D~^-1/2`` comes from :func:`propagation_matrix` and is computed once per
    graph; the layer is a dense product with ``W`` followed by one sparse product with ``S``
    (``torch.sparse.mm``). Multiplying by ``W`` first is cheaper when ``F_out <= F_in`` and gives the
    same result, since ``(S H) W = S (H W)``.

    Args:
        in_features: (int) ``F_in``.
        out_features: (int) ``F_out``.
        bias: (bool) add ``b``; default ``True``.

    Shapes:
        - ``x``: ``[N, F_in]``; ``propagation``: sparse ``[N, N]``.
        - output: ``[N, F_out]``.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        if in_features < 1 or out_features < 1:
            raise ValueError(f"in_features and out_features must be positive, got {in_features}, {out_features}")
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(in_features, out_features))  # W: [F_in, F_out]
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Glorot-uniform ``W`` and zero ``b``, as in the paper and in ``GCNConv``."""
        nn.init.xavier_uniform_(self.weight)
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor, propagation: torch.Tensor) -> torch.Tensor:
        if x.dim() != 2 or x.shape[1] != self.in_features:
            raise ValueError(f"x must be [N, {self.in_features}], got {tuple(x.shape)}")
        if propagation.shape != (x.shape[0], x.shape[0]):
            raise ValueError(f"propagation must be [N, N] = [{x.shape[0]}, {x.shape[0]}], got "
                             f"{tuple(propagation.shape)}; build it with propagation_matrix for this graph")
        out = torch.sparse.mm(propagation, x @ self.weight)  # [N, F_out]
        return out if self.bias is None else out + self.bias

    def extra_repr(self) -> str:
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


def train_on_validation_mrr(model: NextVisitModel, batches: Callable[[int], Iterable[tuple[torch.Tensor, ...]]],
                            loss_fn: Callable[[nn.Module, tuple[torch.Tensor, ...]], torch.Tensor],
                            optimizer: torch.optim.Optimizer, *, num_epochs: int, patience: int,
                            progress: bool) -> pd.DataFrame:
    """Train ``model.net_`` with :func:`stlab.training.train_epochs`, stopping early on the MRR of
    the task's validation queries (best epoch restored); the model's ``_cache_embeddings`` makes
    its scores current before each validation and after training.

    Returns:
        The per-epoch history.
    """
    val_queries = model.task.queries("val")

    def validate(net: nn.Module) -> float:
        model._cache_embeddings()
        return ranking_metrics_from_ranks(query_ranks(model, val_queries), ks=(10,))["MRR"]

    history = train_epochs(
        model.net_, batches, loss_fn, optimizer, num_epochs=num_epochs,
        validate=validate if len(val_queries) else None,
        early_stopping=EarlyStopping(patience=patience, mode="max") if len(val_queries) else None,
        device=model.device_, grad_clip=None, progress=progress)
    model.net_.eval()
    model._cache_embeddings()
    return history


# --------------------------------------------------------------------------- LightGCN + BPR

@dataclass(frozen=True)
class LightGCNConfig:
    """Settings of :class:`LightGCN`. The defaults follow the paper (``d = 64``, ``K = 3``,
    ``λ = 1e-4``) except the learning rate, raised for a city of a few thousand users and POIs
    (chosen on the validation queries of Gowalla NYC).

    Attributes:
        dim: (int) embedding size ``d``.
        num_layers: (int) propagation layers ``K``; ``0`` is BPR matrix factorisation.
        lr: (float) Adam learning rate.
        reg: (float) L2 weight on the layer-0 embeddings of each batch (the paper's ``λ``).
        batch_size: (int) ``(user, POI, negative)`` triples per step.
        num_epochs: (int) maximum passes over the user--POI pairs.
        patience: (int) epochs without a better validation MRR before stopping.
        init_std: (float) standard deviation of the initial embeddings.
        fold_in: (bool) a user without training check-ins is represented by the mean final
            embedding of the POIs in the query's history (otherwise by an untrained vector).
        seed: (int) initialisation, order of pairs and negative samples.
        device: (str) ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: (bool) progress bars over batches.
    """

    dim: int = 64
    num_layers: int = 3
    lr: float = 0.02
    reg: float = 1e-4
    batch_size: int = 2048
    num_epochs: int = 30
    patience: int = 5
    init_std: float = 0.1
    fold_in: bool = True
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.dim < 1 or self.num_layers < 0 or self.batch_size < 1 or self.num_epochs < 1:
            raise ValueError("need dim >= 1, num_layers >= 0, batch_size >= 1 and num_epochs >= 1")
        if self.lr <= 0 or self.reg < 0 or self.init_std <= 0 or self.patience < 0:
            raise ValueError("need lr > 0, reg >= 0, init_std > 0 and patience >= 0")


def bpr_loss(positive: torch.Tensor, negative: torch.Tensor, layer0: tuple[torch.Tensor, ...],
             reg: float) -> torch.Tensor:
    """Bayesian personalised ranking (Rendle et al., 2009) with LightGCN's L2 term.

    ``L = -mean_b log σ(s_ub,ib - s_ub,jb) + reg * (1/2) Σ_{e in layer0} |e|^2 / B``

    Args:
        positive: ``[B]`` scores of the visited POIs.
        negative: ``[B]`` scores of the sampled POIs.
        layer0: the batch's layer-0 embeddings (users, positives, negatives), each ``[B, d]``.
        reg: (float) ``λ``.
    """
    ranking = -nn.functional.logsigmoid(positive - negative).mean()
    penalty = sum(e.pow(2).sum() for e in layer0) / (2 * positive.shape[0])
    return ranking + reg * penalty


class LightGCNNet(nn.Module):
    """Embeddings of users and items propagated over the normalised bipartite graph.

    ``E^(k+1) = S E^(k)``, ``S = D^-1/2 A D^-1/2`` *without* self-loops (the paper's choice: the
    layer mean already keeps each node's own embedding), and the final embedding is
    ``E = (1 / (K + 1)) Σ_{k=0..K} E^(k)``. No weight matrices, no non-linearity.

    Args:
        num_users: (int) ``U``.
        num_items: (int) ``I``; nodes are users ``0 .. U-1`` then items.
        propagation: sparse ``[U + I, U + I]`` ``S``.
        dim: (int) ``d``.
        num_layers: (int) ``K``.
        init_std: (float) of the normal initial embeddings.

    Shapes:
        - :meth:`embeddings`: ``([U, d], [I, d])`` final embeddings.
        - ``forward(users [B], positives [B], negatives [B])``: ``([B], [B], layer-0 triples [B, d])``.
    """

    def __init__(self, num_users: int, num_items: int, propagation: torch.Tensor, dim: int = 64,
                 num_layers: int = 3, init_std: float = 0.1) -> None:
        super().__init__()
        num_nodes = num_users + num_items
        if propagation.shape != (num_nodes, num_nodes):
            raise ValueError(f"propagation must be [U + I, U + I] = [{num_nodes}, {num_nodes}], got "
                             f"{tuple(propagation.shape)}")
        self.num_users, self.num_items, self.num_layers, self.init_std = num_users, num_items, num_layers, init_std
        self.embedding = nn.Embedding(num_nodes, dim)  # E^(0): users first, then items
        # A plain attribute, not a buffer: the graph is data, not a weight, and stays out of state_dict.
        self.propagation = propagation.coalesce()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedding.weight, std=self.init_std)

    def _apply(self, fn, recurse: bool = True):  # noqa: ANN001, ANN202 -- keep S on the module's device
        super()._apply(fn, recurse)
        self.propagation = self.propagation.to(self.embedding.weight.device)
        return self

    def layer_embeddings(self) -> torch.Tensor:
        """``[K + 1, U + I, d]`` ``E^(0) .. E^(K)``."""
        layers = [self.embedding.weight]
        for _ in range(self.num_layers):
            layers.append(torch.sparse.mm(self.propagation, layers[-1]))
        return torch.stack(layers)

    def embeddings(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Final user ``[U, d]`` and item ``[I, d]`` embeddings: the mean over layers 0..K."""
        final = self.layer_embeddings().mean(dim=0)  # [U + I, d]
        return final[: self.num_users], final[self.num_users:]

    def forward(self, users: torch.Tensor, positives: torch.Tensor,
                negatives: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        user_final, item_final = self.embeddings()
        u = user_final[users]  # [B, d]
        positive = (u * item_final[positives]).sum(-1)  # [B]
        negative = (u * item_final[negatives]).sum(-1)  # [B]
        layer0 = (self.embedding(users), self.embedding(positives + self.num_users),
                  self.embedding(negatives + self.num_users))
        return positive, negative, layer0


class BPRSampler:
    """Epochs of ``(user, visited POI, unvisited POI)`` triples, reproducible from a seed.

    Each epoch visits every distinct training ``(user, POI)`` pair once in a shuffled order and
    pairs it with a POI drawn uniformly among those the user never visited in training (drawn
    again until it is one), as in LightGCN's reference implementation.

    Args:
        counts: ``[U, I]`` sparse training visits.
        batch_size: (int) triples per batch.
        seed: (int) of the epoch's generator (``seed + epoch``), so epoch ``e`` is the same
            triples whatever ran before it.
    """

    def __init__(self, counts: sp.csr_matrix, batch_size: int, seed: int = 0) -> None:
        coo = sp.coo_matrix(counts)
        if coo.nnz == 0:
            raise ValueError("no training interactions to sample from; the user--POI graph is empty")
        self.num_items = counts.shape[1]
        self.users = torch.from_numpy(coo.row.astype(np.int64))
        self.items = torch.from_numpy(coo.col.astype(np.int64))
        self.keys = torch.sort(self.users * self.num_items + self.items).values  # sorted, for membership tests
        self.batch_size, self.seed = batch_size, seed

    def __len__(self) -> int:
        return -(-len(self.users) // self.batch_size)

    def _is_positive(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        keys = users * self.num_items + items
        where = torch.searchsorted(self.keys, keys).clamp(max=len(self.keys) - 1)
        return self.keys[where] == keys

    def epoch(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.users), generator=generator)
        users, items = self.users[order], self.items[order]
        negatives = torch.randint(self.num_items, (len(users),), generator=generator)
        for _ in range(100):  # a user who visited everything would loop for ever; 100 rounds is plenty
            clash = self._is_positive(users, negatives)
            if not clash.any():
                break
            negatives[clash] = torch.randint(self.num_items, (int(clash.sum()),), generator=generator)
        for start in range(0, len(users), self.batch_size):
            stop = start + self.batch_size
            yield users[start:stop], items[start:stop], negatives[start:stop]


class LightGCN(NextVisitModel):
    """LightGCN (He et al., SIGIR 2020) on the training user--POI graph, as a next-visit model.

    The score of POI ``i`` for user ``u`` is ``e_u . e_i`` with the final (layer-mean)
    embeddings: who the user is, not where they are now. Trained with BPR; early stopping on the
    validation MRR. Edges are binary (visited or not), as in the paper. With ``num_layers=0`` the
    model is BPR matrix factorisation ("BPR-MF", Rendle et al., 2009).

    Args:
        config: :class:`LightGCNConfig`.

    Attributes (after ``fit``):
        history_: per-epoch training loss, validation MRR and seconds.
        graph_: the :class:`stlab.graphs.BipartiteGraph` trained on.
    """

    def __init__(self, config: LightGCNConfig | None = None) -> None:
        self.config = config or LightGCNConfig()
        self.name = "BPR-MF" if self.config.num_layers == 0 else f"LightGCN (K={self.config.num_layers})"

    def fit(self, task: NextVisitTask) -> Self:
        cfg = self.config
        self._task = task
        seed_everything(cfg.seed)
        self.device_ = select_device(cfg.device)
        self.graph_ = user_poi_graph(task).binary()
        propagation = propagation_matrix(self.graph_.edge_index, self.graph_.edge_weight, self.graph_.num_nodes,
                                         add_self_loops=False)
        self.net_ = LightGCNNet(task.num_users, task.num_pois, propagation, dim=cfg.dim, num_layers=cfg.num_layers,
                                init_std=cfg.init_std).to(self.device_)
        self.user_seen_ = np.asarray(self.graph_.counts.sum(axis=1)).ravel() > 0  # [U]
        sampler = BPRSampler(self.graph_.counts, cfg.batch_size, seed=cfg.seed)

        def loss_fn(net: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            positive, negative, layer0 = net(*batch)
            return bpr_loss(positive, negative, layer0, cfg.reg)

        optimizer = torch.optim.Adam(self.net_.parameters(), lr=cfg.lr)
        self.history_ = train_on_validation_mrr(self, lambda epoch: list(sampler.epoch(epoch)), loss_fn, optimizer,
                                                num_epochs=cfg.num_epochs, patience=cfg.patience,
                                                progress=cfg.progress)
        return self

    def _cache_embeddings(self) -> None:
        with torch.no_grad():
            users, items = self.net_.embeddings()
        self.user_embeddings_ = users.cpu().numpy().astype(np.float64)  # [U, d]
        self.item_embeddings_ = items.cpu().numpy().astype(np.float64)  # [P, d]

    def user_vectors(self, queries: NextVisitQueries) -> np.ndarray:
        """``[Q, d]`` the user side of each query (folded in from the history for unseen users)."""
        self._check_fitted()
        vectors = self.user_embeddings_[queries.user].copy()  # [Q, d]
        if self.config.fold_in:
            cold = np.flatnonzero(~self.user_seen_[queries.user])
            if len(cold):
                history = queries.history_poi[cold]  # [C, L]
                valid = history >= 0
                summed = (self.item_embeddings_[np.maximum(history, 0)] * valid[..., None]).sum(1)  # [C, d]
                vectors[cold] = summed / np.maximum(valid.sum(1, keepdims=True), 1)
        return vectors

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        """``[Q, P]`` dot products ``e_u . e_i``."""
        return self.user_vectors(queries) @ self.item_embeddings_.T


# --------------------------------------------------------------------------- graph attention

@dataclass(frozen=True)
class GATConfig:
    """Settings of :class:`GATNextPOI`.

    Attributes:
        dim: (int) POI embedding size ``d`` (divisible by ``heads``).
        heads: (int) attention heads; their outputs are concatenated back to ``d``.
        dropout: (float) dropout of the attention coefficients and of the embeddings in training.
        use_edge_counts: (bool) give each edge ``log(1 + C_ij)`` as a feature the attention can read.
        max_gap_hours: (float | None) longer gaps between check-ins are not moves (graph and examples).
        lr: (float) Adam learning rate.
        weight_decay: (float) Adam's L2 penalty.
        batch_size: (int) training moves per step.
        num_epochs: (int) maximum passes over the training moves.
        patience: (int) epochs without a better validation MRR before stopping.
        seed: (int) initialisation, batch order and dropout.
        device: (str) ``"auto"``, ``"cpu"`` or ``"cuda"``.
        progress: (bool) progress bars over batches.
    """

    dim: int = 64
    heads: int = 4
    dropout: float = 0.2
    use_edge_counts: bool = True
    max_gap_hours: float | None = None
    lr: float = 0.01
    weight_decay: float = 0.0
    batch_size: int = 2048
    num_epochs: int = 10
    patience: int = 2
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        if self.dim < 1 or self.heads < 1 or self.dim % self.heads:
            raise ValueError(f"dim must be a positive multiple of heads, got dim={self.dim}, heads={self.heads}")
        if not 0 <= self.dropout < 1 or self.lr <= 0 or self.weight_decay < 0:
            raise ValueError("need 0 <= dropout < 1, lr > 0 and weight_decay >= 0")
        if self.batch_size < 1 or self.num_epochs < 1 or self.patience < 0:
            raise ValueError("need batch_size >= 1, num_epochs >= 1 and patience >= 0")


class GATNextPOINet(nn.Module):
    """POI embeddings refined by one ``GATConv`` over the successor graph; next-POI logits.

    Each POI ``i`` attends over the POIs users moved to after it (and itself, a self-loop):
    ``h_i = e_i + ELU(Σ_j α_ij W e_j)``, the ``α_ij`` a softmax over ``i``'s neighbours
    (Veličković et al., 2018). The logit of POI ``j`` after ``i`` is ``h_i . h_j + b_j``.

    Args:
        num_pois: (int) ``P``.
        edge_index: ``[2, E]`` the successor graph in message direction: edge ``j -> i`` for
            every observed move ``i -> j`` (so ``i`` aggregates its successors).
        edge_attr: ``[E, 1]`` edge features (``log(1 + count)``) or ``None``.
        config: :class:`GATConfig`.

    Shapes:
        - :meth:`node_embeddings`: ``[P, d]``.
        - ``forward(previous [B])``: ``[B, P]`` logits.
    """

    def __init__(self, num_pois: int, edge_index: torch.Tensor, edge_attr: torch.Tensor | None,
                 config: GATConfig) -> None:
        super().__init__()
        from torch_geometric.nn import GATConv

        self.embedding = nn.Embedding(num_pois, config.dim)  # e: [P, d]
        self.conv = GATConv(config.dim, config.dim // config.heads, heads=config.heads, concat=True,
                            dropout=config.dropout, add_self_loops=True,
                            edge_dim=1 if edge_attr is not None else None, fill_value="mean")
        self.bias = nn.Parameter(torch.zeros(num_pois))  # b: popularity of the target
        self.dropout = nn.Dropout(config.dropout)
        self.register_buffer("edge_index", edge_index.long())
        self.register_buffer("edge_attr", edge_attr.float() if edge_attr is not None else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.embedding.weight, std=0.1)
        self.conv.reset_parameters()
        nn.init.zeros_(self.bias)

    def node_embeddings(self) -> torch.Tensor:
        """``[P, d]`` refined POI embeddings ``h``."""
        e = self.dropout(self.embedding.weight)  # [P, d]
        return e + nn.functional.elu(self.conv(e, self.edge_index, self.edge_attr))

    def forward(self, previous: torch.Tensor) -> torch.Tensor:
        h = self.node_embeddings()  # [P, d]
        return h[previous] @ h.T + self.bias  # [B, P]

    def attention(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``([2, E'], [E', heads])`` edges with the self-loops GATConv adds, and each ``α``."""
        e = self.embedding.weight
        _, (edge_index, alpha) = self.conv(e, self.edge_index, self.edge_attr, return_attention_weights=True)
        return edge_index, alpha


class GATNextPOI(NextVisitModel):
    """Next POI from the previous one, through graph attention over the transition graph.

    The graph is :func:`stlab.graphs.transition_graph` of the training check-ins; each POI attends
    over its successors. Trained with cross-entropy over all POIs on the training moves (consecutive
    training check-ins of one user), early stopping on validation MRR. Like
    :class:`stlab.baselines.Markov` it reads only the previous POI of a query.

    Args:
        config: :class:`GATConfig`.
    """

    name = "GAT over transitions"

    def __init__(self, config: GATConfig | None = None) -> None:
        self.config = config or GATConfig()

    def fit(self, task: NextVisitTask) -> Self:
        cfg = self.config
        self._task = task
        seed_everything(cfg.seed)
        self.device_ = select_device(cfg.device)
        self.graph_ = transition_graph(task, cfg.max_gap_hours)
        source, target = self.graph_.edge_index
        edge_index = torch.from_numpy(np.stack([target, source]))  # message j -> i for each move i -> j
        edge_attr = (torch.from_numpy(np.log1p(self.graph_.edge_weight))[:, None]
                     if cfg.use_edge_counts else None)
        self.net_ = GATNextPOINet(task.num_pois, edge_index, edge_attr, cfg).to(self.device_)
        previous, following = (torch.from_numpy(a.astype(np.int64)) for a in training_transitions(task, cfg.max_gap_hours))
        if len(previous) == 0:
            raise ValueError("the task has no training moves (consecutive training check-ins of one user) to learn from")

        def batches(epoch: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
            generator = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
            order = torch.randperm(len(previous), generator=generator)
            return [(previous[rows], following[rows]) for rows in order.split(cfg.batch_size)]

        def loss_fn(net: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
            return nn.functional.cross_entropy(net(batch[0]), batch[1])

        optimizer = torch.optim.Adam(self.net_.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.history_ = train_on_validation_mrr(self, batches, loss_fn, optimizer, num_epochs=cfg.num_epochs,
                                                patience=cfg.patience, progress=cfg.progress)
        return self

    def _cache_embeddings(self) -> None:
        was_training = self.net_.training
        self.net_.eval()
        with torch.no_grad():
            self.embeddings_ = self.net_.node_embeddings().cpu().numpy().astype(np.float64)  # [P, d]
            self.bias_ = self.net_.bias.cpu().numpy().astype(np.float64)  # [P]
        self.net_.train(was_training)

    def score(self, queries: NextVisitQueries) -> np.ndarray:
        """``[Q, P]`` logits ``h_prev . h_j + b_j``."""
        self._check_fitted()
        return self.embeddings_[queries.prev_poi] @ self.embeddings_.T + self.bias_[None, :]

    def attention_weights(self) -> tuple[np.ndarray, np.ndarray]:
        """The attention coefficients of the fitted layer, without dropout.

        Returns:
            ``edge_index`` ``[2, E']`` in *move* direction -- row 0 the POI ``i`` a user left, row 1
            a POI ``j`` they went to next (self-loops ``i -> i`` included, as GATConv adds them) --
            and ``alpha`` ``[E', heads]``: ``α_ij`` per head. For every ``i`` and head the
            ``α_ij`` over its ``j`` sum to one.
        """
        self._check_fitted()
        self.net_.eval()
        with torch.no_grad():
            edge_index, alpha = self.net_.attention()
        message_source, receiver = edge_index.cpu().numpy()
        return np.stack([receiver, message_source]), alpha.cpu().numpy().astype(np.float64)


__all__ = ["BPRSampler", "GATConfig", "GATNextPOI", "GATNextPOINet", "GCNLayer", "LightGCN", "LightGCNConfig",
           "LightGCNNet", "bpr_loss", "propagation_matrix", "train_on_validation_mrr"]
