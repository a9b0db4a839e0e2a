"""Grouped splits: every frame of a group (a deployment, or a burst) lands on one side only, so
a model is never tested on the camera, or the burst, it was trained on. Classes are stratified
as far as the groups allow (scikit-learn's StratifiedGroupKFold).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.model_selection import StratifiedGroupKFold

from pipeline.errors import InputError


def grouped_folds(
    groups: Sequence[str], classes: Sequence[int], n_folds: int, seed: int = 0
) -> np.ndarray:
    """Return each row's fold, 0..k-1 with k = min(n_folds, number of groups); no group is in
    two folds and no fold is empty. Raises InputError with fewer than two groups."""
    group_array = np.asarray(groups, dtype=object)
    unique = np.unique(group_array)
    if unique.size < 2:
        raise InputError(
            f"all {group_array.size} frame(s) are in one group ({unique[0] if unique.size else '-'}"
            "): a grouped split needs at least two deployments (or bursts with --group-by burst)"
        )
    k = int(min(n_folds, unique.size))
    if k < 2:
        raise InputError(f"need at least 2 folds, got {n_folds}")
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    fold = np.full(group_array.size, -1, dtype=np.int64)
    y = np.asarray(classes)
    for index, (_, held) in enumerate(splitter.split(np.zeros(y.size), y, group_array)):
        fold[held] = index
    # Renumber so that folds are 0..k-1 without gaps, should the splitter leave one empty.
    _, dense = np.unique(fold, return_inverse=True)
    return dense.astype(np.int64)


def grouped_holdout(
    groups: Sequence[str], classes: Sequence[int], fraction: float, seed: int = 0
) -> np.ndarray:
    """Return a boolean mask of about `fraction` of the rows, whole groups only, stratified by
    class as the groups allow. `fraction` 0 gives an empty mask. Raises InputError for a
    fraction outside [0, 0.5] or fewer than two groups."""
    n = len(groups)
    if fraction == 0:
        return np.zeros(n, dtype=bool)
    if not 0 < fraction <= 0.5:
        raise InputError(f"test fraction must be within 0..0.5, got {fraction}")
    folds = grouped_folds(groups, classes, max(2, round(1 / fraction)), seed)
    return folds == 0
