"""Training settings, declared once: type, default, bounds and help.

A setting is a field of a settings dataclass (``TrainConfig``) whose metadata holds a
``Spec``. Everything that shows or accepts settings is built from that one declaration:
the command line (``binbot train`` flags), the retraining job API's validation and the admin
console's form. Adding a setting, or changing its bounds, is then one edit.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from typing import Any

from binbot.errors import shortened


@dataclass(frozen=True)
class Spec:
    """What a setting means to people: help, bounds, and where it may be set."""

    help: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] | None = None
    # The word that stands for None on the command line and in forms ("all", "none").
    none_word: str | None = None
    # Whether an admin may set it for a retraining job (API and console).
    retraining: bool = False
    # The command-line flag when it is not --<name with dashes>.
    flag: str | None = None


def setting(default: Any, help: str, **spec: Any) -> Any:
    """A dataclass field declared as a setting: ``head_epochs: int = setting(15, "...")``."""
    return dataclasses.field(default=default, metadata={"setting": Spec(help, **spec)})


@dataclass(frozen=True)
class Setting:
    """One declared setting, resolved: its name, value type and whether None is allowed."""

    name: str
    kind: type
    optional: bool
    default: Any
    spec: Spec

    @property
    def flag(self) -> str:
        return self.spec.flag or "--" + self.name.replace("_", "-")

    @property
    def label(self) -> str:
        return self.name.replace("_", " ").capitalize()

    @property
    def bounds(self) -> str:
        low, high = (_number(v) for v in (self.spec.minimum, self.spec.maximum))
        if low is not None and high is not None:
            return f"from {low} to {high}"
        return f"at least {low}" if low is not None else f"at most {high}" if high else ""

    def check(self, value: Any) -> Any:
        """``value`` (as JSON would carry it) if it fits this setting; ValueError saying why."""
        if value is None and self.optional:
            return None
        if self.kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{self.name} must be true or false")
            return value
        if self.kind is str:
            if not isinstance(value, str) or (self.spec.choices and value not in self.spec.choices):
                choices = f" one of {list(self.spec.choices)}" if self.spec.choices else " text"
                raise ValueError(f"{self.name} must be{choices}")
            return value
        whole = self.kind is int
        if isinstance(value, bool) or not isinstance(value, int if whole else (int, float)):
            raise ValueError(
                f"{self.name} must be a {'whole ' if whole else ''}number {self.bounds}"
            )
        if not math.isfinite(value) or not self._in_bounds(value):
            raise ValueError(
                f"{self.name} must be a {'whole ' if whole else ''}number {self.bounds}"
            )
        return self.kind(value)

    def parse(self, text: str) -> Any:
        """A value typed by a person (command line, form field); ValueError saying why not."""
        text = text.strip()
        if self.optional and self.spec.none_word and text == self.spec.none_word:
            return None
        if self.kind is str:
            return self.check(text)
        if self.kind is bool:
            return self.check({"true": True, "false": False}.get(text.lower(), text))
        try:
            value = int(text) if self.kind is int else float(text)
        except ValueError:
            word = f" or '{self.spec.none_word}'" if self.spec.none_word else ""
            raise ValueError(f"{self.name} must be a number{word}, got {text!r}") from None
        return self.check(value)

    def shown(self, value: Any) -> str:
        """``value`` as a person would type it into ``parse``: what a job's page lists."""
        if value is None:
            return self.spec.none_word or "none"
        if self.kind is bool:
            return "yes" if value else "no"
        return _number(value) if self.kind in (int, float) else str(value)

    def _in_bounds(self, value: float) -> bool:
        low, high = self.spec.minimum, self.spec.maximum
        return (low is None or value >= low) and (high is None or value <= high)


def _number(value: float | None) -> str | None:
    if value is None:
        return None
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def declared(settings_class: type) -> list[Setting]:
    """The settings a dataclass declares, in field order."""
    hints = typing.get_type_hints(settings_class)
    out = []
    for field in dataclasses.fields(settings_class):
        if "setting" not in field.metadata:
            continue
        kind, optional = _unwrap_optional(hints[field.name])
        out.append(Setting(field.name, kind, optional, field.default, field.metadata["setting"]))
    return out


def _unwrap_optional(hint: Any) -> tuple[type, bool]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        kinds = [k for k in typing.get_args(hint) if k is not type(None)]
        return kinds[0], len(kinds) < len(typing.get_args(hint))
    return hint, False


def validate(raw: Any, settings: list[Setting]) -> dict[str, Any]:
    """Check a JSON object of settings against ``settings``; ValueError with the reason."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ValueError("settings must be an object")
    known = {s.name: s for s in settings}
    unknown = sorted(set(raw) - set(known))
    if unknown:
        # Named as sent, but a few and short: a request's body is not echoed back whole.
        named = [shortened(name) for name in unknown[:5]]
        more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
        raise ValueError(f"unknown settings {named}{more}; known: {sorted(known)}")
    return {name: known[name].check(value) for name, value in raw.items()}


METAVARS = {int: "N", float: "X", str: "TEXT"}


def add_arguments(parser: argparse.ArgumentParser, settings: list[Setting]) -> None:
    """One command-line option per setting, with its default and bounds in the help."""
    for s in settings:
        if s.kind is bool and s.default is True:
            parser.add_argument(
                "--no-" + s.name.replace("_", "-"), dest=s.name, action="store_false",
                help=f"turn off: {s.spec.help}",
            )  # fmt: skip
            continue
        default = s.spec.none_word if s.default is None else s.default
        notes = [s.bounds, f"default {default}" if default is not None else ""]
        parser.add_argument(
            s.flag, dest=s.name, type=_argparse_type(s), default=s.default,
            choices=s.spec.choices, metavar=None if s.spec.choices else METAVARS[s.kind],
            help=s.spec.help + (f" ({'; '.join(filter(None, notes))})" if any(notes) else ""),
        )  # fmt: skip


def _argparse_type(s: Setting):
    def parse(text: str) -> Any:
        try:
            return s.parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = s.name  # argparse names the type in its own messages
    return parse
