"""Incremental detokenizer: token pieces (bytes) in, text out, never broken UTF-8.

A multi-byte character split over several tokens is held back until its last byte arrives; at the
end of a sequence the leftover bytes (a model can emit an invalid sequence) become U+FFFD.
"""

from __future__ import annotations

import codecs


class IncrementalDetokenizer:
    def __init__(self, pieces: list[bytes]):
        self.pieces = pieces
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def add(self, token: int) -> str:
        return self._decoder.decode(self.pieces[token])

    def flush(self) -> str:
        return self._decoder.decode(b"", final=True)
