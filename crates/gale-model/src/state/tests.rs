//! Tests of states, trigger rules and the retry policy.

use super::*;

fn counts(states: &[TaskState]) -> UpstreamCounts {
    let mut c = UpstreamCounts::default();
    for s in states {
        c.add(*s);
    }
    c
}

use Readiness::*;
use TaskState::{Failed as F, Running as R, Skipped as K, Success as S, UpstreamFailed as U};

fn check(rule: TriggerRule, ups: &[TaskState], expect: Readiness) {
    assert_eq!(rule.evaluate(counts(ups)), expect, "{rule:?} with {ups:?}");
}

#[test]
fn all_success() {
    let r = TriggerRule::AllSuccess;
    check(r, &[], Run);
    check(r, &[S, S], Run);
    check(r, &[S, R], Wait);
    check(r, &[F, R], UpstreamFailed);
    check(r, &[U, S], UpstreamFailed);
    check(r, &[K, S], Skip);
}

#[test]
fn all_failed() {
    let r = TriggerRule::AllFailed;
    check(r, &[F, U], Run);
    check(r, &[F, R], Wait);
    check(r, &[F, S], Skip);
    check(r, &[K, F], Skip);
}

#[test]
fn all_done_and_always() {
    check(TriggerRule::AllDone, &[F, S, K], Run);
    check(TriggerRule::AllDone, &[F, R], Wait);
    check(TriggerRule::Always, &[R, R], Run);
}

#[test]
fn one_success_and_one_failed() {
    check(TriggerRule::OneSuccess, &[S, R], Run);
    check(TriggerRule::OneSuccess, &[F, R], Wait);
    check(TriggerRule::OneSuccess, &[F, K], UpstreamFailed);
    check(TriggerRule::OneSuccess, &[K, K], Skip);
    check(TriggerRule::OneFailed, &[F, R], Run);
    check(TriggerRule::OneFailed, &[S, R], Wait);
    check(TriggerRule::OneFailed, &[S, K], Skip);
}

#[test]
fn none_failed_family() {
    check(TriggerRule::NoneFailed, &[S, K], Run);
    check(TriggerRule::NoneFailed, &[S, R], Wait);
    check(TriggerRule::NoneFailed, &[U, R], UpstreamFailed);
    check(TriggerRule::NoneFailedMinOneSuccess, &[S, K], Run);
    check(TriggerRule::NoneFailedMinOneSuccess, &[K, K], Skip);
    check(
        TriggerRule::NoneFailedMinOneSuccess,
        &[F, S],
        UpstreamFailed,
    );
    check(TriggerRule::NoneSkipped, &[S, F], Run);
    check(TriggerRule::NoneSkipped, &[K, R], Skip);
    check(TriggerRule::NoneSkipped, &[S, R], Wait);
}

#[test]
fn retry_policy() {
    let policy = |retries, exponential, max_delay_ms| RetryPolicy {
        retries,
        delay_ms: 1000,
        exponential,
        max_delay_ms,
    };
    let retry = |delay_ms| AfterFailure::Retry { delay_ms };
    assert_eq!(policy(2, false, None).after_failure(1), retry(1000));
    assert_eq!(policy(2, false, None).after_failure(2), retry(1000));
    assert_eq!(policy(2, false, None).after_failure(3), AfterFailure::Fail);
    assert_eq!(policy(5, true, None).after_failure(3), retry(4000));
    assert_eq!(policy(5, true, Some(2500)).after_failure(3), retry(2500));
    // A retry waits at least a second, whatever the task says.
    let instant = RetryPolicy {
        retries: 3,
        delay_ms: 0,
        exponential: true,
        max_delay_ms: Some(0),
    };
    assert_eq!(instant.after_failure(1), retry(MIN_RETRY_DELAY_MS));
    // Uncapped exponential backoff stops at a day; a huge try number does not overflow.
    assert_eq!(policy(100, true, None).after_failure(60), retry(86_400_000));
    assert_eq!(AfterFailure::Fail.state(), F);
    assert_eq!(retry(1).state(), TaskState::UpForRetry);
    let now: jiff::Timestamp = "2026-01-01T00:00:00Z".parse().unwrap();
    assert_eq!(
        retry(1500).retry_at(now),
        Some("2026-01-01T00:00:01.5Z".parse().unwrap())
    );
    assert_eq!(AfterFailure::Fail.retry_at(now), None);
}

#[test]
fn run_outcome_looks_at_leaves() {
    assert_eq!(run_outcome(&[S, K]), RunState::Success);
    assert_eq!(run_outcome(&[S, U]), RunState::Failed);
}

#[test]
fn state_names_round_trip() {
    for s in TaskState::ALL {
        assert_eq!(s.as_str().parse::<TaskState>().unwrap(), s);
    }
}
