"""Models of the book. Framework-free modules import nothing heavy; the PyTorch and Keras
implementations live in the subpackages :mod:`stlab.models.torch` and :mod:`stlab.models.keras`,
imported on use, and share their inputs and settings with each other.

* :mod:`stlab.models.equations` -- the LSTM and GRU from their equations in NumPy (chapter 5).
* :mod:`stlab.models.recurrent` -- settings and inputs of the recurrent next-POI model (chapters 6-7).
* :mod:`stlab.models.windows` -- sliding windows and scaling for recurrent forecasters (chapters 6-7).
* :mod:`stlab.models.attention` -- self-attention in NumPy, settings and inputs of the space-time
  Transformer, and power-law fits of scaling curves (chapters 8-9).
* :mod:`stlab.models.pretrained` -- sentence embeddings and a small language model that ship in
  wheels, loaded offline (chapter 9).
"""
