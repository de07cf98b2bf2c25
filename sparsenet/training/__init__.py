"""Training: the recipe (``config``: TrainConfig), the loop (``loop``: train, train_named) and checkpoints (``checkpoint``)."""
