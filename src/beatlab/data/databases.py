"""Database registry: every PhysioNet database beatlab reads is one declared spec.

A spec says where the database lives online and how to check it, which annotator holds the
reference beats, which sampling rates and leads its records may have, how its beat symbols map to
the AAMI EC57 classes, which records belong to one patient, and its named splits. Adding a
database is one `register_database(DatabaseSpec(...))` and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from beatlab.errors import BeatlabError, unknown

AAMI: Mapping[str, int] = MappingProxyType(
    {
        **dict.fromkeys("NLRBejn", 0),
        **dict.fromkeys("AaJS", 1),
        **dict.fromkeys("VrE", 2),
        "F": 3,
        **dict.fromkeys("/fQ?", 4),
    }
)
"""AAMI EC57 mapping of all 19 PhysioNet beat symbols to class labels; other symbols are not
beats. MIT-BIH uses 15 of them; the others may mark bundle branch block beats of either side
(B, as L and R: N), supraventricular escape beats (n, as the atrial and nodal
escapes e and j: N), R-on-T ventricular premature beats (r: V) and beats left unclassified (?: Q).
A beat symbol missing here would drop the beat and double its neighbours' R-R intervals."""

SAME_VIEW: Mapping[str, tuple[str, ...]] = MappingProxyType({"MLII": ("II",), "II": ("MLII",)})
"""Leads that see the heart from the same place under another name: MIT-BIH's modified limb lead
II is a Holter's version of the 12-lead ECG's lead II, so a model of one reads the other first."""


def find_lead(wanted: Iterable[str], names: Iterable[str]) -> str | None:
    """The record's own name of the first of `wanted` among its lead `names`, or None. Names
    match whatever their case: PTB writes `ii` and `v1`, INCART `aVR`, PTB-XL `AVR`."""
    own: dict[str, str] = {}
    for name in map(str, names):
        own.setdefault(name.casefold(), name)
    return next((own[w.casefold()] for w in wanted if w.casefold() in own), None)


@dataclass(frozen=True)
class Split:
    """A named, published split of a database's records: train (+ validation) and test."""

    train: tuple[str, ...]
    test: tuple[str, ...]
    reference: str = ""


@dataclass(frozen=True)
class DatabaseSpec:
    """One PhysioNet database, as beatlab reads it."""

    name: str
    title: str
    version: str
    url: str
    """Online home of the files (a directory URL ending in '/')."""
    checksums: str | None
    """Package resource with `<sha256> <file>` lines pinning what we read; None: PhysioNet's own
    SHA256SUMS.txt is fetched with the database."""
    fs: tuple[float, ...]
    """Sampling rates the records may have (read from each header and checked)."""
    leads: tuple[str, ...]
    """Preferred leads, in order: each record uses the first it has."""
    annotator: str = "atr"
    symbols: Mapping[str, int] = field(default_factory=lambda: AAMI)
    patients: Mapping[str, str] = field(default_factory=dict)
    """Record -> patient where several records come from one person (default: the record)."""
    patient_comment: str | None = None
    """A pattern whose group names the record's patient in a header comment, for a database
    whose headers say whose each record is (INCART: `# patient 12`); see `record_patients`."""
    splits: Mapping[str, Split] = field(default_factory=dict)
    excluded: tuple[str, ...] = ()
    """Records left out of its named splits (paced records, as in de Chazal et al. 2004)."""
    citation: str = ""

    def patient(self, record: str) -> str:
        """The patient id of `record`, prefixed with the database, unique across databases."""
        return f"{self.name}:{self.patients.get(record, record)}"


_DATABASES: dict[str, DatabaseSpec] = {}


def register_database(spec: DatabaseSpec) -> DatabaseSpec:
    if spec.name in _DATABASES:
        raise ValueError(f"database {spec.name!r} is registered twice")
    _DATABASES[spec.name] = spec
    return spec


def list_databases() -> list[str]:
    return sorted(_DATABASES)


def get_database(name: str) -> DatabaseSpec:
    """The spec of database `name`, or one line naming the known ones."""
    if name not in _DATABASES:
        raise unknown("database", name, list_databases())
    return _DATABASES[name]


def parse_databases(text: str) -> tuple[DatabaseSpec, ...]:
    """`mitdb` or `mitdb,svdb` (databases pooled for training), each checked."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise BeatlabError("--db needs at least one database name")
    if len(set(names)) != len(names):
        raise BeatlabError(f"--db names a database twice: {text!r}")
    return tuple(get_database(n) for n in names)


PHYSIONET = (
    "Goldberger AL et al. PhysioBank, PhysioToolkit, and PhysioNet. Circulation 101(23) 2000"
)

DS1 = [
    "101",
    "106",
    "108",
    "109",
    "112",
    "114",
    "115",
    "116",
    "118",
    "119",
    "122",
    "124",
    "201",
    "203",
    "205",
    "207",
    "208",
    "209",
    "215",
    "220",
    "223",
    "230",
]
DS2 = [
    "100",
    "103",
    "105",
    "111",
    "113",
    "117",
    "121",
    "123",
    "200",
    "202",
    "210",
    "212",
    "213",
    "214",
    "219",
    "221",
    "222",
    "228",
    "231",
    "232",
    "233",
    "234",
]

MITDB = register_database(
    DatabaseSpec(
        name="mitdb",
        title="MIT-BIH Arrhythmia Database",
        version="1.0.0",
        url="https://physionet.org/files/mitdb/1.0.0/",
        checksums="mitdb_sha256sums.txt",
        fs=(360.0,),
        leads=("MLII", "V5"),  # 102 and 104 have no MLII; V5 is their first lead
        patients={"201": "201+202", "202": "201+202"},  # one person, two records
        splits={
            "inter": Split(
                tuple(DS1), tuple(DS2), "de Chazal, O'Dwyer & Reilly, IEEE TBME 51(7) 2004"
            )
        },
        excluded=("102", "104", "107", "217"),
        citation=f"Moody GB, Mark RG. IEEE Eng Med Biol 20(3) 2001; {PHYSIONET}",
    )
)

SVDB = register_database(
    DatabaseSpec(
        name="svdb",
        title="MIT-BIH Supraventricular Arrhythmia Database",
        version="1.0.0",
        url="https://physionet.org/files/svdb/1.0.0/",
        checksums="svdb_sha256sums.txt",  # the 58 records shipped beside beatlab (of 78)
        fs=(128.0,),
        leads=("ECG1", "ECG2"),
        citation=f"Greenwald SD. Thesis, Harvard-MIT HST 1990; {PHYSIONET}",
    )
)

INCARTDB = register_database(
    DatabaseSpec(
        name="incartdb",
        title="St Petersburg INCART 12-lead Arrhythmia Database",
        version="1.0.0",
        url="https://physionet.org/files/incartdb/1.0.0/",
        checksums=None,  # PhysioNet's SHA256SUMS.txt, fetched with the records
        fs=(257.0,),
        leads=("II",),
        patient_comment=r"patient (\d+)",  # 75 records of 32 patients: each header says whose
        citation=PHYSIONET,
    )
)
