"""Stop strings: found anywhere in the generated text, never partially streamed.

The text that could still be the start of a stop string (the last ``max(len(stop)) - 1``
characters) is held back until more text proves it is not.
"""

from __future__ import annotations


class StopMatcher:
    def __init__(self, stops: list[str]):
        self.stops = [s for s in stops if s]
        self.hold = max((len(s) for s in self.stops), default=1) - 1

    def find(self, text: str, new_from: int) -> int:
        """Earliest index of a stop string in ``text`` that ends at or after ``new_from``, or -1."""
        if not self.stops:
            return -1
        start = max(0, new_from - self.hold)
        best = -1
        for s in self.stops:
            i = text.find(s, start)
            if i != -1 and (best == -1 or i < best):
                best = i
        return best

    def safe_end(self, text_len: int) -> int:
        """How much of the text may be emitted while the sequence is still running."""
        return text_len - self.hold
