"""Self-attention for the next visit, framework-neutral (chapter 8).

* :mod:`stlab.models.attention.reference` -- scaled dot-product and multi-head attention, the
  causal mask, positions and pre-/post-LayerNorm blocks from their equations in NumPy, with a
  hand-written backward pass: the reference the PyTorch and Keras code is tested against.
* :mod:`stlab.models.attention.config` -- settings and inputs of the space-time Transformer
  next-POI model, shared by :mod:`stlab.models.torch.attention` and
  :mod:`stlab.models.keras.attention`.

Nothing here imports PyTorch or Keras.
"""
