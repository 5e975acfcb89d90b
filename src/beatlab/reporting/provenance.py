"""Where every number of a report came from: the database and its checksums, the data split and
balancing, the seed and the package versions, taken from what each run recorded."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Any

from beatlab.data.build import read_cache_metadata
from beatlab.data.databases import DatabaseSpec, get_database
from beatlab.data.fetch import load_checksums
from beatlab.reporting.document import Block, Heading, Table, Text
from beatlab.reporting.sources import Experiment, show
from beatlab.training.runs import Run


def database_name(spec: DatabaseSpec) -> str:
    return f"{spec.title} v{spec.version}"


def listing_sha256(sums: dict[str, str]) -> str:
    """SHA-256 of `<sha256> <name>` lines sorted by name: the shipped list's own layout, so a
    cache built from exactly the shipped files has the shipped list's SHA-256."""
    text = "".join(f"{sums[name]} {name}\n" for name in sorted(sums))
    return hashlib.sha256(text.encode()).hexdigest()


def dataset_meta(source: Run | Experiment) -> dict[str, Any]:
    """The dataset provenance a run recorded; for an experiment, its best run's, else the summary's,
    else what its best config says."""
    if isinstance(source, Run):
        return dict(source.info.get("dataset", {}))
    if source.best_run is not None:
        return dataset_meta(source.best_run)
    if isinstance(source.summary.get("dataset"), dict):
        return dict(source.summary["dataset"])
    config = source.best_config
    if config is None:
        return {}
    return {
        "source": "files" if config.train_file else "mitdb",
        **{k: getattr(config, k) for k in ("split", "balance", "seed", "folds", "limit")},
    }


def versions(source: Run | Experiment) -> dict[str, str]:
    if isinstance(source, Run):
        sums = source.info.get("arithmetic") or {}  # absent in runs from before beatlab kept it
        return {
            **source.info.get("versions", {}),
            **({"CPU kernels (torch)": str(sums["cpu"])} if "cpu" in sums else {}),
            **({"torch threads": str(sums["threads"])} if "threads" in sums else {}),
        }
    if source.best_run is not None:
        return versions(source.best_run)
    return dict(source.summary.get("versions") or {})


def provenance(sources: list[tuple[str, Run | Experiment]]) -> list[Block]:
    metas = [(label, dataset_meta(source)) for label, source in sources]
    blocks: list[Block] = [
        Heading("Provenance"),
        Text(
            "Each run's config.json (an experiment's best_config) retrains it with "
            "`beatlab train --config`: the dataset is rebuilt from the database below with the "
            "same split, balancing and seed."
        ),
        Heading("Database", 3),
        *(_database_table(spec) for spec in _databases(metas)),
        *_cache_blocks(metas),
        Heading("Data", 3),
        _data_table(metas),
        Heading("Package versions", 3),
        _versions_table([(label, versions(source)) for label, source in sources]),
    ]
    return blocks


def _databases(metas: list[tuple[str, dict[str, Any]]]) -> list[DatabaseSpec]:
    """The registered databases the inputs were built from (MIT-BIH for files and old runs)."""
    names = [n for _, meta in metas for n in str(meta.get("source") or "mitdb").split(",")]
    return [get_database(n) for n in dict.fromkeys(names) if n not in ("files", "")] or [
        get_database("mitdb")
    ]


def _database_table(spec: DatabaseSpec) -> Table:
    rows = [["database", database_name(spec)], ["source", spec.url]]
    if spec.checksums is not None:
        shipped = (resources.files("beatlab.data") / spec.checksums).read_bytes()
        count = len(load_checksums(spec=spec))
        rows += [
            ["checksum list", f"beatlab/data/{spec.checksums}: {count} files"],
            ["SHA-256 of the checksum list", hashlib.sha256(shipped).hexdigest()],
        ]
    else:
        rows.append(["checksum list", "PhysioNet's SHA256SUMS.txt, fetched with the records"])
    return Table(["item", "value"], rows)


def _cache_blocks(metas: list[tuple[str, dict[str, Any]]]) -> list[Block]:
    """One table per beats cache the inputs were trained from, checked against the shipped
    checksums; a line for inputs whose cache is not (or no longer) here."""
    users: dict[str, list[str]] = {}
    for label, meta in metas:
        if meta.get("source") != "files":  # prepared beat files have no cache
            for cache in str(meta.get("cache") or "").split(","):
                users.setdefault(str(Path(cache).resolve()) if cache else "", []).append(label)
    blocks: list[Block] = []
    missing: list[str] = []
    for cache, labels in users.items():
        built = read_cache_metadata(Path(cache)) if cache else None
        if built is None:
            missing += [f"{label} ({cache})" if cache else label for label in labels]
            continue
        sources: dict[str, str] = built.get("sources", {})
        spec = get_database(built.get("db", "mitdb"))
        shipped = load_checksums(spec=spec) if spec.checksums else sources
        params = built.get("params", {}).items()
        counts = zip(built.get("classes", []), built.get("counts", []), strict=False)
        blocks.append(
            Table(
                ["item", "value"],
                [
                    ["beats cache", cache],
                    ["database", spec.name],
                    ["used by", ", ".join(labels)],
                    ["source files", str(len(sources))],
                    ["SHA-256 of their checksums", listing_sha256(sources)],
                    ["matches the checksum list", _compare(sources, shipped)],
                    ["build parameters", ", ".join(f"{k}={show(v)}" for k, v in params) or "–"],
                    ["beats", ", ".join(f"{c} {n:,}" for c, n in counts) or "–"],
                ],
                caption="the source files' checksums as recorded in the beats cache",
            )
        )
    if missing:
        blocks.append(
            Text("Beats cache not recorded, or not found here, for: " + ", ".join(missing))
        )
    return blocks


def _compare(sources: dict[str, str], shipped: dict[str, str]) -> str:
    if sources == shipped:
        return "yes"
    differ = sum(1 for name, sha in sources.items() if name in shipped and shipped[name] != sha)
    missing, extra = len(shipped.keys() - sources.keys()), len(sources.keys() - shipped.keys())
    return f"no: {differ} differ, {missing} missing, {extra} not listed"


def _data_table(metas: list[tuple[str, dict[str, Any]]]) -> Table:
    keys = ("source", "split", "folds", "fold", "balance", "seed", "limit")
    rows = []
    for label, meta in metas:
        files = [
            f"{p}: {meta[f'{p}_file']}" for p in ("train", "valid", "test") if meta.get(f"{p}_file")
        ]
        row = [label, *(show(meta.get(k)) for k in keys)]
        if files:
            row[1] = "files (" + ", ".join(files) + ")"
        rows.append(row)
    return Table(["input", *keys], rows, caption="split and balancing (of the training part only)")


def _versions_table(per_input: list[tuple[str, dict[str, str]]]) -> Table:
    packages = list(dict.fromkeys(name for _, v in per_input for name in v))
    return Table(
        ["package", *(label for label, _ in per_input)],
        [[name, *(v.get(name, "–") for _, v in per_input)] for name in packages],
        caption="as recorded at training time",
    )
