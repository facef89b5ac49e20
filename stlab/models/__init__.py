"""Models of the book. Framework-free pieces import nothing heavy; PyTorch and Keras models live
in their own modules, imported on use.

* :mod:`stlab.models.equations` -- the LSTM and GRU from their equations in NumPy (chapter 5).
"""
