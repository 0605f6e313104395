"""Training the policy model, split by concern so a per-user fine-tune can take the parts it needs.

Imports point one way, from the run down to its parts (none of these imports :mod:`policy.training.pretrain`):

* :mod:`policy.training.config` — ``PretrainConfig`` / ``PretrainResult`` and the constants the parts share
  (thread count, the episode-length mix). A plain dataclass module at the bottom, so the data generator and
  the model card can read a run's settings without importing the loop that runs it.
* :mod:`policy.training.data` — rollouts to token sequences: ``episodes_to_sequences`` renders each episode
  with the production prompt renderer and marks the supervised positions and their targets;
  ``generate_sequences`` runs the teacher's rollouts in worker processes.
* :mod:`policy.training.batching` — ``make_batches`` (length-bucketed, token-budgeted) and ``collate``
  (padded tensors, flat decision / response indices, targets at a given inverse temperature).
* :mod:`policy.training.losses` — the distillation loss against the teacher's distribution, the auxiliary
  response loss, and the validation KL. Model-agnostic beyond "a causal LM with ``model`` and ``lm_head``", so
  a LoRA-wrapped model trains with the same functions.
* :mod:`policy.training.card` — the folder's ``README.md`` (model card), ``training_metrics.json`` and the
  week-1 evaluation in the card; the only part that runs the model as a simulator policy.
* :mod:`policy.training.pretrain` — ``pretrain()``: optimizer, learning-rate schedule, the training loop,
  head sharpening and writing the folder (``rhythm pretrain``).
"""
