from __future__ import annotations

from pathlib import Path

from transformers import AutoTokenizer

from policy.paths import SHIPPED_MODEL_DIR
from policy.prompt import ANSWER_CHOICES, TOKENS_PER_INTERACTION, render_interaction, render_prompt
from policy.tokenizer import action_token_ids, build_tokenizer, meter_tokens
from tests.policy.conftest import make_history


def test_every_action_is_exactly_one_token() -> None:
    tokenizer = build_tokenizer()
    ids = action_token_ids(tokenizer)
    assert len(set(ids)) == len(ANSWER_CHOICES)
    for choice, token_id in zip(ANSWER_CHOICES, ids, strict=True):
        assert tokenizer(choice, add_special_tokens=False)["input_ids"] == [token_id]
        assert tokenizer.convert_ids_to_tokens(token_id) == choice


def test_every_meter_value_is_one_known_token() -> None:
    tokenizer = build_tokenizer()
    words = meter_tokens()
    assert len(words) == 5 * 101
    for word in words:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and ids[0] != tokenizer.unk_token_id, word


def test_prompts_have_no_unknown_tokens_and_fixed_size_lines() -> None:
    tokenizer = build_tokenizer()
    history, current = make_history(50, seed=9)
    ids = tokenizer(render_prompt(history, current))["input_ids"]
    assert tokenizer.unk_token_id not in ids
    assert ids[0] == tokenizer.bos_token_id
    for item in history:
        assert len(tokenizer(render_interaction(item), add_special_tokens=False)["input_ids"]) == (
            TOKENS_PER_INTERACTION
        )


def test_shipped_folder_tokenizer_is_the_built_one() -> None:
    shipped = AutoTokenizer.from_pretrained(SHIPPED_MODEL_DIR)
    built = build_tokenizer()
    prompt = render_prompt(*make_history(10, seed=10))
    assert shipped(prompt)["input_ids"] == built(prompt)["input_ids"]
    assert shipped.get_vocab() == built.get_vocab()
    assert Path(SHIPPED_MODEL_DIR / "special_tokens_map.json").is_file()


def test_version_2_appends_the_missing_meter_words_and_keeps_every_version_1_id() -> None:
    from policy.tokenizer import missing_meter_tokens, renderer_version_of, vocabulary

    v1, v2 = vocabulary(1), vocabulary(2)
    assert v2[: len(v1)] == v1
    assert v2[len(v1) :] == missing_meter_tokens() and len(missing_meter_tokens()) == 5
    assert renderer_version_of(build_tokenizer(1)) == 1
    assert renderer_version_of(build_tokenizer(2)) == 2


def test_version_2_lines_with_missing_meters_stay_fixed_size_and_known() -> None:
    from domain import Interaction, SlotState
    from policy.prompt import shown_meters

    tokenizer = build_tokenizer(2)
    history, current = make_history(20, seed=13)
    patterns = ([None] * 5, [0.3, None, 0.5, None, 0.1], [None, 0.2, 0.9, 0.4, 0.6])
    history = [
        Interaction(
            SlotState(item.state.day, item.state.slot, shown_meters(patterns[index % 3])),
            item.action,
            item.response,
        )
        for index, item in enumerate(history)
    ]
    ids = tokenizer(render_prompt(history, current, version=2))["input_ids"]
    assert tokenizer.unk_token_id not in ids
    for item in history:
        line = render_interaction(item, version=2)
        assert "=?" in line
        assert len(tokenizer(line, add_special_tokens=False)["input_ids"]) == TOKENS_PER_INTERACTION
    # The version-1 tokenizer cannot read them: a version-2 prompt must only go to a version-2 model.
    assert (
        build_tokenizer(1).unk_token_id
        in build_tokenizer(1)(render_prompt(history, current, version=2))["input_ids"]
    )
