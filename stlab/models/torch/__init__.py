"""PyTorch models of the book (importing this package imports ``torch``).

* :mod:`stlab.models.torch.cells` -- an LSTM cell from its equations; vanishing gradients (chapter 5).
* :mod:`stlab.models.torch.nextvisit` -- the recurrent next-POI model (chapter 7).
* :mod:`stlab.models.torch.forecast` -- the multi-horizon recurrent forecaster (chapter 7).
* :mod:`stlab.models.torch.mha` -- reference attention weights in ``nn.MultiheadAttention`` (chapter 8).
* :mod:`stlab.models.torch.attention` -- the space-time Transformer next-POI model (chapter 8).
* :mod:`stlab.models.torch.behaviour` -- behaviour-type prediction with its blocks (chapter 8).
* :mod:`stlab.models.torch.graph` -- the GCN layer, LightGCN and graph attention over transitions (chapter 10).
* :mod:`stlab.models.torch.stgraph` -- T-GCN and STGCN spatio-temporal forecasters (chapter 11).
"""
