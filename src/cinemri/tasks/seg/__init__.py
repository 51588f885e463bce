"""Segmentation experiments: ``data`` (sources split by patient, stratified by group), ``task``
(:class:`~cinemri.tasks.seg.task.SegTask`, ``train``), ``evaluate`` (challenge-style scores),
``ablation`` (models x losses x augmentation) and ``grad`` / ``grad_figures`` (the gradient
analysis of the losses)."""
