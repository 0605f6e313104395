"""What a pretraining run is asked to do (:class:`PretrainConfig`) and reports (:class:`PretrainResult`).

Kept apart from the loop in :mod:`policy.training.pretrain` because the data generator (which reads the
teacher's settings) and the model card (which prints them) need the settings but not the loop; with the
dataclasses here, every import inside ``policy.training`` points down to this module.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from policy.model import ModelSpec
from policy.paths import SHIPPED_SEED
from policy.prompt import RENDERER_VERSION
from policy.teacher import ProfileMix

THREADS = 2
# (weeks, share of users): short episodes dominate early-life behaviour, 5-week ones cover 30-day windows.
WEEK_MIX = ((1, 0.45), (2, 0.3), (3, 0.1), (5, 0.15))
# The DPT recipe (policy.training.dpt): longer episodes, so that learning late in a 4-week history pays, and
# people from the simulator's families and the procedural generators (sim.procedural).
DPT_WEEK_MIX = ((1, 0.2), (2, 0.2), (4, 0.6))
DPT_MODE_MIX = (
    ("archetypes", 0.25),
    ("continuous", 0.125),
    ("ood", 0.125),
    ("proc-table", 0.25),
    ("proc-state", 0.25),
)
RECIPES = ("teacher", "dpt")


def chunk_plan(recipe: str) -> list[tuple[int, float, str | None]]:
    """``(weeks, share of users, profile mode)`` per mix entry; the mode is None for the teacher recipe,
    whose users come from its ProfileMix. Entry ``i`` of this list is ``mix_index`` ``i`` of the seeds."""
    if recipe == "teacher":
        return [(weeks, share, None) for weeks, share in WEEK_MIX]
    if recipe == "dpt":
        return [
            (weeks, w_share * m_share, mode)
            for weeks, w_share in DPT_WEEK_MIX
            for mode, m_share in DPT_MODE_MIX
        ]
    raise ValueError(f"unknown recipe {recipe!r}; expected one of {RECIPES}")


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """Whether the CPU computes bfloat16 natively (Linux flags ``avx512_bf16`` or ``amx_bf16``); False where
    that cannot be read."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return False
    lines = (line for line in text.splitlines() if line.startswith("flags"))
    flags = next((line.split(":", 1)[1].split() for line in lines), [])
    return "avx512_bf16" in flags or "amx_bf16" in flags


@dataclass(frozen=True)
class MissingMeters:
    """How training histories lose meters (renderer version 2 and later), per user:

    * ``no_device``: every meter is missing at every step (no device connected, no calendar);
    * ``some``: a random non-empty subset of the meters is missing at every step (e.g. a watch but no
      calendar: Progress and Connection have no input);
    * ``gaps``: on top of either, each remaining meter is missing at a step with a per-user rate drawn from
      U(0, ``max_gap_rate``) (a device not worn that day, a sync that failed).

    The teacher's targets still come from the person's true state, so the soft cross-entropy teaches the
    model the target averaged over what it cannot see: the marginal the missing token should stand for."""

    no_device: float = 0.15
    some: float = 0.15
    gaps: float = 0.2
    max_gap_rate: float = 0.3

    def __post_init__(self) -> None:
        shares = (self.no_device, self.some, self.gaps, self.max_gap_rate)
        if not all(0.0 <= share <= 1.0 for share in shares) or self.no_device + self.some > 1.0:
            raise ValueError(f"shares and the gap rate must lie in [0, 1] (no_device + some too): {shares}")


