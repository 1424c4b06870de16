"""The one parser of example shapes. Nothing else in clinitune reads an example's raw keys.

Accepted shapes (one JSON object per line):

- instruction: ``{"instruction", "input"?, "output"}`` (Alpaca; what `prepare` writes for its own tasks)
- prompt: ``{"prompt", "completion"}`` (TRL's prompt-completion; ``prompt`` may also be a list of messages)
- chat: ``{"messages": [{"role": "system"|"user"|"assistant", "content"}, ...]}`` ending with an assistant turn
- text: ``{"text"}`` (plain text, learned as a whole)

Optional keys on any shape: ``task``, ``group``, ``id``. Any other key is carried text: it is screened for
PHI like the rest (a ``patient_name`` column must not slip through) but never reaches a model, and the
manifest counts it. Each example gets an id from its content and a group: the value of a field the user
names (``--group-by patient_id``, stored as a hash, never the raw value), else its own id.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from ..errors import ClinituneError
from .jsonio import json_lines

ROLES = ("system", "user", "assistant")
META_KEYS = ("task", "group", "id", "augmented", "phrasing")
SHAPE_KEYS = {
    "instruction": ("instruction", "input", "output"),
    "prompt": ("prompt", "completion"),
    "chat": ("messages",),
    "text": ("text",),
}
SHAPE_HELP = (
    'expected one of: {"instruction", "input"?, "output"}; {"prompt", "completion"}; '
    '{"messages": [{"role", "content"}, ...]}; {"text"}'
)


class ExampleError(ClinituneError):
    """A line that is not an example of any accepted shape; `where` names the file and line."""


@dataclass(frozen=True)
class Message:
    role: str
    content: str


@dataclass(frozen=True)
class Example:
    shape: str
    messages: tuple[Message, ...]  # for text: one assistant message holding the whole text
    task: str = "custom"
    group: str = ""
    id: str = ""
    extra: tuple[tuple[str, str], ...] = ()  # (dotted key, text) of carried fields outside the shape
    augmented: bool = False
    fields: dict = field(
        default_factory=dict, compare=False, hash=False
    )  # instruction/input/output when shape == instruction
    phrasing: str = ""  # which built-in phrasing asked it (its task's PHRASINGS), for the held-out slice
    slots: dict = field(default_factory=dict, compare=False, hash=False)  # its values, to ask it again; never written

    # ---------------------------------------------------------------- views

    @property
    def prompt(self) -> list[dict]:
        """The conversation up to the reply, as chat-template messages."""
        return [{"role": m.role, "content": m.content} for m in self.messages[:-1]]

    @property
    def conversation(self) -> list[dict]:
        return [{"role": m.role, "content": m.content} for m in self.messages]

    @property
    def reply(self) -> str:
        return self.messages[-1].content

    @property
    def instruction(self) -> str:
        """The request: the instruction field, or the user turns joined."""
        if self.shape == "instruction":
            return self.fields["instruction"]
        return "\n\n".join(m.content for m in self.messages[:-1] if m.role in ("system", "user"))

    @property
    def input(self) -> str:
        return self.fields.get("input", "") if self.shape == "instruction" else ""

    def texts(self) -> Iterator[tuple[str, str]]:
        """Every string the example carries, with where it sits: what the PHI screen reads."""
        if self.shape == "instruction":
            for k in ("instruction", "input", "output"):
                if self.fields.get(k):
                    yield k, self.fields[k]
        elif self.shape == "text":
            yield "text", self.reply
        else:
            for i, m in enumerate(self.messages):
                yield f"messages[{i}].content ({m.role})", m.content
        yield from self.extra

    def with_texts(self, new: dict[str, str]) -> Example:
        """The same example with some texts replaced (redaction), keyed as `texts()` names them."""
        if not new:
            return self
        fields = {k: new.get(k, v) for k, v in self.fields.items()}
        if self.shape == "instruction":
            msgs = _instruction_messages(fields["instruction"], fields.get("input", ""), fields["output"])
        elif self.shape == "text":
            msgs = (Message("assistant", new.get("text", self.reply)),)
        else:
            msgs = tuple(
                Message(m.role, new.get(f"messages[{i}].content ({m.role})", m.content))
                for i, m in enumerate(self.messages)
            )
        extra = tuple((k, new.get(k, v)) for k, v in self.extra)
        # The slots hold the unredacted values; an example asked again later must not bring them back.
        ex = replace(self, messages=msgs, fields=fields, extra=extra, slots={})
        return replace(ex, id=content_id(ex))

    def to_dict(self) -> dict:
        """The line `prepare` writes: the shape's own keys and the metadata, nothing else (no empty twins)."""
        out: dict = {"id": self.id, "task": self.task, "group": self.group}
        if self.shape == "instruction":
            out.update(
                instruction=self.fields["instruction"], input=self.fields.get("input", ""), output=self.fields["output"]
            )
        elif self.shape == "text":
            out["text"] = self.reply
        else:
            out["messages"] = self.conversation
        if self.augmented:
            out["augmented"] = True
        if self.phrasing:
            out["phrasing"] = self.phrasing
        return out


