"""stlab: the code behind *Predicting where and when users act*.

Subpackages and modules, in the order the book introduces them:

* :mod:`stlab.config` -- typed settings and their override order (chapter 1).
* :mod:`stlab.data` -- data registry, verified downloads, loaders, validation and the
  synthetic world (chapter 1).
* :mod:`stlab.cleaning` -- cleaning rules for check-in logs (chapter 1).
* :mod:`stlab.features` -- spatio-temporal features (chapter 2).
* :mod:`stlab.splits` -- leakage-free chronological splits (chapter 2).
"""

__version__ = "0.1.0"
