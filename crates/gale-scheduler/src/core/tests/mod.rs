//! The step harness: scripted events against an in-memory world with a fake
//! clock, and after each scheduler pass a snapshot of the actions the core
//! took (`UPDATE_EXPECT=1 cargo test -p gale-scheduler` rewrites the snapshots;
//! read the diff before keeping it).

use expect_test::{Expect, expect};

mod world;
use world::World;

/// Compares a step's lines (or a state listing) with its snapshot; a step that
/// did nothing is `expect![""]`.
fn check(actual: String, expect: Expect) {
    let actual = actual.trim_end();
    if actual.is_empty() {
        expect.assert_eq("");
    } else {
        expect.assert_eq(&format!("{actual}\n"));
    }
}

#[test]
fn catchup_creates_every_slot_across_a_dst_change() {
    // Berlin moves to summer time on 2026-03-29: that day is 23 hours long.
    let mut w = World::at("2026-03-30T12:00:00Z");
    w.dag(
        "daily",
        "schedule: '0 1 * * *'\ntimezone: Europe/Berlin\nstart_date: 2026-03-27\ncatchup: true\nmax_active_runs: 10\ntasks:\n  a:\n    run: x\n",
    );
    check(
        w.step(),
        expect![[r#"
            create daily scheduled__2026-03-27T00:00:00Z [2026-03-27T00:00:00Z .. 2026-03-28T00:00:00Z)
            create daily scheduled__2026-03-28T00:00:00Z [2026-03-28T00:00:00Z .. 2026-03-29T00:00:00Z)
            create daily scheduled__2026-03-29T00:00:00Z [2026-03-29T00:00:00Z .. 2026-03-29T23:00:00Z)
            start daily#1
            start daily#2
            start daily#3
            daily#1 a: none -> queued
            daily#2 a: none -> queued
            daily#3 a: none -> queued
        "#]],
    );
    // Nothing is due until the next local 01:00.
    w.set_now("2026-03-30T22:59:59Z");
    check(w.step(), expect![""]);
    w.set_now("2026-03-30T23:00:00Z");
    check(
        w.step(),
        expect![[r#"
        create daily scheduled__2026-03-29T23:00:00Z [2026-03-29T23:00:00Z .. 2026-03-30T23:00:00Z)
        start daily#4
        daily#4 a: none -> queued
    "#]],
    );
}

#[test]
fn without_catchup_slots_before_the_first_run_are_skipped_and_a_gap_is_missed() {
    let mut w = World::at("2026-01-01T10:30:00Z");
    w.dag(
        "hourly",
        "schedule: '@hourly'\nstart_date: 2026-01-01T07:00:00Z\ncatchup: false\ntasks:\n  a:\n    run: x\n",
    );
    check(
        w.step(),
        expect![[r#"
        slots skipped hourly: 2 from 2026-01-01T07:00:00Z to 2026-01-01T08:00:00Z
        create hourly scheduled__2026-01-01T09:00:00Z [2026-01-01T09:00:00Z .. 2026-01-01T10:00:00Z)
        start hourly#1
        hourly#1 a: none -> queued
    "#]],
    );
    // Later passes record nothing more and create nothing.
    w.advance(20);
    check(w.step(), expect![""]);
    w.claim_all();
    w.succeed(w.run_at("hourly", "2026-01-01T09:00:00Z"), "a");
    check(
        w.step(),
        expect![[r#"
        finish hourly#1 success
    "#]],
    );
    // No scheduler ran from 10:31 to 13:10: 10:00 and 11:00 were missed, 12:00 runs.
    w.set_now("2026-01-01T13:10:00Z");
    check(
        w.step(),
        expect![[r#"
        slots missed hourly: 2 from 2026-01-01T10:00:00Z to 2026-01-01T11:00:00Z
        create hourly scheduled__2026-01-01T12:00:00Z [2026-01-01T12:00:00Z .. 2026-01-01T13:00:00Z)
        start hourly#2
        hourly#2 a: none -> queued
    "#]],
    );
    check(
        w.ledger("hourly"),
        expect![[r#"
        2026-01-01T07:00:00Z skipped
        2026-01-01T08:00:00Z skipped
        2026-01-01T09:00:00Z run
        2026-01-01T10:00:00Z missed
        2026-01-01T11:00:00Z missed
        2026-01-01T12:00:00Z run
    "#]],
    );
}

#[test]
fn a_gap_of_more_than_a_thousand_slots_keeps_the_newest_without_holes() {
    let mut w = World::at("2026-01-02T00:00:30Z");
    w.dag(
        "minutely",
        "schedule: '* * * * *'\nstart_date: 2026-01-01T00:00:00Z\ncatchup: false\ntasks:\n  a:\n    run: x\n",
    );
    check(
        w.step(),
        expect![[r#"
        slots skipped minutely: 1000 from 2026-01-01T07:19:00Z to 2026-01-01T23:58:00Z
        create minutely scheduled__2026-01-01T23:59:00Z [2026-01-01T23:59:00Z .. 2026-01-02T00:00:00Z)
        start minutely#1
        minutely#1 a: none -> queued
    "#]],
    );
    w.advance(5);
    check(w.step(), expect![""]);
}

#[test]
fn a_paused_dag_skips_its_slots_and_resumes_at_the_latest() {
    let mut w = World::at("2026-01-01T10:30:00Z");
    w.dag(
        "hourly",
        "schedule: '@hourly'\nstart_date: 2026-01-01T09:00:00Z\ncatchup: false\nmax_active_runs: 2\ntasks:\n  a:\n    run: x\n",
    );
    check(
        w.step(),
        expect![[r#"
        create hourly scheduled__2026-01-01T09:00:00Z [2026-01-01T09:00:00Z .. 2026-01-01T10:00:00Z)
        start hourly#1
        hourly#1 a: none -> queued
    "#]],
    );
    w.claim_all();
    w.succeed(w.run_at("hourly", "2026-01-01T09:00:00Z"), "a");
    w.pause("hourly", true);
    // Paused: the slots that pass are skipped, the latest too, and no run starts.
    w.set_now("2026-01-01T12:30:00Z");
    check(
        w.step(),
        expect![[r#"
        slots skipped hourly: 2 from 2026-01-01T10:00:00Z to 2026-01-01T11:00:00Z
        finish hourly#1 success
    "#]],
    );
    check(w.step(), expect![""]);
    // A manual run of a paused DAG waits in `queued`.
    w.trigger("hourly");
    w.advance(60);
    check(w.step(), expect![""]);
    // Unpaused: the manual run starts, and the next slot to end gets a run.
    w.pause("hourly", false);
    check(
        w.step(),
        expect![[r#"
        start hourly#2
        hourly#2 a: none -> queued
    "#]],
    );
    w.set_now("2026-01-01T13:05:00Z");
    check(
        w.step(),
        expect![[r#"
        create hourly scheduled__2026-01-01T12:00:00Z [2026-01-01T12:00:00Z .. 2026-01-01T13:00:00Z)
        start hourly#3
        hourly#3 a: none -> queued
    "#]],
    );
    check(
        w.ledger("hourly"),
        expect![[r#"
        2026-01-01T09:00:00Z run
        2026-01-01T10:00:00Z skipped
        2026-01-01T11:00:00Z skipped
        2026-01-01T12:00:00Z run
    "#]],
    );
}

#[test]
fn a_paused_catchup_dag_creates_nothing_then_catches_up() {
    let mut w = World::at("2026-01-01T10:30:00Z");
    w.dag(
        "hourly",
        "schedule: '@hourly'\nstart_date: 2026-01-01T10:00:00Z\ncatchup: true\nmax_active_runs: 5\ntasks:\n  a:\n    run: x\n",
    );
    check(w.step(), expect![""]);
    w.pause("hourly", true);
    w.set_now("2026-01-01T13:30:00Z");
    check(w.step(), expect![""]);
    w.pause("hourly", false);
    check(
        w.step(),
        expect![[r#"
        create hourly scheduled__2026-01-01T10:00:00Z [2026-01-01T10:00:00Z .. 2026-01-01T11:00:00Z)
        create hourly scheduled__2026-01-01T11:00:00Z [2026-01-01T11:00:00Z .. 2026-01-01T12:00:00Z)
        create hourly scheduled__2026-01-01T12:00:00Z [2026-01-01T12:00:00Z .. 2026-01-01T13:00:00Z)
        start hourly#1
        start hourly#2
        start hourly#3
        hourly#1 a: none -> queued
        hourly#2 a: none -> queued
        hourly#3 a: none -> queued
    "#]],
    );
}

#[test]
fn max_active_runs_holds_back_creation_until_a_run_ends() {
    let mut w = World::at("2026-01-01T03:30:00Z");
    w.dag(
        "hourly",
        "schedule: '@hourly'\nstart_date: 2026-01-01T00:00:00Z\ncatchup: true\nmax_active_runs: 1\ntasks:\n  a:\n    run: x\n",
    );
    check(
        w.step(),
        expect![[r#"
        create hourly scheduled__2026-01-01T00:00:00Z [2026-01-01T00:00:00Z .. 2026-01-01T01:00:00Z)
        start hourly#1
        hourly#1 a: none -> queued
    "#]],
    );
    check(w.step(), expect![""]);
    let first = w.run_at("hourly", "2026-01-01T00:00:00Z");
    w.claim_all();
    w.succeed(first, "a");
    check(
        w.step(),
        expect![[r#"
        finish hourly#1 success
    "#]],
    );
    check(
        w.step(),
        expect![[r#"
        create hourly scheduled__2026-01-01T01:00:00Z [2026-01-01T01:00:00Z .. 2026-01-01T02:00:00Z)
        start hourly#2
        hourly#2 a: none -> queued
    "#]],
    );
}

const RULES: &str = "tasks:
  ok:
    run: x
  bad:
    run: x
  all_success:
    run: x
    needs: [ok, bad]
  all_failed:
    run: x
    needs: [ok, bad]
    trigger_rule: all_failed
  all_done:
    run: x
    needs: [ok, bad]
    trigger_rule: all_done
  one_success:
    run: x
    needs: [ok, bad]
    trigger_rule: one_success
  one_failed:
    run: x
    needs: [ok, bad]
    trigger_rule: one_failed
  none_failed:
    run: x
    needs: [ok, bad]
    trigger_rule: none_failed
  none_failed_min_one_success:
    run: x
    needs: [ok, bad]
    trigger_rule: none_failed_min_one_success
  none_skipped:
    run: x
    needs: [ok, bad]
    trigger_rule: none_skipped
  always:
    run: x
    needs: [ok, bad]
    trigger_rule: always
";

#[test]
fn each_trigger_rule_after_one_success_and_one_failure() {
    let mut w = World::at("2026-01-01T00:00:00Z");
    w.dag("rules", RULES);
    let run = w.trigger("rules");
    check(
        w.step(),
        expect![[r#"
        start rules#1
        rules#1 ok: none -> queued
        rules#1 bad: none -> queued
        rules#1 always: none -> queued
    "#]],
    );
    w.claim_all();
    w.succeed(run, "ok");
    // One upstream done: only rules that can already decide move.
    check(
        w.step(),
        expect![[r#"
        rules#1 all_failed: none -> skipped
        rules#1 one_success: none -> queued
    "#]],
    );
    w.fail(run, "bad");
    check(
        w.step(),
        expect![[r#"
        rules#1 all_success: none -> upstream_failed
        rules#1 none_failed: none -> upstream_failed
        rules#1 none_failed_min_one_success: none -> upstream_failed
        rules#1 all_done: none -> queued
        rules#1 one_failed: none -> queued
        rules#1 none_skipped: none -> queued
    "#]],
    );
}

#[test]
fn each_trigger_rule_after_a_skip() {
    // `gate` succeeds, so `skipped` (all_failed) is skipped: the rules below see
    // one success and one skip.
    let mut w = World::at("2026-01-01T00:00:00Z");
    w.dag(
        "skips",
        "tasks:
  ok:
    run: x
  gate:
    run: x
  skipped:
    run: x
    needs: [gate]
    trigger_rule: all_failed
  all_success:
    run: x
    needs: [ok, skipped]
  none_failed:
    run: x
    needs: [ok, skipped]
    trigger_rule: none_failed
  none_skipped:
    run: x
    needs: [ok, skipped]
    trigger_rule: none_skipped
  none_failed_min_one_success:
    run: x
    needs: [ok, skipped]
    trigger_rule: none_failed_min_one_success
  all_done:
    run: x
    needs: [ok, skipped]
    trigger_rule: all_done
",
    );
    let run = w.trigger("skips");
    w.step();
    w.claim_all();
    w.succeed(run, "ok");
    w.succeed(run, "gate");
    check(
        w.step(),
        expect![[r#"
        skips#1 skipped: none -> skipped
        skips#1 all_success: none -> skipped
        skips#1 none_skipped: none -> skipped
        skips#1 none_failed: none -> queued
        skips#1 none_failed_min_one_success: none -> queued
        skips#1 all_done: none -> queued
    "#]],
    );
}

#[test]
fn retries_wait_for_their_backoff_and_the_last_failure_fails_the_run() {
    let mut w = World::at("2026-01-01T00:00:00Z");
    w.dag(
        "flaky",
        "tasks:\n  a:\n    run: x\n    retries: 2\n    retry_delay: 10s\n    retry_backoff: true\n",
    );
    let run = w.trigger("flaky");
    check(
        w.step(),
        expect![[r#"
        start flaky#1
        flaky#1 a: none -> queued
    "#]],
    );
    w.claim_all();
    w.fail(run, "a");
    check(
        w.state(),
        expect![[r#"
        flaky#1 manual__2026-01-01T00:00:00Z running
          a up_for_retry try 1 retry_at 2026-01-01T00:00:10Z
    "#]],
    );
    w.advance(9);
    check(w.step(), expect![""]);
    w.advance(1);
    check(
        w.step(),
        expect![[r#"
        flaky#1 a: up_for_retry -> queued
    "#]],
    );
    w.claim_all();
    w.fail(run, "a");
    // The second retry waits twice as long.
    w.advance(19);
    check(w.step(), expect![""]);
    w.advance(1);
    check(
        w.step(),
        expect![[r#"
        flaky#1 a: up_for_retry -> queued
    "#]],
    );
    w.claim_all();
    w.fail(run, "a");
    check(
        w.step(),
        expect![[r#"
        finish flaky#1 failed
    "#]],
    );
    check(
        w.state(),
        expect![[r#"
        flaky#1 manual__2026-01-01T00:00:00Z failed
          a failed try 3
    "#]],
    );
}

#[test]
fn a_pool_queues_the_most_urgent_first_within_its_slots() {
    let mut w = World::at("2026-01-01T00:00:00Z");
    w.pool("db", 1);
    w.dag(
        "pooled",
        "tasks:\n  low:\n    run: x\n    pool: db\n  high:\n    run: x\n    pool: db\n    priority: 10\n  free:\n    run: x\n",
    );
    let run = w.trigger("pooled");
    check(
        w.step(),
        expect![[r#"
        start pooled#1
        pooled#1 low: none -> scheduled
        pooled#1 high: none -> scheduled
        pooled#1 free: none -> queued
        enqueue [high, low] -> queued [high]
        enqueue [low] -> queued []
    "#]],
    );
    // The pool is full: nothing more is queued, however often the scheduler looks.
    w.claim_all();
    check(
        w.step(),
        expect![[r#"
        enqueue [low] -> queued []
    "#]],
    );
    w.succeed(run, "high");
    check(
        w.step(),
        expect![[r#"
        enqueue [low] -> queued [low]
    "#]],
    );
}

#[test]
fn a_missing_pool_holds_its_tasks_in_scheduled() {
    let mut w = World::at("2026-01-01T00:00:00Z");
    w.dag("orphan", "tasks:\n  a:\n    run: x\n    pool: nowhere\n");
    w.trigger("orphan");
    check(
        w.step(),
        expect![[r#"
        start orphan#1
        orphan#1 a: none -> scheduled
        enqueue [a] -> queued []
        enqueue [a] -> queued []
    "#]],
    );
    check(
        w.step(),
        expect![[r#"
        enqueue [a] -> queued []
    "#]],
    );
    w.pool("nowhere", 2);
    check(
        w.step(),
        expect![[r#"
        enqueue [a] -> queued [a]
    "#]],
    );
}

#[test]
fn max_active_tasks_limits_a_dag_across_its_runs() {
    let mut w = World::at("2026-01-01T00:00:00Z");
    w.dag(
        "capped",
        "max_active_tasks: 2\nmax_active_runs: 2\ntasks:\n  a:\n    run: x\n  b:\n    run: x\n  c:\n    run: x\n",
    );
    let first = w.trigger("capped");
    w.advance(1);
    let _second = w.trigger("capped");
    check(
        w.step(),
        expect![[r#"
        start capped#1
        start capped#2
        capped#1 a: none -> scheduled
        capped#1 b: none -> scheduled
        capped#1 c: none -> scheduled
        enqueue [a, b, c] max_active_tasks=2 -> queued [a, b]
        enqueue [c] max_active_tasks=2 -> queued []
        capped#2 a: none -> scheduled
        capped#2 b: none -> scheduled
        capped#2 c: none -> scheduled
        enqueue [a, b, c] max_active_tasks=2 -> queued []
        enqueue [a, b, c] max_active_tasks=2 -> queued []
    "#]],
    );
    w.claim_all();
    w.succeed(first, "a");
    check(
        w.step(),
        expect![[r#"
        enqueue [c] max_active_tasks=2 -> queued [c]
        enqueue [a, b, c] max_active_tasks=2 -> queued []
    "#]],
    );
}

#[test]
fn a_lease_running_out_retries_the_task_and_a_live_one_is_left_alone() {
    let mut w = World::at("2026-01-01T00:00:00Z");
    w.dag(
        "leased",
        "tasks:\n  a:\n    run: x\n    retries: 1\n    retry_delay: 5s\n  b:\n    run: x\n",
    );
    let run = w.trigger("leased");
    w.step();
    w.claim_all();
    // Heart-beating within the lease: nothing is reaped.
    w.advance(9);
    w.heartbeat();
    w.advance(9);
    check(w.step(), expect![""]);
    // Exactly a lease since the last heartbeat: not yet (the stores reap only
    // a heartbeat older than the lease).
    w.advance(1);
    check(w.step(), expect![""]);
    // Silent for longer than the lease: both are lost; `a` retries, `b` has
    // no try left.
    w.advance(1);
    check(
        w.step(),
        expect![[r#"
            reap leased#1 a try 1 (lost): running -> up_for_retry at 2026-01-01T00:00:25Z
            reap leased#1 b try 1 (lost): running -> failed
        "#]],
    );
    w.advance(5);
    check(
        w.step(),
        expect![[r#"
        leased#1 a: up_for_retry -> queued
    "#]],
    );
    w.claim_all();
    w.succeed(run, "a");
    check(
        w.step(),
        expect![[r#"
        finish leased#1 failed
    "#]],
    );
}

#[test]
fn a_cancelled_run_is_left_alone_and_the_next_one_proceeds() {
    let mut w = World::at("2026-01-01T00:00:00Z");
    w.dag(
        "chain",
        "max_active_runs: 1\ntasks:\n  a:\n    run: x\n  b:\n    run: x\n    needs: [a]\n",
    );
    let first = w.trigger("chain");
    w.advance(1);
    let second = w.trigger("chain");
    check(
        w.step(),
        expect![[r#"
        start chain#1
        chain#1 a: none -> queued
    "#]],
    );
    w.claim_all();
    w.cancel(first);
    check(
        w.step(),
        expect![[r#"
        start chain#2
        chain#2 a: none -> queued
    "#]],
    );
    w.claim_all();
    w.succeed(second, "a");
    check(
        w.step(),
        expect![[r#"
        chain#2 b: none -> queued
    "#]],
    );
    check(
        w.state(),
        expect![[r#"
        chain#1 manual__2026-01-01T00:00:00Z failed
          a failed try 1
          b skipped try 0
        chain#2 manual__2026-01-01T00:00:01Z running
          a success try 1
          b queued try 0
    "#]],
    );
}

#[test]
fn a_stale_plan_written_twice_changes_nothing_the_second_time() {
    // Two schedulers (or one that froze between reading and writing) decide on
    // the same rows: the second write of each action applies nothing.
    let mut w = World::at("2026-01-01T00:00:00Z");
    w.dag(
        "pair",
        "tasks:\n  a:\n    run: x\n  b:\n    run: x\n    needs: [a]\n    pool: p\n",
    );
    w.pool("p", 1);
    let run = w.trigger("pair");
    w.step();
    w.claim_all();
    w.succeed(run, "a");
    let stale = w.decide_run(run);
    check(
        w.apply_all(&stale),
        expect![[r#"
        pair#1 b: none -> scheduled
        enqueue [b] -> queued [b]
    "#]],
    );
    check(
        w.apply_all(&stale),
        expect![[r#"
        pair#1 b: none -> scheduled (not applied)
        enqueue [b] -> queued []
    "#]],
    );
    w.claim_all();
    w.succeed(run, "b");
    let stale = w.decide_run(run);
    check(
        w.apply_all(&stale),
        expect![[r#"
        finish pair#1 success
    "#]],
    );
    check(
        w.apply_all(&stale),
        expect![[r#"
        finish pair#1 success (not applied)
    "#]],
    );
}

#[test]
fn a_slot_that_already_has_a_run_does_not_use_up_max_active_runs() {
    // A backfill already ran the first two slots: catch-up moves past them and
    // creates the next run in the same pass.
    let mut w = World::at("2026-01-01T04:30:00Z");
    w.dag(
        "hourly",
        "schedule: '@hourly'\nstart_date: 2026-01-01T00:00:00Z\ncatchup: true\nmax_active_runs: 1\ntasks:\n  a:\n    run: x\n",
    );
    w.backfill("hourly", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00Z");
    w.backfill("hourly", "2026-01-01T01:00:00Z", "2026-01-01T02:00:00Z");
    w.finish_all_runs();
    check(
        w.step(),
        expect![[r#"
        create hourly scheduled__2026-01-01T00:00:00Z [2026-01-01T00:00:00Z .. 2026-01-01T01:00:00Z) (not applied)
        create hourly scheduled__2026-01-01T01:00:00Z [2026-01-01T01:00:00Z .. 2026-01-01T02:00:00Z) (not applied)
        create hourly scheduled__2026-01-01T02:00:00Z [2026-01-01T02:00:00Z .. 2026-01-01T03:00:00Z)
        start hourly#3
        hourly#3 a: none -> queued
    "#]],
    );
}

#[test]
fn a_run_that_ends_without_the_scheduler_is_forgotten() {
    // A task waiting for a pool keeps its run watched (planned every pass);
    // once an operator cancels the run, the next pass forgets it.
    let mut w = World::at("2026-01-01T00:00:00Z");
    w.dag("waits", "tasks:\n  a:\n    run: x\n    pool: nowhere\n");
    let run = w.trigger("waits");
    w.step();
    assert_eq!(w.remembered(), 1);
    w.cancel(run);
    check(w.step(), expect![""]);
    assert_eq!(w.remembered(), 0);
}

#[test]
fn the_agenda_looks_at_a_dag_when_its_next_slot_ends_or_its_row_changes() {
    let mut w = World::at("2026-01-01T10:30:00Z");
    w.dag(
        "hourly",
        "schedule: '@hourly'\nstart_date: 2026-01-01T10:00:00Z\ncatchup: false\ntasks:\n  a:\n    run: x\n",
    );
    w.dag(
        "daily",
        "schedule: '@daily'\nstart_date: 2026-01-02\ntasks:\n  a:\n    run: x\n",
    );
    w.dag("manual", "tasks:\n  a:\n    run: x\n");
    w.dag(
        "held",
        "schedule: '@hourly'\nstart_date: 2026-01-01T08:00:00Z\ncatchup: true\nmax_active_runs: 1\ntasks:\n  a:\n    run: x\n",
    );
    w.step();
    // Nothing due: next looked at when the next interval is complete; a DAG
    // without a schedule is not held at all.
    assert_eq!(
        w.next_look("hourly").as_deref(),
        Some("2026-01-01T11:00:00Z")
    );
    assert_eq!(
        w.next_look("daily").as_deref(),
        Some("2026-01-02T00:00:00Z")
    );
    assert_eq!(w.next_look("manual"), None);
    // Catching up behind max_active_runs: looked at every housekeeping.
    assert_eq!(w.next_look("held").as_deref(), Some("2026-01-01T10:30:00Z"));
    assert_eq!(w.agenda_len(), 3);
    w.advance(1);
    check(w.step(), expect![""]);
    assert_eq!(
        w.next_look("hourly").as_deref(),
        Some("2026-01-01T11:00:00Z")
    );
    // A pause is a change: a paused DAG that never ran cannot have work (its
    // slots are recorded when it is unpaused), so it leaves the agenda; the
    // unpause brings it back, looked at once.
    w.pause("hourly", true);
    w.step();
    assert_eq!(w.next_look("hourly"), None);
    w.set_now("2026-01-01T11:00:00Z");
    check(w.step(), expect![""]);
    w.pause("hourly", false);
    check(
        w.step(),
        expect![[r#"
            create hourly scheduled__2026-01-01T10:00:00Z [2026-01-01T10:00:00Z .. 2026-01-01T11:00:00Z)
            start hourly#2
            hourly#2 a: none -> queued
        "#]],
    );
    // It made a run: looked at again at once (more may be due), then at the
    // end of its next interval.
    assert_eq!(
        w.next_look("hourly").as_deref(),
        Some("2026-01-01T11:00:00Z")
    );
    w.step();
    assert_eq!(
        w.next_look("hourly").as_deref(),
        Some("2026-01-01T12:00:00Z")
    );
}

#[test]
fn a_look_the_store_failed_is_made_at_the_next_housekeeping() {
    let mut w = World::at("2026-01-01T10:30:00Z");
    w.dag(
        "hourly",
        "schedule: '@hourly'\nstart_date: 2026-01-01T10:00:00Z\ncatchup: false\ntasks:\n  a:\n    run: x\n",
    );
    w.step();
    w.set_now("2026-01-01T11:00:00Z");
    // The store fails while the due DAGs are looked at: none is lost.
    assert_eq!(w.fail_looks(), 1);
    assert_eq!(
        w.next_look("hourly").as_deref(),
        Some("2026-01-01T11:00:00Z")
    );
    w.advance(1);
    check(
        w.step(),
        expect![[r#"
            create hourly scheduled__2026-01-01T10:00:00Z [2026-01-01T10:00:00Z .. 2026-01-01T11:00:00Z)
            start hourly#1
            hourly#1 a: none -> queued
        "#]],
    );
}
