"""What a migration did, kind by kind: imported, already there from an earlier run, skipped and
why; the problems with their file and line; and the case ids that had to change."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

IMPORTED = "imported"
ALREADY = "already imported"
KINDS = ("users", "cases", "images", "labels", "models", "events", "config")


@dataclass
class MigrationReport:
    dry_run: bool = False
    outcomes: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    problems: list[str] = field(default_factory=list)
    renumbered: list[tuple[str, str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def count(self, kind: str, outcome: str = IMPORTED, n: int = 1) -> None:
        self.outcomes[kind][outcome] += n

    def problem(self, kind: str, text: str, outcome: str = "skipped") -> None:
        self.problems.append(text)
        self.count(kind, outcome)

    def lines(self) -> list[str]:
        title = (
            "Migration report (dry run: nothing was written)"
            if self.dry_run
            else ("Migration report")
        )
        out = [title, f"{'kind':<8} {'imported':>9} {'already':>8}  skipped"]
        for kind in KINDS:
            counts = self.outcomes.get(kind, Counter())
            skipped = {k: v for k, v in counts.items() if k not in (IMPORTED, ALREADY)}
            detail = ", ".join(f"{v} {k}" for k, v in sorted(skipped.items())) or "-"
            out.append(f"{kind:<8} {counts[IMPORTED]:>9} {counts[ALREADY]:>8}  {detail}")
        if self.renumbered:
            out.append(
                f"\nCase ids that collided between owners, now renumbered ({len(self.renumbered)}):"
            )
            out += [f"  {owner}/{old} -> {new}" for owner, old, new in self.renumbered]
        if self.problems:
            out.append(f"\nProblems ({len(self.problems)}):")
            out += [f"  {text}" for text in self.problems]
        if self.notes:
            out.append("")
            out += self.notes
        return out
