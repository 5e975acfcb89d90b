"""beatlab's GQRS (`beatlab.deploy.predict.gqrs`: wfdb's detection loop, its filter computed by
numpy) against wfdb's own `processing.gqrs_detect`, side by side in one process, on whole
records: the same beats, and how much faster.

    python benchmarks/gqrs_speed.py [--db mitdb] [--records 100 101 ...] [--data-dir DIR]
        [--minutes M]

Every record of the database (or `--records`), its first lead, whole or its first `--minutes`.
Prints, per record, the detections of each and whether they are identical, the seconds of each,
and their ratio; then the totals. wfdb's is the baseline: the ratio is its time over beatlab's.
About 3 minutes for MIT-BIH's 48 records on one core.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import wfdb
from wfdb import processing

from beatlab.data.build import record_names
from beatlab.data.databases import get_database
from beatlab.data.dataset import resolve_data_dir
from beatlab.deploy.predict import gqrs
from beatlab.errors import BeatlabError, script


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--db", default="mitdb")
    parser.add_argument("--records", nargs="+", default=None, help="default: every record")
    parser.add_argument("--minutes", type=float, default=None, help="default: whole records")
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    folder = resolve_data_dir(args.data_dir) / get_database(args.db).name
    records = args.records or record_names(folder)
    if args.minutes is not None and args.minutes <= 0:
        raise BeatlabError("--minutes must be above 0")
    totals = np.zeros(2)
    differ = []
    print(f"{'record':>8} {'beats':>7} {'same':>5} {'wfdb s':>8} {'beatlab s':>10} {'ratio':>6}")
    for name in records:
        base = folder / name
        if not base.with_suffix(".hea").exists():
            raise BeatlabError(f"record {name} has no .hea file", base.with_suffix(".hea"))
        fs = float(wfdb.rdheader(str(base)).fs)
        end = None if args.minutes is None else round(args.minutes * 60 * fs)
        lead = wfdb.rdrecord(str(base), channels=[0], sampto=end).p_signal[:, 0]
        start = time.perf_counter()
        theirs = processing.gqrs_detect(sig=lead, fs=fs)
        middle = time.perf_counter()
        ours = gqrs(lead, fs)
        seconds = np.array([middle - start, time.perf_counter() - middle])
        totals += seconds
        same = np.array_equal(theirs, ours)
        if not same:
            differ.append(name)
        print(
            f"{name:>8} {len(ours):>7,} {'yes' if same else 'NO':>5} {seconds[0]:>8.2f} "
            f"{seconds[1]:>10.2f} {seconds[0] / seconds[1]:>6.2f}",
            flush=True,
        )
    print(
        f"\n{len(records)} records of {args.db}: wfdb {totals[0]:.1f} s, beatlab {totals[1]:.1f} s,"
        f" ratio {totals[0] / totals[1]:.2f}; detections identical in "
        f"{len(records) - len(differ)} of {len(records)}"
        + (f" (not in {', '.join(differ)})" if differ else "")
    )


if __name__ == "__main__":
    script(main)
