"""LLM-call cassettes: record each case's LLM calls once, replay them offline after.

* :mod:`.model`: the cassette file (one JSON document per case) and its interactions.
* :mod:`.files`: reading (``json`` only) and writing (secret scan, atomic) one file.
* :mod:`.keys`: the match key of a call (its normalised request, role, case, turn) and the
  diff shown when nothing matches.
* :mod:`.session`: the tape of one running case, which every SDK call goes through.
* :mod:`.tally`: the run's figures for ``summary.json`` and the terminal.

Nothing here touches the network or imports a provider SDK: the SDK side is
:mod:`pytest_fluxloop.integrations.cassette_tape`, the run side
:mod:`pytest_fluxloop.run.cassettes`. User guide: ``docs/cassettes.md``.
"""

from .errors import CassetteError, CassetteMiss
from .model import FORMAT_VERSION, Cassette, Interaction
from .session import MODES, CaseTape, Mode, current_tape

__all__ = [
    "FORMAT_VERSION",
    "MODES",
    "CaseTape",
    "Cassette",
    "CassetteError",
    "CassetteMiss",
    "Interaction",
    "Mode",
    "current_tape",
]
