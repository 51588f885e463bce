"""Where the gradients of CE, soft Dice and their combination go: measurements on real batches.

For logits z (B, K, H, W) and labels (B, H, W) every function here differentiates a loss
w.r.t. the logits (``torch.autograd.grad``) and splits the gradient by pixel class:

- CE (mean over N = B H W pixels): dCE/dz_i = (p_i - g_i) / N — every pixel gets a share, so
  the background (> 95 % of an ACDC slice) holds most of the gradient mass early on.
- soft Dice of class k: dD_k/dp_jk = (2 g_jk - D_k) / (S_p + S_g + eps), then the softmax
  Jacobian; the scale 1/(S_p + S_g) is the inverse region size, and near a random start
  (p ~ 1/K everywhere) D_k is small and its direction is noisy.

Library code only: the model and batches come from the caller (see
cinemri.tasks.seg.grad for the config-driven run and figures).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import Tensor, nn

from cinemri.labels import CLASS_NAMES


def logit_gradient(loss_fn: Callable[[Tensor, Tensor], Tensor], logits: Tensor, labels: Tensor) -> Tensor:
    """dL/dz for ``L = loss_fn(z, labels)``. logits: (B, K, H, W) float; labels: (B, H, W) int64.
    Returns (B, K, H, W) float32 (no graph kept, no ``.grad`` written)."""
    z = logits.detach().float().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_fn(z, labels), z)
    return grad.detach()


def gradient_split(grad: Tensor, labels: Tensor, num_classes: int | None = None) -> dict[str, float]:
    """How the logit gradient is spread over the pixels.

    grad: (B, K, H, W) float; labels: (B, H, W) int64.
    Per pixel i: a_i = sum_k |g_ik| (L1) and q_i = sum_k g_ik^2 (squared L2). Returns
    "bg_fraction_l1" = sum_{i in bg} a_i / sum_i a_i, "bg_fraction_l2sq" (same with q),
    "bg_pixel_fraction" (share of background pixels), "norm_l2" = sqrt(sum_i q_i),
    "norm_l1" = sum_i a_i, and per class c with pixels: "mean_l1_<c>" = mean of a_i over its
    pixels, "mean_l2_<c>" = mean of sqrt(q_i). Fractions are NaN when the gradient is all zero.
    """
    if grad.dim() != 4 or labels.shape != (grad.shape[0], *grad.shape[2:]):
        raise ValueError(f"grad must be (B, K, H, W) and labels (B, H, W), got {tuple(grad.shape)} and "
                         f"{tuple(labels.shape)}")
    k = grad.shape[1] if num_classes is None else num_classes
    a = grad.abs().sum(dim=1).double()  # (B, H, W)
    q = grad.pow(2).sum(dim=1).double()  # (B, H, W)
    bg = labels == 0  # (B, H, W)
    total_a, total_q = float(a.sum()), float(q.sum())
    out = {
        "bg_fraction_l1": float(a[bg].sum()) / total_a if total_a > 0 else math.nan,
        "bg_fraction_l2sq": float(q[bg].sum()) / total_q if total_q > 0 else math.nan,
        "bg_pixel_fraction": float(bg.double().mean()),
        "norm_l1": total_a, "norm_l2": math.sqrt(total_q),
    }
    for c in range(k):
        name = CLASS_NAMES[c] if c < len(CLASS_NAMES) else f"class{c}"
        pixels = labels == c
        if bool(pixels.any()):
            out[f"mean_l1_{name}"] = float(a[pixels].mean())
            out[f"mean_l2_{name}"] = float(q[pixels].sqrt().mean())
    return out


def parameter_gradient(model: nn.Module, images: Tensor, labels: Tensor,
                       loss_fn: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """dL/dtheta of ``L = loss_fn(model(images), labels)`` flattened over every trainable
    parameter: (P,) float32. images: (B, 1, H, W); labels: (B, H, W) int64. The model's mode
    is the caller's; deep-supervision lists use their first (full-resolution) output."""
    params = [p for p in model.parameters() if p.requires_grad]
    out = model(images)
    logits = out[0] if isinstance(out, (list, tuple)) else out
    grads = torch.autograd.grad(loss_fn(logits.float(), labels), params, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).reshape(-1) for g, p in zip(grads, params)])


def consistency(vectors: list[Tensor]) -> dict[str, float]:
    """Agreement of per-batch gradients (each (P,)): mean pairwise cosine similarity, mean
    norm and coefficient of variation (std / mean, ddof 0) of the norms."""
    norms = torch.stack([v.norm() for v in vectors]).double()  # (n,)
    cos = [float(torch.nn.functional.cosine_similarity(a, b, dim=0))
           for i, a in enumerate(vectors) for b in vectors[i + 1:]]
    mean = float(norms.mean())
    return {"mean_cosine": float(sum(cos) / len(cos)) if cos else math.nan, "mean_norm": mean,
            "norm_cv": float(norms.std(unbiased=False)) / mean if mean > 0 else math.nan}
