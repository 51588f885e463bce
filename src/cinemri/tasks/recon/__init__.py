"""Reconstruction experiments: ``data`` (sources split by subject, central-slice subsets),
``task`` (:class:`~cinemri.tasks.recon.task.ReconTask`, ``train``), ``evaluate`` (against zero
filling and CS-TV) and ``ablation`` (variants with an equal budget)."""
