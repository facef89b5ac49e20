"""Keras 3 models of the book (importing this package imports ``keras``; choose the backend by
setting ``KERAS_BACKEND`` before the first ``import keras``).

* :mod:`stlab.models.keras.nextvisit` -- the recurrent next-POI model (chapter 6).
* :mod:`stlab.models.keras.forecast` -- the multi-horizon recurrent forecaster (chapter 6).
* :mod:`stlab.models.keras.mha` -- reference attention weights in ``MultiHeadAttention`` (chapter 8).
* :mod:`stlab.models.keras.attention` -- the space-time Transformer's Keras twin (chapter 8).
"""
