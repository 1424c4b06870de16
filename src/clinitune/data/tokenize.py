"""Examples to token rows: chat-template rendering, completion-only labels, packing, tensors.

The runtime layer's data side: train, eval and export all turn examples into tokens here, so a
prompt is rendered the same way when it is learned, scored and verified.

Packing puts several examples in one row with position ids restarting at 0 for each example and
no 2D attention mask; transformers then builds a block-diagonal causal mask per row, so examples
never attend to each other and attention cost stays quadratic in the row, not in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ..errors import ClinituneError
from .example import Example

IGNORE = -100  # label of a position the loss skips (prompt tokens, padding)


def chat_ids(tok, messages, add_generation_prompt: bool) -> list[int]:
    """Token ids of `messages` rendered with the tokenizer's chat template."""
    out = tok.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt)
    if isinstance(out, dict) or hasattr(out, "keys"):
        out = out["input_ids"]
    return list(out)


def prompt_ids(tok, messages) -> list[int]:
    """The prompt as the model sees it when asked to answer: the template plus the assistant's turn opener."""
    return chat_ids(tok, messages, add_generation_prompt=True)


def text_ids(tok, text: str) -> list[int]:
    """Plain text is learned whole, outside any chat template, ending with end-of-sequence."""
    ids = list(tok(text, add_special_tokens=True)["input_ids"])
    return ids + ([tok.eos_token_id] if tok.eos_token_id is not None else [])


@dataclass
class Tokenized:
    input_ids: list[list[int]] = field(default_factory=list)
    n_prompt: list[int] = field(default_factory=list)  # tokens before the response starts
    tasks: list[str] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)  # each example's patient (or group): DP's privacy unit
    source: list[int] = field(default_factory=list)  # index of each kept example in the input list
    truncated: int = 0
    dropped: int = 0  # prompt alone longer than the row: nothing left to learn from


def tokenize(tok, examples: list[Example], max_len: int) -> Tokenized:
    """Render with the tokenizer's chat template; labels cover the assistant's reply (and its end-of-turn)."""
    out = Tokenized()
    for k, ex in enumerate(examples):
        if ex.shape == "text":
            full, prompt = text_ids(tok, ex.reply), []
        else:
            full = chat_ids(tok, ex.conversation, add_generation_prompt=False)
            prompt = prompt_ids(tok, ex.prompt)
        if full[: len(prompt)] != prompt:
            raise ClinituneError(
                "the chat template renders the prompt differently with and without the reply; "
                "completion-only masking needs a template whose prompt is a prefix of the conversation"
            )
        if len(prompt) >= max_len - 1:
            out.dropped += 1
            continue
        if len(full) > max_len:
            out.truncated += 1
            full = full[:max_len]
        out.input_ids.append(full)
        out.n_prompt.append(len(prompt))
        out.tasks.append(ex.task)
        out.groups.append(ex.group)
        out.source.append(k)
    return out


@dataclass
class Row:
    ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    positions: list[int] = field(default_factory=list)

    @property
    def response_tokens(self) -> int:
        """Positions the next-token loss is computed on (labels shifted by one)."""
        return sum(1 for y in self.labels[1:] if y != IGNORE)


def pack(data: Tokenized, order: list[int], max_len: int, packing: bool) -> list[Row]:
    """Rows in `order`: first-fit into open rows when packing, one example per row otherwise."""
    rows: list[Row] = []
    for i in order:
        ids, n_prompt = data.input_ids[i], data.n_prompt[i]
        labels = [IGNORE] * n_prompt + ids[n_prompt:]
        target = None
        if packing:
            target = next((r for r in rows[-8:] if len(r.ids) + len(ids) <= max_len), None)
        if target is None:
            target = Row()
            rows.append(target)
        target.ids += ids
        target.labels += labels
        target.positions += list(range(len(ids)))
    return rows


def collate(rows: list[Row], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors: input_ids, labels (IGNORE on padding) and restarting position ids."""
    width = max(len(r.ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), IGNORE, dtype=torch.long)
    pos = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        n = len(r.ids)
        ids[i, :n] = torch.tensor(r.ids)
        labels[i, :n] = torch.tensor(r.labels)
        pos[i, :n] = torch.tensor(r.positions)
        # Padding continues as its own segment (positions from 0) so it never joins a real example's block.
        pos[i, n:] = torch.arange(width - n)
    return {"input_ids": ids, "labels": labels, "position_ids": pos}
