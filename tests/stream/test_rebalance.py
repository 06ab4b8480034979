"""The keep / restore / drop decisions of a new assignment (pure; the broker side is in
tests/integration/test_recovery.py)."""

from __future__ import annotations

from stream.worker.rebalance import plan_assignment


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
