"""Segmentation of cine MRI into 0 background, 1 RV, 2 MYO, 3 LV.

- ``cinemri.seg.models``: segmentation networks (logits (B, K, H, W) from images (B, 1, H, W)).
- ``cinemri.seg.losses``: cross-entropy, soft Dice and their scheduled combination.
- ``cinemri.seg.schedules``: CE/Dice weight schedules (constant, linear, cosine, step, adaptive).
- ``cinemri.seg.augment``: spatial and intensity augmentation of (image, label) batches in torch.
"""
