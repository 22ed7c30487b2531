"""How the jobs of :mod:`companion.train.launch` are submitted: the executors, the options (SLURM's
partition / GPUs / time / memory, array parallelism, requeues) with one check that names what
is wrong and what is accepted, and the same options as command-line flags."""

from __future__ import annotations

from dataclasses import dataclass, field

from companion.checks import check_int, check_number

EXECUTORS = ("serial", "local", "slurm")
#: default time limit of a SLURM job; a run that needs longer is requeued from its checkpoint
SLURM_TIME = "24:00:00"


# --------------------------------------------------------------------------- options
@dataclass(frozen=True)
class LaunchOptions:
    """How jobs are submitted (all optional; see :func:`launch_options`)."""

    array_parallelism: int | None = None  # jobs at once (local: one per GPU slot or 1; slurm: 256)
    gpus_per_job: int | None = None       # 0 or 1 (local default: 1 if CUDA is available; slurm: 1)
    cpus_per_job: int | None = None       # torch threads of a job (slurm: --cpus-per-task)
    mem_gb: float | None = None           # slurm --mem
    time: str | int | None = None         # slurm --time: minutes or [D-]HH:MM[:SS]
    partition: str | None = None          # slurm --partition
    slurm_extra: dict = field(default_factory=dict)  # more sbatch flags: {"account": "abc"}
    max_requeue: int = 5                  # requeues after time-outs (preemptions are not counted)
    log_dir: str | None = None            # submitit folder (default: root/.launch/logs)
    wait: bool = True                     # wait for the jobs (False: submit and return)


SLURM_ONLY = ("mem_gb", "partition", "slurm_extra")
ACCEPTED = tuple(LaunchOptions.__dataclass_fields__)


def parse_time(value: str | int) -> int:
    """SLURM's time formats (minutes, ``MM:SS``, ``HH:MM:SS``, ``D-HH[:MM[:SS]]``) → minutes."""
    text = str(value).strip()
    days, dash, clock = text.partition("-")
    if not dash:
        days, clock = "0", text
    try:
        d, parts = int(days), [int(p) for p in clock.split(":")]
    except ValueError:
        d, parts = -1, []
    if d < 0 or not 1 <= len(parts) <= 3 or min(parts) < 0:
        minutes = 0
    else:
        if dash:  # D-HH, D-HH:MM, D-HH:MM:SS
            h, m, s = (parts + [0, 0])[:3]
        elif len(parts) == 3:  # HH:MM:SS
            h, m, s = parts
        else:  # MM, MM:SS
            h, m, s = 0, parts[0], (parts + [0])[1]
        minutes = d * 1440 + h * 60 + m + (1 if s else 0)
    if minutes <= 0:
        raise ValueError(f"time: expected minutes or [D-]HH:MM[:SS] (as sbatch --time), got {value!r}")
    return minutes


def _parse_extra(extra) -> dict:
    """``["account=abc", "exclusive"]`` or a dict → sbatch flags (a bare KEY is a flag: True)."""
    if isinstance(extra, dict):
        items = list(extra.items())
    else:
        items = [(s.partition("=")[0], s.partition("=")[2] if "=" in s else True) for s in extra]
    out = {}
    for key, value in items:
        key = str(key).strip().lstrip("-")
        if not key:
            raise ValueError(f"slurm_extra: expected KEY=VALUE (sbatch flag without '--'), got {extra!r}")
        if key.replace("-", "_") in ("partition", "time", "mem", "gpus_per_node", "cpus_per_task", "array"):
            raise ValueError(f"slurm_extra: set {key} with its own option (partition, time, mem_gb, "
                             "gpus_per_job, cpus_per_job, array_parallelism), not as an extra flag")
        out[key] = value
    return out


def launch_options(executor: str = "serial", **options) -> LaunchOptions:
    """Validate ``options`` for ``executor``: one ValueError naming what is wrong and what is accepted."""
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; accepted: {', '.join(EXECUTORS)}")
    unknown = sorted(set(options) - set(ACCEPTED))
    if unknown:
        raise ValueError(f"unknown launch option(s) {', '.join(unknown)}; accepted: {', '.join(ACCEPTED)}")
    given = {k for k, v in options.items() if v not in (None, {}, [], ())}
    if executor == "serial" and given - {"wait"}:
        raise ValueError(f"option(s) {', '.join(sorted(given - {'wait'}))} need --executor local or slurm "
                         "(serial trains in this process)")
    if options.get("wait") is False and executor != "slurm":
        raise ValueError("wait=False (--no-wait) needs --executor slurm; local and serial jobs run from this process")
    if executor == "local" and given & set(SLURM_ONLY):
        raise ValueError(f"option(s) {', '.join(sorted(given & set(SLURM_ONLY)))} apply to --executor slurm only")
    for name, low in (("array_parallelism", 1), ("gpus_per_job", 0), ("cpus_per_job", 1), ("max_requeue", 0)):
        check_int(name, options.get(name), minimum=low, optional=True)
    if (options.get("gpus_per_job") or 0) > 1:
        raise ValueError(f"gpus_per_job={options['gpus_per_job']}: a job trains one run in one process, on at "
                         "most one GPU (0 or 1); for one run on several GPUs use torchrun (DDP) on one node")
    check_number("mem_gb", options.get("mem_gb"), low=0, low_open=True, optional=True)
    if options.get("time") is not None:
        parse_time(options["time"])
    if options.get("slurm_extra"):
        options["slurm_extra"] = _parse_extra(options["slurm_extra"])
    return LaunchOptions(**{k: v for k, v in options.items() if v is not None})


# --------------------------------------------------------------------------- CLI helpers
def add_arguments(parser) -> None:
    """The launch options as flags (``companion sweep``; ``companion experiments`` may reuse them)."""
    g = parser.add_argument_group("launching: one job per unfinished run")
    g.add_argument("--executor", choices=EXECUTORS, default="serial",
                   help="serial: in this process (default); local: submitit processes on this machine, "
                        "one per GPU; slurm: a SLURM job array")
    g.add_argument("--array-parallelism", type=int, metavar="N",
                   help="at most N jobs at once (local: default one per GPU, or 1; slurm: default 256)")
    g.add_argument("--gpus-per-job", type=int, metavar="N", help="0 or 1 GPU per run (default 1; local: 0 without CUDA)")
    g.add_argument("--cpus-per-job", type=int, metavar="N", help="CPU cores (torch threads) per run")
    g.add_argument("--mem-gb", type=float, metavar="GB", help="slurm: memory per job")
    g.add_argument("--time", metavar="T", help=f"time limit per job, minutes or [D-]HH:MM:SS (slurm default "
                                               f"{SLURM_TIME}); a run that needs longer is requeued and resumed")
    g.add_argument("--partition", help="slurm: partition")
    g.add_argument("--slurm-extra", action="append", metavar="KEY=VALUE",
                   help="slurm: another sbatch flag, e.g. account=abc, qos=high, constraint=a100 (repeatable)")
    g.add_argument("--max-requeue", type=int, metavar="N", help="requeues after a time-out (default 5)")
    g.add_argument("--log-dir", metavar="DIR", help="submitit logs (default ROOT/.launch/logs)")
    g.add_argument("--no-wait", action="store_true", help="slurm: submit and return (see --status)")


def options_from_args(args) -> dict:
    """The launch options given on the command line (for :func:`train_missing`), without executor."""
    options = {name: getattr(args, name, None) for name in ACCEPTED if name != "wait"}
    if getattr(args, "no_wait", False):
        options["wait"] = False
    return {k: v for k, v in options.items() if v is not None}
