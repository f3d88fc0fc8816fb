"""What a dataset build read, wrote and skipped, and why: the summary the user reads at the end.

Adapters report skipped rows in bulk (`skip_rows` takes a boolean mask over a DataFrame), so
counting never loops over a label file in Python. Each reason keeps its count and the first
few examples, each naming the file and row or record.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd

EXAMPLES_PER_REASON = 3


@dataclass
class BuildLog:
    log: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))
    rows_read: Counter[str] = field(default_factory=Counter)  # file -> rows
    skipped: Counter[str] = field(default_factory=Counter)  # reason -> rows
    examples: dict[str, list[str]] = field(default_factory=dict)  # reason -> first few "file row N: ..."
    other_labels: Counter[str] = field(default_factory=Counter)  # conditions outside the nine -> questions
    notes: list[str] = field(default_factory=list)

    def progress(self, message: str) -> None:
        self.log(message)

    def read(self, source: str, rows: int) -> None:
        self.rows_read[source] += rows
        self.log(f"read {source}: {rows:,} rows")

    def skip(self, reason: str, example: str, count: int = 1) -> None:
        if count <= 0:
            return
        self.skipped[reason] += count
        shown = self.examples.setdefault(reason, [])
        if len(shown) < EXAMPLES_PER_REASON and example not in shown:
            shown.append(example)

    def skip_rows(self, reason: str, frame: pd.DataFrame, mask: pd.Series | None = None,
                  detail: Callable[[pd.Series], str] | None = None) -> pd.DataFrame:
        """Count the rows of `frame` where `mask` holds (all rows when None) as skipped for
        `reason`, and return the rest. Examples name the row's `source` column and, when
        given, `detail(row)`."""
        chosen = frame if mask is None else frame[mask]
        if len(chosen):
            self.skipped[reason] += len(chosen)
            shown = self.examples.setdefault(reason, [])
            for _, row in chosen.head(4 * EXAMPLES_PER_REASON).iterrows():
                if len(shown) >= EXAMPLES_PER_REASON:
                    break
                text = str(row.get("source", "")) if "source" in row else ""
                if detail is not None:
                    text = f"{text}: {detail(row)}" if text else detail(row)
                if text not in shown:
                    shown.append(text)
        return frame.iloc[0:0] if mask is None else frame[~mask]

    def note(self, message: str) -> None:
        self.notes.append(message)
        self.log(message)

    def summary(self, written: pd.DataFrame) -> str:
        """The end-of-build report: rows read, questions written per condition and answer,
        rows skipped per reason with examples, and labels outside the nine conditions."""
        from compute.data.label_names import is_study_condition

        lines = ["rows read: " + (", ".join(f"{name} {n:,}" for name, n in self.rows_read.items()) or "none")]
        lines.append(f"questions written: {len(written):,}")
        if len(written):
            table = (written.groupby(["condition", "answer"]).size().unstack(fill_value=0)
                     .reindex(columns=["yes", "no"], fill_value=0))
            width = max(len(str(c)) for c in table.index)
            lines.append(f"  {'condition':<{width}}  {'yes':>7}  {'no':>7}")
            for name, counts in table.iterrows():
                mark = "" if is_study_condition(str(name)) else "  (outside the nine study conditions)"
                lines.append(f"  {name:<{width}}  {counts['yes']:>7,}  {counts['no']:>7,}{mark}")
        if self.skipped:
            lines.append(f"skipped: {sum(self.skipped.values()):,} (rows, or one label of a row, by reason)")
            for reason, count in self.skipped.most_common():
                lines.append(f"  {count:>8,}  {reason}")
                for example in self.examples.get(reason, []):
                    lines.append(f"            e.g. {example}")
        else:
            lines.append("skipped: none")
        lines += self.notes
        return "\n".join(lines)
