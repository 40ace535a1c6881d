"""The patient split of lidc-hu, shared by training and `npm run eval`'s DICOM mode.

A patient (LIDC id such as ``LIDC-IDRI-0001``) is in validation iff the first 8 hex digits of
sha256(patient_id) taken as an integer, modulo 1000, are below 250 (about 25% of patients).
It depends on nothing but the id, so every source (ctslicing, gdro, any later one) puts the
same patient on the same side, and adding or removing rows never moves a patient.
"""
from __future__ import annotations

import hashlib

VALIDATION_PER_MILLE = 250


def is_validation_patient(patient_id: str) -> bool:
    return int(hashlib.sha256(patient_id.encode()).hexdigest()[:8], 16) % 1000 < VALIDATION_PER_MILLE
