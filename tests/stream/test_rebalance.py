"""The keep / restore / drop decisions of a new assignment (pure; the broker side is in
tests/integration/test_recovery.py)."""

from __future__ import annotations

from stream.worker.rebalance import hold_revoked, plan_assignment, resume_positions


def test_a_first_assignment_restores_everything() -> None:
    plan = plan_assignment({0, 1}, {}, {})
    assert plan.keep == set() and plan.restore == {0, 1} and plan.drop == set()


def test_partitions_given_back_untouched_are_kept() -> None:
    plan = plan_assignment({0, 1}, {0: 10, 1: 20}, {0: 10, 1: 20})
    assert plan.keep == {0, 1} and plan.restore == set() and plan.drop == set()


def test_a_partition_someone_else_advanced_is_dropped_and_restored() -> None:
    plan = plan_assignment({0, 1}, {0: 10, 1: 20}, {0: 10, 1: 25})
    assert plan.keep == {0} and plan.restore == {1} and plan.drop == {1}


def test_partitions_handed_over_are_dropped() -> None:
    plan = plan_assignment({1}, {0: 10, 1: 20, 2: 5}, {1: 20})
    assert plan.keep == {1} and plan.restore == set() and plan.drop == {0, 2}


def test_no_commit_at_all_means_not_current() -> None:
    plan = plan_assignment({3}, {3: 0}, {3: None})
    assert plan.keep == set() and plan.restore == {3} and plan.drop == {3}


def test_every_assigned_partition_is_kept_or_restored_never_both() -> None:
    held = {p: 10 * p for p in range(8)}
    committed = {p: (10 * p if p % 3 else 10 * p + 1) for p in range(8)}
    assigned = {0, 1, 2, 3, 4, 9}
    plan = plan_assignment(assigned, held, {p: committed[p] for p in assigned & held.keys()})
    assert plan.keep | plan.restore == assigned and not plan.keep & plan.restore
    assert plan.drop == (held.keys() - assigned) | (plan.restore & held.keys())
    assert not plan.drop & plan.keep


def test_revoked_partitions_are_held_at_their_positions() -> None:
    held = hold_revoked({}, {0, 1, 2}, {0: 10, 1: 20})
    assert held == {0: 10, 1: 20}  # 2 had no position: nothing to keep
    # a second revocation before any assignment adds to what is held
    assert hold_revoked(held, {3}, {3: 5}) == {0: 10, 1: 20, 3: 5}
    assert hold_revoked(held, set(), {0: 99}) == held


def test_kept_partitions_resume_where_they_were_and_restored_ones_at_their_marker() -> None:
    plan = plan_assignment({0, 1, 2}, {0: 10, 1: 20}, {0: 10, 1: 25})
    resume, unknown = resume_positions(plan, {0: 10, 1: 20}, {1: 22, 2: 7})
    # 0 is kept (its position is current); 1 and 2 are restored at their markers
    assert resume == {0: 10, 1: 22, 2: 7} and unknown == set()


def test_partitions_without_a_marker_start_at_the_committed_offset() -> None:
    plan = plan_assignment({0, 1}, {1: 20}, {1: 30})
    resume, unknown = resume_positions(plan, {1: 20}, {})
    # the stale position of 1 is not used: someone else advanced it
    assert resume == {} and unknown == {0, 1}


def test_positions_of_partitions_handed_over_are_forgotten() -> None:
    plan = plan_assignment({1}, {0: 10, 1: 20}, {1: 20})
    resume, unknown = resume_positions(plan, {0: 10, 1: 20}, {0: 10})
    assert resume == {1: 20} and unknown == set()
    resume, unknown = resume_positions(plan_assignment(set(), {0: 10}, {}), {0: 10}, {})
    assert resume == {} and unknown == set()