@dataclass
class PretrainConfig:
    seed: int = SHIPPED_SEED
    # "teacher": distil the particle teacher (policy.teacher); "dpt": label every decision with the true
    # best action of the hidden person (policy.training.dpt).
    recipe: str = "teacher"
    # Optimizer steps are what the budget buys: measured on one machine (300 archetype users, expected week-1
    # acceptance), 891 steps on 3,000 users gave 0.664, 828 steps on 8,000 users 0.666, 1,135 steps on 5,000
    # users 0.693. More users past a few thousand add little; every minute not spent stepping costs.
    users: int = 5000
    # Measured on this task: 16k-token batches at 3e-3 reached validation KL 0.61 in 400 steps; 8k-token
    # batches at 6e-3 (ahead after 50 steps) plateaued at KL 0.94 after 700. With bfloat16 autocast a step
    # takes ~0.8 s on a quiet 2-core machine (~1.1 s on a busier one, where the --minutes cap, data and the
    # card's evaluation included, takes over the schedule).
    steps: int = 1200
    batch_tokens: int = 16384
    lr: float = 3e-3
    warmup_steps: int = 30
    weight_decay: float = 0.01
    particles: int = 64
    # The teacher acts at inverse temperature ``beta``; the model is trained on the teacher's distribution at
    # the softer ``target_beta`` and its head is then scaled to ``serve_beta``. At beta = 40 the target is
    # almost one-hot: it says which action wins but next to nothing about how the others rank, so every
    # decision teaches ~1 comparison. At 10 the target carries
    # the posterior-mean acceptance of all 10 actions (logit differences = 10 x acceptance differences):
    # classic "dark knowledge" distillation, more signal per supervised decision on a CPU budget.
    target_beta: float = 10.0
    beta: float = 40.0
    # The shipped model answers at this inverse temperature (head scaled by serve_beta / target_beta). Sharper
    # than the teacher's 40: on the simulator the teacher's acceptance is flat in beta (0.731 at 40, 0.734 at
    # 200) while the student's sampled mistakes are what delay identification; measured on a model trained at
    # 10 (100 archetype users, week 1): acceptance 0.636 / 0.643 / 0.657 / 0.653 and median identification
    # 12 / 8 / 8 / 6 interactions when served at 30 / 40 / 80 / 160. Exploration in production comes from
    # the service's temperature and exploration floor, not from the model.
    serve_beta: float = 160.0
    max_epsilon: float = 0.3
    val_fraction: float = 0.03
    minutes: float = 19.5
    # Weight of the auxiliary loss on predicting each response in the history. Predicting whether *this*
    # person accepts *this* action in *this* state is exactly the inference the recommendations rest on, and
    # every history line carries that label for free (the teacher targets only say what to do, not why).
    response_weight: float = 0.5
    # Label each response with the simulator's true response distribution of that action in that state
    # instead of the sampled outcome: the same expected gradient with less noise. Measured here (8-minute
    # runs, 200 archetype users): no better than the sampled label (week-1 acceptance 0.574 vs 0.566 at
    # target_beta 40, 0.613 vs 0.638 at 10), so it stays off; the option is kept for longer budgets.
    soft_responses: bool = False
    # bfloat16 autocast for the forward pass (weights, optimizer and the saved model stay float32): ~1.4x
    # more steps per minute on a CPU with native bfloat16 (AVX-512 BF16 / AMX), but emulated elsewhere: on an
    # AVX2-only EPYC one step took 45-58 s with it against 5-9 s without (1 thread, load 5). So the default
    # follows the CPU.
    bf16: bool = field(default_factory=lambda: cpu_has_native_bf16())
    # The prompt text version the model reads (policy.prompt.RENDERER_VERSION). From version 2 on, a missing
    # meter has a token of its own, and the histories are trained with missing meters (below).
    renderer_version: int = RENDERER_VERSION
    missing: MissingMeters = field(default_factory=MissingMeters)
    eval_users: int = 60
    # Processes for the teacher rollouts; the data are the same for any count (see generate_sequences).
    data_workers: int = THREADS
    spec: ModelSpec = field(default_factory=ModelSpec)
    mix: ProfileMix = field(default_factory=ProfileMix)


@dataclass
class PretrainResult:
    out_dir: Path
    steps_done: int
    train_loss_first: float
    train_loss_last: float
    # KL(teacher at target_beta || model) per validation decision: the objective trained, before and after.
    val_kl_before: float
    val_kl_after: float
    # The model as served (head scaled to serve_beta): its argmax agrees with the teacher's this often.
    val_argmax_agreement: float
    val_action_mass: float
    seconds_data: float
    seconds_train: float
    stopped_early: bool
    evaluation: dict[str, dict[str, float]]
    history: list[tuple[int, float]]
