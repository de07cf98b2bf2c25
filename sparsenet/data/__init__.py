"""Datasets: registered names, standard file formats, normalisation, augmentation and batching.

>>> ds = load_dataset("mnist5k", seed=0)          # doctest: +SKIP
>>> ds.input_shape, ds.num_classes                 # doctest: +SKIP
((1, 28, 28), 10)
"""

from sparsenet.data.formats import read_idx
from sparsenet.data.loader import iterate_batches
from sparsenet.data.registry import (
    Dataset,
    DatasetInfo,
    dataset_names,
    list_datasets,
    load_dataset,
)
from sparsenet.data.transforms import Augment, normalize

__all__ = [
    "Dataset",
    "DatasetInfo",
    "load_dataset",
    "list_datasets",
    "dataset_names",
    "normalize",
    "Augment",
    "iterate_batches",
    "read_idx",
]
