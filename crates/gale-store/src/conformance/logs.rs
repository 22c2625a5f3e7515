//! Conformance checks: Attempt logs, paged by sequence.

use super::*;

/// Logs come back in order with their streams, paged by `after_seq` and `limit`,
/// separately per attempt.
pub async fn logs_paging<S: Store + ?Sized>(store: &S) {
    let (_dag, run) = queued_run(store, "logs", 2).await;
    let rows = tasks_of(store, run).await;
    let (t1, t2) = (find(&rows, "t1").id, find(&rows, "t2").id);

    let line = |n: i64, stream: Stream, text: &str| LogLine {
        ts: Timestamp::from_second(BASE_SECOND + n).expect("a valid timestamp"),
        stream,
        text: text.to_owned(),
    };
    let first = vec![
        line(1, Stream::System, "starting try 1"),
        line(2, Stream::Stdout, "hello"),
        line(2, Stream::Stderr, "warning: ünïcödé ✓"),
        line(3, Stream::Stdout, ""),
        line(4, Stream::Stdout, "  indented\ttab"),
    ];
    let second = vec![
        line(5, Stream::Stderr, "oops"),
        line(6, Stream::System, "exit status 0"),
    ];
    store.append_logs(t1, 1, &first).await.expect("append_logs");
    store
        .append_logs(t2, 1, &[line(1, Stream::Stdout, "other task")])
        .await
        .expect("append_logs");
    store
        .append_logs(t1, 2, &[line(9, Stream::Stdout, "other try")])
        .await
        .expect("append_logs");
    store
        .append_logs(t1, 1, &second)
        .await
        .expect("append_logs");
    store
        .append_logs(t1, 1, &[])
        .await
        .expect("append_logs([])");

    let expected: Vec<&LogLine> = first.iter().chain(&second).collect();
    let all = store.read_logs(t1, 1, 0, 1000).await.expect("read_logs");
    assert_eq!(
        all.len(),
        expected.len(),
        "only this attempt's lines: {all:#?}"
    );
    for (got, want) in all.iter().zip(&expected) {
        assert_eq!(got.text, want.text, "lines come back in order");
        assert_eq!(got.stream, want.stream, "the stream is kept: {got:?}");
        assert_eq!(got.ts, want.ts, "the timestamp is kept: {got:?}");
    }
    assert!(
        all.windows(2).all(|w| w[0].seq < w[1].seq),
        "seq increases with every line: {all:#?}"
    );
    assert!(all[0].seq > 0, "after_seq 0 reads from the start");

    let mut paged = Vec::new();
    let mut after = 0;
    let mut pages = 0;
    loop {
        let page = store.read_logs(t1, 1, after, 3).await.expect("read_logs");
        assert!(page.len() <= 3, "read_logs must respect the limit");
        let Some(last) = page.last() else { break };
        after = last.seq;
        paged.extend(page.into_iter().map(|r| r.text));
        pages += 1;
        assert!(pages <= 10, "paging does not end");
    }
    assert_eq!(pages, 3, "7 lines in pages of 3");
    let texts: Vec<String> = expected.iter().map(|l| l.text.clone()).collect();
    assert_eq!(paged, texts, "paging returns every line once, in order");

    let tail = store
        .read_logs(t1, 1, all[4].seq, 1000)
        .await
        .expect("read_logs");
    let tail: Vec<&str> = tail.iter().map(|r| r.text.as_str()).collect();
    assert_eq!(tail, vec!["oops", "exit status 0"], "lines after after_seq");
    assert!(
        store
            .read_logs(t1, 1, all[6].seq, 1000)
            .await
            .expect("read_logs")
            .is_empty()
    );

    let other_try = store.read_logs(t1, 2, 0, 1000).await.expect("read_logs");
    assert_eq!(other_try.len(), 1);
    assert_eq!(other_try[0].text, "other try");
    let other_task = store.read_logs(t2, 1, 0, 1000).await.expect("read_logs");
    assert_eq!(other_task.len(), 1);
    assert_eq!(other_task[0].text, "other task");
    assert!(
        store
            .read_logs(t2, 2, 0, 1000)
            .await
            .expect("read_logs")
            .is_empty()
    );
}
