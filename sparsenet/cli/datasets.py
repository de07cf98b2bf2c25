"""`sparsenet datasets`: the dataset registry, where each comes from and whether it is here."""

from __future__ import annotations


def add_parser(sub) -> None:
    p = sub.add_parser("datasets", help="list the datasets, their source and whether they are present")
    p.set_defaults(func=run)


def run(args) -> int:
    from sparsenet.data import list_datasets

    infos = list_datasets()
    width = max(len(i.name) for i in infos)
    print(f"{'name':<{width}}  present  source")
    for info in infos:
        print(f"{info.name:<{width}}  {'yes' if info.present else 'no':<7}  {info.source}")
        print(f"{'':<{width}}           {info.description}")
        if not info.present:
            print(f"{'':<{width}}           to get it: {info.how_to_get}")
    print("\nYour own data: idx:DIR, cifar10:DIR, cifar100:DIR, imagefolder:DIR, npz:FILE")
    return 0
