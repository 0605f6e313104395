"""The word-level tokenizer of the Rhythm policy model.

The vocabulary is generated from the prompt grammar (``policy.prompt``), not learned: whitespace splits the
prompt into words and every word the renderer can produce is one token. So ``Vitality=0.70,`` is one token (a
meter name, its value and the separating comma), every action name is one token, and a history line is always
:data:`policy.prompt.TOKENS_PER_INTERACTION` tokens. The tokenizer is saved through
``PreTrainedTokenizerFast`` so transformers, peft and vLLM load the very same ``tokenizer.json``; its
post-processor prepends ``[BOS]``, which is what ``tokenizer(prompt)`` and vLLM's completions endpoint do by
default.
"""

from __future__ import annotations

from tokenizers import Tokenizer, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from domain import ACTIONS, DAY_NAMES, METERS, RESPONSES, Slot
from policy import prompt as p

PAD, BOS, EOS, UNK = "[PAD]", "[BOS]", "[EOS]", "[UNK]"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)
MODEL_MAX_LENGTH = 2048


def meter_tokens() -> list[str]:
    """Every rendered meter word; all but the last meter carry the comma that follows them."""
    words: list[str] = []
    for position, meter in enumerate(METERS):
        comma = "," if position < len(METERS) - 1 else ""
        words.extend(f"{meter.label}={hundredths / 100:.2f}{comma}" for hundredths in range(101))
    return words


def missing_meter_tokens() -> list[str]:
    """Renderer version 2's word for each missing meter, with the comma like :func:`meter_tokens`."""
    return [
        f"{meter.label}={p.MISSING_METER_TEXT}{',' if position < len(METERS) - 1 else ''}"
        for position, meter in enumerate(METERS)
    ]


def vocabulary(renderer_version: int = p.RENDERER_VERSION) -> list[str]:
    """The full, ordered vocabulary for a renderer version. Order is stable: specials, the 10 actions, the
    prompt's words; version 2 appends its missing-meter words, so every version-1 id keeps its meaning."""
    p.check_version(renderer_version)
    words: list[str] = [*SPECIAL_TOKENS, *(action.value for action in ACTIONS)]
    fixed_text = " ".join(
        [
            p.SYSTEM_LINE,
            p.HISTORY_HEADER.format(days=1),
            p.EMPTY_HISTORY,
            p.CURRENT_PREFIX,
            p.QUESTION,
            p.ARROW,
            "recommended user:",
        ]
    )
    words.extend(fixed_text.split())
    words.extend(str(days) for days in range(1, p.MAX_WINDOW_DAYS + 1))
    words.extend(DAY_NAMES)
    words.extend(f"{slot.label}," for slot in Slot)
    words.extend(meter_tokens())
    words.extend(response.value.upper() for response in RESPONSES)
    if renderer_version >= 2:
        words.extend(missing_meter_tokens())
    return list(dict.fromkeys(words))


def renderer_version_of(tokenizer: PreTrainedTokenizerBase) -> int:
    """The newest prompt text version ``tokenizer`` can read: 2 when it has the missing-meter words, else 1
    (a model folder carries its tokenizer, so this is the version the model was trained on)."""
    vocab = tokenizer.get_vocab()
    return 2 if all(word in vocab for word in missing_meter_tokens()) else 1


def build_tokenizer(renderer_version: int = p.RENDERER_VERSION) -> PreTrainedTokenizerFast:
    """Build the tokenizer object (deterministic: the same vocabulary and ids on every call)."""
    vocab = {word: index for index, word in enumerate(vocabulary(renderer_version))}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token=UNK))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A $B", special_tokens=[(BOS, vocab[BOS])]
    )
    return PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        unk_token=UNK,
        pad_token=PAD,
        model_max_length=MODEL_MAX_LENGTH,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


def action_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token id of each action, in ``ACTIONS`` order (fails loudly if an action is not a single token)."""
    ids = []
    for choice in p.ANSWER_CHOICES:
        encoded = tokenizer(choice, add_special_tokens=False)["input_ids"]
        if len(encoded) != 1 or encoded[0] == tokenizer.unk_token_id:
            raise ValueError(f"action {choice} is not a single known token: {encoded}")
        ids.append(encoded[0])
    return ids


def response_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token id of each response word (``ACCEPTED`` …), in ``RESPONSES`` order."""
    ids: list[int] = []
    for response in RESPONSES:
        token_id = tokenizer.convert_tokens_to_ids(response.value.upper())
        if not isinstance(token_id, int) or token_id == tokenizer.unk_token_id:
            raise ValueError(f"response {response.value} is not a single known token: {token_id}")
        ids.append(token_id)
    return ids
