"""``python -m benchmarks [--quick] [--out DIR] ...``: the same as ``sparsenet bench``."""

import sys
from pathlib import Path

# run from a checkout even without `pip install -e .`: the repository root holds sparsenet/
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparsenet.cli.bench import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
