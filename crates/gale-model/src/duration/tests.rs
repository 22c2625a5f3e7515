//! Tests of duration parsing.

use super::*;

#[test]
fn parses_units_and_combinations() {
    let check = |text: &str, ms: u64| assert_eq!(parse(text).unwrap().as_millis(), ms, "{text}");
    check("30s", 30_000);
    check("10m", 600_000);
    check("1h30m", 5_400_000);
    check("500ms", 500);
    check("2d", 172_800_000);
    check("45", 45_000);
}

#[test]
fn rejects_bad_input_with_a_reason() {
    assert!(parse("").unwrap_err().contains("empty"));
    assert!(parse("10x").unwrap_err().contains("unknown unit"));
    assert!(parse("m10").unwrap_err().contains("expected a number"));
    assert!(parse("10m5").unwrap_err().contains("missing unit"));
}

#[test]
fn displays_compactly() {
    assert_eq!(parse("90m").unwrap().to_string(), "1h30m");
    assert_eq!(parse("1500ms").unwrap().to_string(), "1500ms");
}
