"""Readers and writers: the cinemri HDF5 case format, CMRxRecon .mat, ACDC and M&Ms NIfTI, DICOM cine.

Every reader returns a :class:`cinemri.case.Case`; see docs/data.md for the axis and label
mapping of each format. This package never imports models.
"""

from cinemri.io.acdc import read_acdc, read_info_cfg
from cinemri.io.case_h5 import FORMAT_NAME, FORMAT_VERSION, case_header, read_case, write_case
from cinemri.io.cmrxrecon import DEFAULT_SPACING_MM as CMRXRECON_SPACING_MM
from cinemri.io.cmrxrecon import load_mat_variables, read_cmrxrecon, read_mask, write_cmrxrecon
from cinemri.io.dicom import read_dicom
from cinemri.io.formats import FORMATS, describe, describe_case, detect_format, is_case_path, read_any
from cinemri.io.mnms import MNMS_TO_ACDC, read_mnms
from cinemri.io.nifti import read_label_volume, read_volume, write_labels_nifti

__all__ = [
    "CMRXRECON_SPACING_MM", "FORMATS", "FORMAT_NAME", "FORMAT_VERSION", "MNMS_TO_ACDC",
    "case_header", "describe", "describe_case", "detect_format", "is_case_path", "load_mat_variables", "read_acdc", "read_any",
    "read_case", "read_cmrxrecon", "read_dicom", "read_info_cfg", "read_label_volume", "read_mask",
    "read_mnms", "read_volume", "write_case", "write_cmrxrecon", "write_labels_nifti",
]
