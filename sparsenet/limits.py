"""Bounds on sizes read from files and arguments, checked before anything is allocated.

Every number a user hands to sparsenet that decides how much memory is taken (a channel count,
a kernel size, an image size, a class count, a seed handed to a random generator) is checked
against one of these limits first, so that a hostile or mistyped input is refused with a
message instead of a MemoryError, a storage overflow or a machine that swaps.  Where a limit
follows from the data (a kernel no larger than the map it slides over, class indices below the
number of samples) the check uses the data; these constants are the outer bounds where nothing
in the data bounds the number.  Each is far above what the toolkit's own networks use.
"""

from __future__ import annotations

MAX_SEED = 2**32 - 1             # numpy's and scikit-learn's random_state accept 0 .. 2**32 - 1
MAX_CHANNELS = 65_536            # channels of one layer (GoogLeNet's widest: 1,024)
MAX_KERNEL_SIZE = 31             # odd conv / pool window (GoogLeNet's largest: 7)
MAX_MODULE_PARAMS = 50_000_000   # parameters of one module spec (200 MB of float32; GoogLeNet's 5b: 1.4M)
MAX_MODEL_PARAMS = 100_000_000   # parameters of one model (400 MB of float32; GoogLeNet: 6.6M)
MAX_IMAGE_SIDE = 4_096           # pixels of an image side, after resizing (ImageNet networks: 224)
MAX_INPUT_ELEMENTS = 2**22       # C x H x W of one input a model is run on (e.g. 3 x 1182 x 1182)
MAX_MODULES = 64                 # modules grown in one `sparsenet grow` (GoogLeNet has 9)
MAX_IMAGE_PIXELS = 89_478_485    # pixels of one image file: Pillow's own DecompressionBomb threshold
MAX_PERMUTATIONS = 100_000       # null copies of one test (p down to 1e-5; one seed each is drawn up front)
MAX_NULL_SETS = 100_000          # random channel sets per size in a lesion null (each kept as a list)
MAX_RESAMPLES = 10_000           # stability resamples of one fit (each refits the clustering)
MAX_LOADER_WORKERS = 256        # DataLoader worker processes (each a forked copy of the process)
MAX_THREADS = 1_024              # torch threads: OpenMP starts them all and crashes (SIGSEGV) where it cannot


def check_input_size(shape, what: str = "input shape") -> None:
    """Refuse a (C, H, W) input whose element count would make one forward pass too large."""
    from sparsenet.errors import SparsenetError

    n = 1
    for s in shape:
        n *= int(s)
    if n > MAX_INPUT_ELEMENTS or max((int(s) for s in shape[1:]), default=0) > MAX_IMAGE_SIDE:
        raise SparsenetError(
            f"{what} {'x'.join(str(int(s)) for s in shape)} is too large: at most {MAX_INPUT_ELEMENTS:,} "
            f"values (C x H x W) and {MAX_IMAGE_SIDE} pixels a side are accepted")
