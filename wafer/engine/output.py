"""A sequence's streamed text: detokenized, cut at stop strings, with logprobs kept in step."""

from __future__ import annotations

from typing import Callable

from .events import ChoiceDelta, LogprobEntry, RequestDone
from .sampler import TokenLogprob
from .sequence import Request, Sequence
from .stops import StopMatcher


def to_entry(model_text: Callable[[int], str], lp: TokenLogprob, text_offset: int) -> LogprobEntry:
    return LogprobEntry(
        token_id=lp.token,
        token=model_text(lp.token),
        logprob=lp.logprob,
        top=[(t, model_text(t), v) for t, v in lp.top],
        text_offset=text_offset,
    )


class OutputText:
    """Turns a sequence's sampled tokens into streamed text deltas, applying stop strings."""

    def __init__(self, stops: list[str]):
        self.matcher = StopMatcher(stops)

    def append(self, seq: Sequence, token: int, entry: LogprobEntry | None) -> bool:
        """Add a sampled (non end-of-generation) token. Returns True when a stop string matched."""
        start = len(seq.text)
        seq.text += seq.detok.add(token)
        seq.tok_spans.append((start, len(seq.text), entry, token))
        if len(seq.text) > start:
            at = self.matcher.find(seq.text, start)
            if at != -1:
                seq.text = seq.text[:at]
                return True
        return False

    def finish(self, seq: Sequence, stopped_by_string: bool) -> None:
        if not stopped_by_string:
            seq.text += seq.detok.flush()

    def delta(self, seq: Sequence, final: bool) -> ChoiceDelta | None:
        """The text (and its tokens and logprobs) that can be sent now."""
        n = len(seq.text)
        end = n if final else max(seq.emitted, self.matcher.safe_end(n))
        tokens: list[int] = []
        lps: list[LogprobEntry] = []
        spans = seq.tok_spans
        while seq.released < len(spans):
            s, e, entry, tok = spans[seq.released]
            if final:
                if s >= n and not (s == e == n):  # cut off by a stop string
                    break
            elif e > end:
                break
            tokens.append(tok)
            if entry is not None:
                lps.append(entry)
            seq.released += 1
        if final:
            seq.released = len(spans)
        text = seq.text[seq.emitted : end]
        seq.emitted = end
        if not text and not tokens and not final:
            return None
        return ChoiceDelta(
            index=seq.index,
            text=text,
            token_ids=tokens,
            logprobs=lps,
            finish_reason=seq.finish_reason if final else None,
        )


def finish_request_event(req: Request) -> RequestDone:
    return RequestDone(usage=req.usage(), time_info=req.time_info())
