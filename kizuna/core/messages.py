"""Messages a reader sees, kept with their English template and parameters.

Rooms below the console (hashes, formats) may not import it, yet the console shows what they say in the
reader's language. A :class:`Message` is the English text itself (a ``str``, so the CLI, the API and every
test read it unchanged) that also remembers the template it was made from, marked with ``N_`` for the
console's catalog, and the values put into it. The console translates the template and puts the same
values back (kizuna/web/render.py, the ``say`` filter); file names and values stay as they are.
"""

from __future__ import annotations

from typing import Any


def N_(message: str) -> str:  # noqa: N802 - the conventional gettext marker name
    return message


class Message(str):
    """``template % params`` in English, with ``template`` and ``params`` kept for translation."""

    template: str
    params: dict[str, Any]

    def __new__(cls, template: str, **params: Any) -> Message:
        made = super().__new__(cls, template % params if params else template)
        made.template, made.params = template, params
        return made

    def __reduce__(self) -> tuple[Any, ...]:
        # Whole from a worker process (core/forked.py): pickled as a str, it would lose its template.
        return _remade, (self.template, self.params)


def _remade(template: str, params: dict[str, Any]) -> Message:
    return Message(template, **params)


def message_of(exc: BaseException) -> str:
    """An exception's text, as the :class:`Message` it was raised with when it was (``str(exc)`` is plain)."""
    first = exc.args[0] if exc.args else None
    return first if isinstance(first, Message) else str(exc)
