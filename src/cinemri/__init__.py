"""cinemri: cardiac cine MRI from undersampled k-space to ejection fraction."""

__version__ = "0.1.0"