def _instruction_messages(instruction: str, input: str, output: str) -> tuple[Message, ...]:
    user = instruction + (f"\n\n{input}" if input else "")
    return (Message("user", user), Message("assistant", output))


def content_id(ex: Example) -> str:
    """16 hex digits of the content's hash; the instruction shape keeps the key `prepare` has always used."""
    if ex.shape == "instruction":
        key = "\x1f".join((ex.task, ex.fields["instruction"], ex.fields.get("input", ""), ex.fields["output"]))
    else:
        key = "\x1f".join((ex.task, ex.shape, json.dumps(ex.conversation, ensure_ascii=False, sort_keys=True)))
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def group_of(value, salt: str = "clinitune") -> str:
    """A group key from a user's field (a patient id): hashed, so the raw identifier is never written."""
    return "g:" + hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()[:16]


def instruction(task: str, group: str, instruction: str, output: str, input: str = "") -> Example:
    """An instruction example built by clinitune itself (tasks, codebook, canaries)."""
    fields = {"instruction": instruction, "input": input, "output": output}
    ex = Example(
        "instruction", _instruction_messages(instruction, input, output), task=task, group=group, fields=fields
    )
    return replace(ex, id=content_id(ex))


# ------------------------------------------------------------------ parsing


def _str(obj: dict, key: str, where: str, required: bool = True) -> str:
    v = obj.get(key)
    if v is None and not required:
        return ""
    if not isinstance(v, str):
        got = "missing" if v is None else f"a {type(v).__name__}"
        raise ExampleError(f"{where}: field {key!r} is {got}; expected a string")
    return v


def _messages(value, where: str, key: str = "messages") -> list[Message]:
    if not isinstance(value, list) or not value:
        raise ExampleError(f"{where}: {key!r} must be a non-empty list of {{role, content}} objects")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ExampleError(f'{where}: {key}[{i}] must be {{"role": system|user|assistant, "content": string}}')
        out.append(Message(m["role"], m["content"]))
    return out


