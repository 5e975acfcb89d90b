"""Hypertuning with Ray Tune: search a space on validation, test the best configuration once.

`load_space` reads and checks a search-space file (configs/search/*.toml); `start` runs a new
experiment and `resume` continues an interrupted one, on a local Ray instance or a cluster.
"""

from beatlab.tuning.experiment import Outcome, TuneSettings, resume, start
from beatlab.tuning.space import SearchSpace, load_space

__all__ = ["Outcome", "SearchSpace", "TuneSettings", "load_space", "resume", "start"]
