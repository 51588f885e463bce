"""Experiments on files: train, evaluate and ablate the reconstruction and segmentation models.

:mod:`cinemri.tasks.recon` and :mod:`cinemri.tasks.seg` have the same shape: ``data`` (the
experiment's cases and splits), ``task`` (the task for :func:`cinemri.train.fit` and ``train``),
``evaluate`` (``cinemri <task> eval``) and ``ablation`` (``cinemri <task> ablate``, through the
shared core :mod:`cinemri.tasks.ablation`). The experiment configs they read are the ones
checkpoints carry (:mod:`cinemri.recon.config`, :mod:`cinemri.seg.config`), and models are
loaded through :mod:`cinemri.recon.inference` and :mod:`cinemri.seg.inference`.
"""
