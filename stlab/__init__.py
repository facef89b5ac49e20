"""stlab: the code behind *Predicting where and when users act*.

Subpackages and modules, in the order the book introduces them:

* :mod:`stlab.config` -- typed settings and their override order (chapter 1).
* :mod:`stlab.data` -- data registry, verified downloads, loaders, validation and the
  synthetic world (chapter 1).
* :mod:`stlab.cleaning` -- cleaning rules for check-in logs (chapter 1).
* :mod:`stlab.features` -- spatio-temporal features (chapter 2).
* :mod:`stlab.splits` -- leakage-free chronological splits (chapter 2).
* :mod:`stlab.forecasting`, :mod:`stlab.protocol`, :mod:`stlab.baselines`, :mod:`stlab.metrics` --
  forecasting and next-visit protocols, baselines and metrics (chapters 3-4).
* :mod:`stlab.models`, :mod:`stlab.training` -- recurrent models and their training (chapters 5-7).
* :mod:`stlab.models.attention`, :mod:`stlab.models.pretrained` -- self-attention, the space-time
  Transformer, and pretrained text models used offline (chapters 8-9).
* :mod:`stlab.runcache`, :mod:`stlab.reference_runs` -- evaluated runs stored once and reused by
  later chapters (chapters 4, 7-9).
* :mod:`stlab.graphs` -- graphs from behaviour logs and the normalised adjacency (chapter 10).
* :mod:`stlab.graph_forecasting` -- the spatio-temporal forecasting protocol (chapter 11).
* :mod:`stlab.policy` -- patterns mined from logs, top-k lists in context, re-ranking for
  diversity, beyond-accuracy measures and crowding-aware guidance (chapter 13).
* :mod:`stlab.abtest`, :mod:`stlab.online`, :mod:`stlab.serve` -- A/B tests and off-policy
  estimates, prequential online updating, and a recommendation service (chapter 14).
"""

__version__ = "0.1.0"
