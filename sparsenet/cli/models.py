"""`sparsenet models`: every registered model with its parameters and multiply-adds."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the registered models with parameters and multiply-adds")
    p.set_defaults(func=run)


def run(args) -> int:
    from sparsenet.models.accounting import measure
    import sparsenet.builder.specnet  # noqa: F401  (registers "specnet")
    from sparsenet.models import get_model, list_models, model_info

    rows = []
    for name in list_models():
        info = model_info(name)
        cost = measure(get_model(name), info.default_input)
        rows.append((name, "x".join(map(str, info.default_input)), f"{cost.params / 1e6:.3f}M",
                     f"{cost.macs / 1e6:.1f}M", info.description))
    header = ("model", "input", "params", "mult-adds", "description")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(4)]
    for row in [header] + rows:
        print("  ".join(f"{c:<{w}}" for c, w in zip(row[:4], widths)) + "  " + row[4])
    print("\nmult-adds: multiply-adds of convolutions and linear layers at batch 1 (1 MAC = 2 FLOPs)")
    return 0
