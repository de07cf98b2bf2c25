"""Training: the loop (``loop``: TrainConfig, train, train_named) and checkpoints (``checkpoint``)."""
