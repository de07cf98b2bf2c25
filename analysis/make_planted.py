"""Write planted activations (known groups and spatial extents) for the analyser docs.

    python analysis/make_planted.py --out runs/planted.npy
    sparsenet discover --activations runs/planted.npy --out docs/examples/discover-planted

The true labels and kernel sizes are written beside the array (``*.truth.json``) so the
discovery can be scored against them (adjusted Rand index).
"""

import argparse
import json
from pathlib import Path

import numpy as np

from sparsenet.data.synthetic import planted_groups


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/planted.npy")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    data = planted_groups(n_samples=400, group_sizes=(12, 10, 8, 8, 6), kernel_sizes=(1, 3, 5, 1, 3),
                          n_dead=2, random_state=args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.save(out, data.X)
    truth = {"labels": data.labels.tolist(), "kernel_sizes": data.kernel_sizes.tolist()}
    out.with_suffix(".truth.json").write_text(json.dumps(truth) + "\n")
    print(f"wrote {out} {data.X.shape} and {out.with_suffix('.truth.json')}")


if __name__ == "__main__":
    main()
