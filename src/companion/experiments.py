"""Compatibility: the names this module held before it was split by job. New code imports from
:mod:`companion.runs` (what each chapter needs, training), :mod:`companion.search` (λ/β
selection), :mod:`companion.tables` / :mod:`companion.tables_weights` (frames from finished
runs), :mod:`companion.claims` (the claim rules) and :mod:`companion.captions` /
:mod:`companion.captions_weights` (prose and labels)."""

from companion.captions import *  # noqa: F401,F403
from companion.captions_weights import *  # noqa: F401,F403
from companion.checks import require_columns  # noqa: F401
from companion.claims import *  # noqa: F401,F403
from companion.runs import *  # noqa: F401,F403
from companion.runs import add_cli  # noqa: F401
from companion.search import *  # noqa: F401,F403
from companion.tables import *  # noqa: F401,F403
from companion.tables_weights import *  # noqa: F401,F403