def _extra_texts(obj, prefix: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    """Every string inside the carried fields, with a dotted path; numbers and booleans are not text."""
    if depth > 20:
        raise ExampleError(f"{prefix}: nested deeper than 20 levels")
    if isinstance(obj, str):
        yield prefix, obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _extra_texts(v, f"{prefix}.{k}" if prefix else str(k), depth + 1)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _extra_texts(v, f"{prefix}[{i}]", depth + 1)


def shape_of(obj: dict) -> str | None:
    if "messages" in obj:
        return "chat"
    if "instruction" in obj or "output" in obj:
        return "instruction"
    if "prompt" in obj or "completion" in obj:
        return "prompt"
    if "text" in obj:
        return "text"
    return None


def parse(obj, where: str, group_by: str | None = None) -> Example:
    """One object to an Example, or an ExampleError naming `where` (file:line) and what to change."""
    if not isinstance(obj, dict):
        raise ExampleError(f"{where}: expected a JSON object, got {type(obj).__name__}; {SHAPE_HELP}")
    shape = shape_of(obj)
    if shape is None:
        keys = ", ".join(sorted(obj)[:8]) or "none"
        raise ExampleError(f"{where}: unrecognized example (keys: {keys}); {SHAPE_HELP}")
    fields: dict = {}
    if shape == "instruction":
        fields = {
            "instruction": _str(obj, "instruction", where),
            "input": _str(obj, "input", where, required=False),
            "output": _str(obj, "output", where),
        }
        msgs = list(_instruction_messages(fields["instruction"], fields["input"], fields["output"]))
    elif shape == "prompt":
        completion = _str(obj, "completion", where)
        prompt = obj.get("prompt")
        msgs = (
            _messages(prompt, where, "prompt")
            if isinstance(prompt, list)
            else [Message("user", _str(obj, "prompt", where))]
        )
        msgs.append(Message("assistant", completion))
    elif shape == "chat":
        msgs = _messages(obj["messages"], where)
        if msgs[-1].role != "assistant":
            raise ExampleError(f"{where}: the last message must be the assistant's reply (it is {msgs[-1].role!r})")
        if not any(m.role == "user" for m in msgs):
            raise ExampleError(f"{where}: a chat example needs at least one user turn before the assistant's reply")
    else:
        msgs = [Message("assistant", _str(obj, "text", where))]
    task = _task(obj, where)
    carried = {k: v for k, v in obj.items() if k not in SHAPE_KEYS[shape] and k not in META_KEYS}
    extra = tuple(_extra_texts(carried, ""))
    phrasing = obj.get("phrasing", "")
    if not isinstance(phrasing, str):
        raise ExampleError(f"{where}: field 'phrasing' must be a string, got {phrasing!r}; or drop it")
    ex = Example(
        shape,
        tuple(msgs),
        task=task,
        extra=extra,
        augmented=bool(obj.get("augmented")),
        fields=fields,
        phrasing=phrasing,
    )
    ex = replace(ex, id=content_id(ex))
    if group_by is not None:
        if group_by not in obj or obj[group_by] in (None, ""):
            raise ExampleError(
                f"{where}: --group-by {group_by}: the field is missing; add it to every line, or drop --group-by"
            )
        group = group_of(obj[group_by])
    elif isinstance(obj.get("group"), str) and obj["group"]:
        group = obj["group"]  # a file clinitune wrote: its groups are already keys, not identifiers
    else:
        group = f"item:{ex.id}"
    return replace(ex, group=group)


def carried_keys(ex: Example) -> set[str]:
    return {k.split(".")[0].split("[")[0] for k, _ in ex.extra}


def read_jsonl(path, group_by: str | None = None) -> Iterator[tuple[int, Example]]:
    """(line number, example) for every non-blank line; the first bad line is an ExampleError."""
    for n, obj, error in json_lines(path):
        if error:
            raise ExampleError(f"{path}:{n}: {error}")
        yield n, parse(obj, f"{path}:{n}", group_by)


def load(path, group_by: str | None = None) -> list[Example]:
    """A whole data file, as train, eval and export read it; a missing or empty file is a clear error."""
    if not os.path.exists(path):
        raise ClinituneError(
            f"{path}: data file not found; create it with clinitune prepare, or set data.train/data.eval in the config"
        )
    rows = [ex for _, ex in read_jsonl(path, group_by)]
    if not rows:
        raise ClinituneError(f"{path}: no examples")
    return rows


def _task(obj: dict, where: str) -> str:
    task = obj.get("task", "custom")
    if not isinstance(task, str) or not task:
        raise ExampleError(f"{where}: field 'task' must be a non-empty string, got {task!r}")
    return task


def parse_prompt(obj, where: str) -> list[dict]:
    """A request to answer (infer, serve): any shape above with or without its reply; a bare string is one user turn."""
    if isinstance(obj, str):
        return [{"role": "user", "content": obj}]
    if not isinstance(obj, dict):
        raise ExampleError(f"{where}: expected a JSON object or string, got {type(obj).__name__}")
    _task(obj, where)  # a line infer reads is judged as prepare and validate judge it
    if "messages" in obj:
        msgs = [{"role": m.role, "content": m.content} for m in _messages(obj["messages"], where)]
        return msgs[:-1] if msgs[-1]["role"] == "assistant" and len(msgs) > 1 else msgs
    if "instruction" in obj:
        text, extra = _str(obj, "instruction", where), _str(obj, "input", where, required=False)
        return [{"role": "user", "content": text + (f"\n\n{extra}" if extra else "")}]
    if "prompt" in obj:
        p = obj["prompt"]
        return (
            [{"role": m.role, "content": m.content} for m in _messages(p, where, "prompt")]
            if isinstance(p, list)
            else [{"role": "user", "content": _str(obj, "prompt", where)}]
        )
    raise ExampleError(f"{where}: expected prompt, instruction or messages")
