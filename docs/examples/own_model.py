"""Bring your own model and data: a network defined here, trained with plain torch on the digits
that ship with scikit-learn, then discovered with sparsenet.discover on a DataLoader.

    python docs/examples/own_model.py
"""

import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sparsenet


class Net(nn.Module):
    def __init__(self, width=16):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(),
                                      nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * width, 10))

    def forward(self, x):
        return self.head(self.features(x))


if __name__ == "__main__":  # `--model docs/examples/own_model.py:Net` imports the class only
    digits = load_digits()
    x = torch.tensor(digits.images, dtype=torch.float32)[:, None] / 16.0   # N x 1 x 8 x 8
    x = (x - x.mean()) / x.std()
    y = torch.tensor(digits.target)
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, generator=torch.Generator().manual_seed(0))

    torch.manual_seed(0)
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for epoch in range(3):
        for xb, yb in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(xb), yb).backward()
            optimizer.step()

    found = sparsenet.discover(model, "features.3", DataLoader(TensorDataset(x, y), batch_size=256),
                               device="auto", max_samples=1500, seed=0)
    print(found.n_clusters, "clusters of sizes", [c.size for c in found.clusters],
          "kernel sizes", [c.kernel_size for c in found.clusters])
    # stability is None when a single cluster is found (there are no two labelings to compare)
    print("significance p =", found.significance["p"], " stability =", found.stability)
    found.save("runs/own-model")   # discovery.json, report.md, plots, affinity.npy, spectrum.npy, stats.npz
    torch.save(model.state_dict(), "runs/own-model.pt")   # a plain state_dict, for the command line
