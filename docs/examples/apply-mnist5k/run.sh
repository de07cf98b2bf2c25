#!/bin/sh
# The apply and lesion example of docs/apply.md (a few CPU minutes); run from the repository root.
set -e
D=docs/examples/apply-mnist5k
sparsenet train --model plaincnn --data mnist5k --epochs 3 --seed 0 --out $D/train --quiet
sparsenet discover --checkpoint $D/train --layer features.relu2 --clusters 4 --permutations 20 --resamples 5 --out $D/discover
sparsenet apply --checkpoint $D/train --discovery $D/discover --finetune-epochs 1 --out $D/apply
sparsenet lesion --checkpoint $D/train --discovery $D/discover --null-sets 20 --out $D/lesion
