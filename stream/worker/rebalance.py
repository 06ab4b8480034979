"""What a worker does with its partitions' state when the group's assignment changes (pure).

A worker giving partitions up keeps their state in memory (``held``, with the position it
reached: :func:`hold_revoked`) until the next assignment: if it is given a partition back and
nobody committed anything for it meanwhile, that state is still current and is kept; otherwise
it is dropped and the partition is restored from the checkpoint topic (:func:`plan_assignment`).
Each assigned partition then resumes where its kept state stands, at its checkpoint marker, or,
without either, at the group's committed offset (:func:`resume_positions`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

__all__ = ["AssignmentPlan", "hold_revoked", "plan_assignment", "resume_positions"]


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


def hold_revoked(
    held: Mapping[int, int], revoked: Collection[int], positions: Mapping[int, int]
) -> dict[int, int]:
    """The partitions held in memory after ``revoked`` are given up, with their positions.

    Parameters
    ----------
    held : mapping of int to int
        Partitions already held (revoked earlier, not assigned since).
    revoked : collection of int
        The partitions given up now.
    positions : mapping of int to int
        The next offset to read of each partition whose state this worker has.

    Examples
    --------
    >>> hold_revoked({4: 7}, {0, 1}, {0: 50, 2: 9})
    {4: 7, 0: 50}
    """
    return {**held, **{p: positions[p] for p in sorted(revoked) if p in positions}}


def resume_positions(
    plan: AssignmentPlan, positions: Mapping[int, int], markers: Mapping[int, int]
) -> tuple[dict[int, int], frozenset[int]]:
    """Where each assigned partition resumes, and those that need the committed offset.

    Parameters
    ----------
    plan : AssignmentPlan
        The decision of the assignment (``keep | restore`` is every assigned partition).
    positions : mapping of int to int
        The positions this worker had (those of kept partitions are still current).
    markers : mapping of int to int
        The checkpoint marker's offset of the partitions read back from the checkpoint topic.

    Returns
    -------
    resume : dict of int to int
        The next offset to read of the kept partitions and the restored ones with a marker.
    unknown : frozenset of int
        Assigned partitions with neither: they start at the committed offset (or the
        beginning of the partition).

    Examples
    --------
    >>> plan = AssignmentPlan(frozenset({1}), frozenset({0, 2}), frozenset({2, 3}))
    >>> resume_positions(plan, {1: 50, 2: 70, 3: 10}, {0: 30, 1: 40})
    ({1: 50, 0: 30}, frozenset({2}))
    """
    resume = {p: positions[p] for p in sorted(plan.keep) if p in positions}
    resume.update({p: markers[p] for p in sorted(plan.restore) if p in markers})
    return resume, (plan.keep | plan.restore).difference(resume)
