"""Segmentation of cine MRI into 0 background, 1 RV, 2 MYO, 3 LV.

- ``cinemri.seg.models``: segmentation networks (logits (B, K, H, W) from images (B, C, H, W)).
- ``cinemri.seg.losses``: cross-entropy, soft Dice and their scheduled combination.
- ``cinemri.seg.schedules``: CE/Dice weight schedules (constant, linear, cosine, step, adaptive).
- ``cinemri.seg.augment``: spatial and intensity augmentation of (image, label) batches in torch.
- ``cinemri.seg.postprocess``: anatomical post-processing of predicted label maps.
- ``cinemri.seg.grad_analysis``: logit and parameter gradients of the losses.
- ``cinemri.seg.config``: the experiment a checkpoint carries (model, loss, augment, data, eval).
- ``cinemri.seg.inference``: load a checkpoint, segment a case with its own test-time settings.
"""
