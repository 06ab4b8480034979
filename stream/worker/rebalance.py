"""What a worker does with its partitions' state when the group's assignment changes (pure).

A worker giving partitions up keeps their state in memory (``held``, with the position it
reached) until the next assignment: if it is given a partition back and nobody committed
anything for it meanwhile, that state is still current and is kept; otherwise it is dropped
and the partition is restored from the checkpoint topic.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

__all__ = ["AssignmentPlan", "plan_assignment"]


@dataclass(frozen=True, slots=True)
class AssignmentPlan:
    """The decision for each partition after an assignment.

    Attributes
    ----------
    keep : frozenset of int
        Assigned partitions whose in-memory state is current.
    restore : frozenset of int
        Assigned partitions to restore from the checkpoint topic.
    drop : frozenset of int
        Partitions whose in-memory state must be forgotten (handed over, or stale).
    """

    keep: frozenset[int]
    restore: frozenset[int]
    drop: frozenset[int]


def plan_assignment(
    assigned: Collection[int],
    held: Mapping[int, int],
    committed: Mapping[int, int | None],
) -> AssignmentPlan:
    """Keep, restore or drop the state of each partition.

    Parameters
    ----------
    assigned : collection of int
        The partitions given to this worker now.
    held : mapping of int to int
        Partitions whose state this worker still holds, with the position it had reached.
    committed : mapping of int to int or None
        The group's committed offset of each partition of ``assigned`` that is in ``held``.

    Examples
    --------
    >>> plan = plan_assignment({0, 1, 2}, {1: 50, 2: 70, 3: 10}, {1: 50, 2: 90})
    >>> sorted(plan.keep), sorted(plan.restore), sorted(plan.drop)
    ([1], [0, 2], [2, 3])
    """
    wanted = frozenset(assigned)
    keep = frozenset(p for p in wanted & held.keys() if committed.get(p) == held[p])
    restore = wanted - keep
    gone = frozenset(held) - wanted
    return AssignmentPlan(keep, restore, gone | (restore & held.keys()))
