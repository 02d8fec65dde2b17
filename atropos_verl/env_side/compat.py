# Copyright 2026 atropos-verl contributors
# SPDX-License-Identifier: Apache-2.0
"""Where atroposlib 0.4.0 and environments assume transformers 4, in the transformers 5 world we install.

transformers 5 changed `apply_chat_template`'s `return_dict` default to True, so `apply_chat_template(msgs)` (tokenize
defaults to True) returns a `BatchEncoding` instead of a list of ids. atroposlib's `tokenize_for_trainer`
(`utils/tokenize_for_trainer.py`) and environments that tokenize chats themselves then build groups out of
`BatchEncoding` objects, and every post fails (`TypeError: ... not JSON serializable`). The shim restores the list
for callers that did not ask for a dict. `tests/env_side/test_compat.py` fails when an upgrade makes it unnecessary.
"""

from __future__ import annotations

from atropos_verl.env_side.patching import wrap_method

#: Index of `return_dict` among apply_chat_template's positional parameters after `conversation` (transformers 5.10).
_RETURN_DICT_POSITION = 10


def chat_template_returns_ids() -> None:
    from transformers import PreTrainedTokenizerBase

    def make(apply):
        def apply_chat_template(self, conversation, *args, **kwargs):
            if (
                len(args) < _RETURN_DICT_POSITION
                and "return_dict" not in kwargs
                and kwargs.get("tokenize", True)
                and not kwargs.get("return_assistant_tokens_mask", False)
            ):
                kwargs["return_dict"] = False
            return apply(self, conversation, *args, **kwargs)

        return apply_chat_template

    wrap_method(PreTrainedTokenizerBase, "apply_chat_template", make)


def install() -> None:
    chat_template_returns_ids()
