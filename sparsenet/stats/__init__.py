"""Streaming statistics of a layer's channels.

``ChannelStats`` reads a layer's activations batch by batch (``partial_fit``) and keeps only
running sums whose size depends on the number of channels ``C`` and the largest spatial radius
``R``, never on the number of samples:

* offset 0: mean and centred cross-products (``M2``), merged batch to batch with Chan et al.'s
  parallel algorithm (exact and numerically robust; the merge of two shards is the same
  formula);
* co-firing: counts of samples where channels ``i`` and ``j`` are both *active* (value above a
  threshold);
* spatial rings ``r = 1..R`` (maps only): sums of ``x_i(p) x_j(p + d)`` over every offset ``d``
  at Chebyshev distance ``r`` (``max(|dy|, |dx|) == r``) and every position ``p`` with ``p + d``
  inside the map, with the sums of the first and second factors and the pair counts, so that
  the cross-covariance per ring can be centred with the global means at the end.

``ClusterMapStats`` is the analyser's second pass: the ring autocovariances of the K summed
cluster maps, once the channels are clustered.

One concept a file, from the ground up:

* ``inputs``: batches to tensors, thresholds parsed;
* ``rings``: the offsets of a Chebyshev ring and where they fit in a map;
* ``kernels``: the products, shifted ring sums and float64 sums, and the chunk sizes;
* ``state``: the running sums as one value (``StatsState``), and ``NotFittedError``;
* ``merge``: Chan's merge and the re-basing of ring sums, for batches and shards alike;
* ``engine``: one batch into the state, chunk by chunk (threads and numerics explained there);
* ``readouts``: the fitted attributes derived from the state;
* ``persistence``: the state and settings as plain arrays in an ``.npz`` file;
* ``channel_stats``: ``ChannelStats``, the estimator that holds settings and state;
* ``cluster_maps``: ``ClusterMapStats``.
"""

from sparsenet.stats.channel_stats import ChannelStats
from sparsenet.stats.cluster_maps import ClusterMapStats
from sparsenet.stats.rings import ring_offsets
from sparsenet.stats.state import NotFittedError

__all__ = ["ChannelStats", "ClusterMapStats", "NotFittedError", "ring_offsets"]
