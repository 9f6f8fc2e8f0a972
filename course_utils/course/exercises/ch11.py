"""Chapter 11's exercises: capstone.

Each checker raises :class:`Hint` for each way an answer can be wrong.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from course_utils.course.checks import Hint, exercise
from course_utils.course.exercises import call, close, tensor


@exercise("11.merge_lora", "warm-up", "merge a LoRA update into the weight")
def check_merge_lora(fn: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float, int], torch.Tensor]) -> None:
    """``fn(W0, A, B, alpha, r)`` must equal the weight of ``lora.LoRALinear(...).merge()``."""
    from course_utils.lora import LoRALinear

    g = torch.Generator().manual_seed(10)
    for d_in, d_out, r, alpha in ((6, 4, 2, 4.0), (5, 7, 3, 3.0), (8, 8, 4, 16.0)):
        base = nn.Linear(d_in, d_out)
        with torch.no_grad():
            base.weight.copy_(torch.randn(d_out, d_in, generator=g))
        layer = LoRALinear(base, r, alpha)
        with torch.no_grad():
            layer.lora_A.copy_(torch.randn(r, d_in, generator=g))
            layer.lora_B.copy_(torch.randn(d_out, r, generator=g))
        W0, A, B = base.weight.detach().clone(), layer.lora_A.detach().clone(), layer.lora_B.detach().clone()
        ref = layer.merge().weight
        out = tensor(call(fn, W0.clone(), A.clone(), B.clone(), alpha, r), tuple(W0.shape), "the merged weight")
        if close(out, ref, 1e-4):
            continue
        if close(out, W0 + B @ A, 1e-4) and alpha != r:
            raise Hint(f"the update is not scaled: LoRA multiplies B A by alpha / r (here {alpha:g} / {r}).")
        if close(out, W0 + B @ A * r / alpha, 1e-4):
            raise Hint("the scale is upside down: alpha / r, not r / alpha.")
        if close(out, B @ A * alpha / r, 1e-4):
            raise Hint("that is only the update ΔW: the merged weight is W0 + ΔW.")
        raise Hint(f"expected W0 + (alpha / r) B A, shape (out, in) = {tuple(W0.shape)}.")


_INSTRUCTIONS = [
    "Give three tips for staying healthy.",
    "Summarize the text.",  # 3 words
    "Describe the image below in two sentences.",  # blacklisted
    "Explain why the sky looks blue at noon.",
    "Write a program that sorts a list of numbers.",
    "\"Quote\" the best line of the poem below.",  # punctuation start
    "Étudiez the history of the Roman calendar briefly.",  # non-ASCII start
    "Suggest a good name for a mapping startup.",  # 'mapping' is not the blacklisted 'map'
    "Plot the sales figures for the last quarter.",  # blacklisted
    "word " * 151,  # too long
    "Classify each sentence as positive or negative.",
    "List the files you would pack for a weekend trip.",  # blacklisted
    "write a program to check a palindrome, please.",  # lowercase: still rejected
]


@exercise("11.keep_instruction", "core", "Self-Instruct's heuristic filter")
def check_keep_instruction(fn: Callable[[str], bool]) -> None:
    """``fn(instruction)`` -> keep? must equal ``self_instruct.instruction_filter(instruction) is None``."""
    from course_utils.self_instruct import instruction_filter

    for text in _INSTRUCTIONS:
        out = fn(text)
        if out is None:
            raise Hint("your function returned None: is the `return` missing? Return True (keep) or False.")
        reason = instruction_filter(text)
        if bool(out) == (reason is None):
            continue
        shown = text if len(text) < 60 else text[:40] + "..."
        if reason is None:
            if "mapping" in text:
                raise Hint(f"{shown!r} should be kept: match blacklisted words as whole words ('map' is not "
                           "'mapping'), e.g. with a regex \\b...\\b.")
            raise Hint(f"{shown!r} should be kept: it breaks none of the rules.")
        raise Hint(f"{shown!r} should be rejected: {reason}.")


@exercise("11.alpaca_conversation", "stretch", "a multi-turn conversation in the Alpaca template")
def check_alpaca_conversation(fn: Callable[[list, str], str]) -> None:
    """``fn(history, message)`` must equal ``assistant.alpaca_conversation(history, message)``."""
    from course_utils.assistant import alpaca_conversation
    from course_utils.instructions import PROMPT_NO_INPUT

    turns = [{"role": "user", "content": "Hi, who are you?"}, {"role": "assistant", "content": "An assistant."},
             {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."}]
    head = PROMPT_NO_INPUT.split("### Instruction:")[0]
    for history, message in (([], "Give three tips for staying healthy."), (turns[:2], "What can you do?"),
                             (turns, "And another one?")):
        out = call(fn, [dict(t) for t in history], message)
        ref = alpaca_conversation(history, message)
        if out == ref:
            continue
        if not isinstance(out, str):
            raise Hint(f"return the prompt as one string, got {type(out).__name__}.")
        if out.count(head.strip()) > 1:
            raise Hint("the header ('Below is an instruction...') comes once, at the top, not once per turn.")
        if not out.endswith("### Response:\n"):
            raise Hint("the prompt ends with '### Response:\\n', where the model writes its reply.")
        if " ".join(out.split()) == " ".join(ref.split()):
            raise Hint("the words are right but the whitespace differs: each block is '### Instruction:\\n...' "
                       "followed by a blank line, like the single-turn template.")
        if not history:
            raise Hint("with no history the conversation is the plain Alpaca prompt (instructions.PROMPT_NO_INPUT) "
                       "for the message.")
        raise Hint(f"with {len(history) // 2} earlier turn(s): each is an '### Instruction:' block with the user's "
                   "message and an '### Response:' block with the reply, in order, then the new message.")
