use super::*;

async fn pumped(input: &[u8], max_line: usize) -> Vec<String> {
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    pump(input, Stream::Stdout, tx, max_line).await;
    let mut out = Vec::new();
    while let Ok((stream, text)) = rx.try_recv() {
        assert_eq!(stream, Stream::Stdout);
        out.push(text);
    }
    out
}

#[tokio::test]
async fn pump_splits_lines_and_keeps_a_last_line_without_newline() {
    assert_eq!(pumped(b"a\r\nb\n\nlast", 100).await, ["a", "b", "", "last"]);
}

#[tokio::test]
async fn pump_cuts_long_lines_and_says_so() {
    let out = pumped(b"0123456789\nok\n", 4).await;
    assert_eq!(out, ["0123 [gale: line cut]", "ok"]);
}

#[tokio::test]
async fn pump_replaces_invalid_utf8() {
    let out = pumped(b"caf\xff\n", 100).await;
    assert_eq!(out, ["caf\u{fffd}"]);
}

#[tokio::test]
async fn outputs_are_key_value_lines_and_bad_lines_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    std::fs::write(&path, "path=/tmp/a b\n\nrows = 42\nnot a pair\nk=v=w\n").unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    let outputs = read_outputs(&path, 1024, &tx).await;
    assert_eq!(outputs.get("path").map(String::as_str), Some("/tmp/a b"));
    assert_eq!(outputs.get("rows").map(String::as_str), Some(" 42"));
    assert_eq!(outputs.get("k").map(String::as_str), Some("v=w"));
    assert_eq!(outputs.len(), 3);
    assert!(!path.exists(), "the outputs file is removed once read");
    let (_, warning) = rx.try_recv().unwrap();
    assert!(warning.contains("line 4 is not key=value"), "{warning}");
}

#[tokio::test]
async fn oversized_outputs_are_ignored_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out");
    std::fs::write(&path, "k=".to_owned() + &"x".repeat(100)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(64);
    assert!(read_outputs(&path, 10, &tx).await.is_empty());
    assert!(
        rx.try_recv()
            .unwrap()
            .1
            .contains("more than the 10 allowed")
    );
}
