"""Clinical indices from label maps: volumes, ED/ES, EF, stroke volume, LV mass.

Conventions (ACDC's): volume = voxel count x voxel volume (dz*dy*dx mm^3) / 1000 -> ml;
EF = (EDV - ESV) / EDV x 100 %; LV mass = ED myocardial volume x 1.05 g/ml.
ED/ES when not given: ED = frame of maximal LV volume, ES = frame of minimal non-zero LV
volume (frames with an empty LV are taken as unlabelled, as in ACDC where only ED and ES
carry ground truth); ties go to the earliest frame.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from cinemri.labels import LV, MYO, RV

MYOCARDIAL_DENSITY_G_PER_ML = 1.05
INDEX_KEYS = ("lv_edv_ml", "lv_esv_ml", "lv_ef_pct", "rv_edv_ml", "rv_esv_ml", "rv_ef_pct", "lv_mass_g")


def _check_spacing(spacing) -> tuple[float, float, float]:
    try:
        values = tuple(float(s) for s in spacing)
    except (TypeError, ValueError):
        values = ()
    if len(values) != 3 or not all(np.isfinite(s) and s > 0 for s in values):
        raise ValueError(f"spacing must be three positive mm values (dz, dy, dx), got {spacing!r}")
    return values  # type: ignore[return-value]


def volume_curves_ml(labels: np.ndarray, spacing) -> dict[int, np.ndarray]:
    """Volume of each structure in every frame.

    labels: (S, T, H, W) integer label maps; spacing: (dz, dy, dx) mm
    returns {1: (T,), 2: (T,), 3: (T,)} volumes in ml
    """
    dz, dy, dx = _check_spacing(spacing)
    labels = np.asarray(labels)
    if labels.ndim != 4:
        raise ValueError(f"labels must be (S, T, H, W), got shape {labels.shape}")
    voxel_ml = dz * dy * dx / 1000.0
    return {k: (labels == k).sum(axis=(0, 2, 3)).astype(np.float64) * voxel_ml for k in (RV, MYO, LV)}


def detect_ed_es(lv_volume_ml: np.ndarray) -> tuple[int, int]:
    """ED = frame of maximal LV volume, ES = frame of minimal non-zero LV volume (0-based).

    lv_volume_ml: (T,) LV volumes; frames with volume 0 are treated as unlabelled and never
    chosen as ES. Ties go to the earliest frame. returns (ed_frame, es_frame)
    """
    lv_volume_ml = np.asarray(lv_volume_ml, dtype=np.float64)
    if lv_volume_ml.ndim != 1 or lv_volume_ml.size < 2:
        raise ValueError(f"ED/ES detection needs an LV volume curve of >= 2 frames, got shape {lv_volume_ml.shape}")
    if not np.all(np.isfinite(lv_volume_ml)) or np.any(lv_volume_ml < 0):
        raise ValueError(f"ED/ES detection: LV volumes must be finite and >= 0, got {lv_volume_ml}")
    if not np.any(lv_volume_ml > 0):
        raise ValueError("ED/ES detection: the LV is empty in every frame")
    labelled = np.where(lv_volume_ml > 0, lv_volume_ml, np.inf)
    return int(np.argmax(lv_volume_ml)), int(np.argmin(labelled))


def ejection_fraction_pct(edv_ml: float, esv_ml: float) -> float:
    """(EDV - ESV) / EDV x 100; NaN when EDV is zero (no structure to eject from)."""
    return float("nan") if edv_ml <= 0 else float(100.0 * (edv_ml - esv_ml) / edv_ml)


@dataclass(frozen=True)
class ClinicalIndices:
    lv_edv_ml: float
    lv_esv_ml: float
    lv_ef_pct: float
    rv_edv_ml: float
    rv_esv_ml: float
    rv_ef_pct: float
    lv_mass_g: float
    ed_frame: int
    es_frame: int

    @property
    def lv_sv_ml(self) -> float:
        return self.lv_edv_ml - self.lv_esv_ml

    @property
    def rv_sv_ml(self) -> float:
        return self.rv_edv_ml - self.rv_esv_ml

    def as_dict(self) -> dict[str, float]:
        """Exactly the keys of :data:`INDEX_KEYS` (the phantom's ground-truth record)."""
        d = asdict(self)
        return {k: d[k] for k in INDEX_KEYS}


def compute_indices(labels: np.ndarray, spacing, ed_frame: int | None = None,
                    es_frame: int | None = None) -> ClinicalIndices:
    """Clinical indices of one case.

    labels: (S, T, H, W) label maps (at least the ED and ES frames labelled);
    spacing: (dz, dy, dx) mm; ed_frame/es_frame: 0-based, detected from the LV curve if None.
    """
    labels = np.asarray(labels)
    curves = volume_curves_ml(labels, spacing)
    if ed_frame is None or es_frame is None:
        ed_auto, es_auto = detect_ed_es(curves[LV])
        ed_frame = ed_auto if ed_frame is None else ed_frame
        es_frame = es_auto if es_frame is None else es_frame
    t = labels.shape[1]
    for name, f in (("ed_frame", ed_frame), ("es_frame", es_frame)):
        if isinstance(f, (bool, np.bool_)) or not isinstance(f, (int, np.integer)) or not 0 <= f < t:
            raise ValueError(f"{name} must be an integer frame index in [0, {t}), got {f!r}")
    lv_edv, lv_esv = curves[LV][ed_frame], curves[LV][es_frame]
    rv_edv, rv_esv = curves[RV][ed_frame], curves[RV][es_frame]
    return ClinicalIndices(
        lv_edv_ml=float(lv_edv), lv_esv_ml=float(lv_esv), lv_ef_pct=ejection_fraction_pct(lv_edv, lv_esv),
        rv_edv_ml=float(rv_edv), rv_esv_ml=float(rv_esv), rv_ef_pct=ejection_fraction_pct(rv_edv, rv_esv),
        lv_mass_g=float(curves[MYO][ed_frame] * MYOCARDIAL_DENSITY_G_PER_ML),
        ed_frame=int(ed_frame), es_frame=int(es_frame),
    )


def label_indices(case) -> dict[str, float | None] | None:
    """The indices of :data:`INDEX_KEYS` from a case's own labels at its own ED/ES frames
    (what ``cinemri info`` prints), rounded to 4 decimals, NaN as None; None when the case
    has no labels at both ED and ES.

    case: a :class:`cinemri.case.Case` (labels (S, T, H, W), spacing, ed_frame, es_frame,
    labelled_frames).
    """
    labelled = set(case.labelled_frames)
    if case.labels is None or case.ed_frame not in labelled or case.es_frame not in labelled:
        return None
    indices = compute_indices(case.labels, case.spacing, case.ed_frame, case.es_frame).as_dict()
    return {k: round(float(v), 4) if np.isfinite(v) else None for k, v in indices.items()}
