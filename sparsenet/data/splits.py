"""A validation split carved from a dataset's training split, and a stated training subset.

``carve_validation(dataset, validation, train_subset, seed)`` permutes the training split with
``torch.Generator().manual_seed(seed)``, gives the first ``validation`` images (a count, or a
fraction of the training split, rounded) to ``x_val``/``y_val``, and keeps the first
``train_subset`` of the rest (all of them when None) as the new training split.  The test split
is untouched.  The same dataset and seed give the same three parts, so every arm and seed of an
experiment sees the same images; the normalisation statistics (``mean_std``) then come from the
training part alone.
"""

from __future__ import annotations

from dataclasses import replace

import torch

from sparsenet.errors import SparsenetError

__all__ = ["carve_validation", "validation_count"]


def validation_count(n_train: int, validation: int | float) -> int:
    """How many of ``n_train`` training images a validation setting (count or fraction) takes."""
    if isinstance(validation, float):
        if not 0 < validation < 1:
            raise SparsenetError(f"validation fraction must be in (0, 1), got {validation!r}")
        n = round(validation * n_train)
    elif isinstance(validation, int) and not isinstance(validation, bool) and validation >= 1:
        n = validation
    else:
        raise SparsenetError(f"validation must be a count >= 1 or a fraction in (0, 1), got {validation!r}")
    if not 1 <= n < n_train:
        raise SparsenetError(f"a validation split of {validation!r} takes {n} of {n_train} training images; "
                             f"it must leave at least one for training and take at least one")
    return n


def carve_validation(dataset, validation: int | float | None, train_subset: int | None = None, seed: int = 0):
    """A copy of ``dataset`` with a validation split (x_val, y_val; none when ``validation`` is None)
    and a possibly smaller training split."""
    n_train = len(dataset.x_train)
    n_val = 0 if validation is None else validation_count(n_train, validation)
    rest = n_train - n_val
    if train_subset is not None and not (isinstance(train_subset, int) and 1 <= train_subset <= rest):
        raise SparsenetError(f"train_subset is {train_subset!r}; after {n_val} validation images "
                             f"{rest} training images are left, so expected an integer in 1..{rest}")
    order = torch.randperm(n_train, generator=torch.Generator().manual_seed(seed))
    val, train = order[:n_val], order[n_val:n_val + (train_subset or rest)]
    x_val, y_val = (dataset.x_train[val].contiguous(), dataset.y_train[val].contiguous()) if n_val else (None, None)
    return replace(dataset, x_train=dataset.x_train[train].contiguous(), y_train=dataset.y_train[train].contiguous(),
                   x_val=x_val, y_val=y_val)
