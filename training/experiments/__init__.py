"""Logistics of training experiments on lent machines, one runnable module each.

* :mod:`training.experiments.train_concurrently` (``python -m
  training.experiments.train_concurrently``): several configs trained side by side on one lent
  GPU, each run's epochs sized by measured probe epochs to end inside a wall-clock budget.
"""
