//! A DAG's versions in a browser: pushed three times, its page names where
//! its version came from, and the source tab compares versions (since the
//! last successful run, and any two from the version list).
//!
//! Screenshots go to `$CARGO_TARGET_TMPDIR/screenshots/`.

use std::time::Duration;

use crate::harness::Home;
use crate::ui::{admin_password, log_in, shoot};
use crate::web::wait_url;
use crate::webdriver;

const WAIT: Duration = Duration::from_secs(60);

/// Version 1 has tasks `a` and `b`; later ones change `a`, drop `b`, add `c`
/// and move the schedule; version 3 changes the description too. Scheduled
/// from 2099 on, so the test's run is the only one.
fn shop(version: u32) -> String {
    let tasks = if version == 1 {
        "  a:\n    run: echo a\n  b:\n    run: echo b\n"
    } else {
        "  a:\n    run: echo a twice\n  c:\n    needs: [a]\n    run: echo c\n"
    };
    let schedule = if version == 1 {
        "0 2 * * *"
    } else {
        "0 4 * * *"
    };
    let description = if version == 3 { "three" } else { "one" };
    format!(
        "description: {description}\nschedule: \"{schedule}\"\nstart_date: 2099-01-01\ntasks:\n{tasks}"
    )
}

#[tokio::test]
async fn versions_compared_in_a_browser() {
    let Some(browser) = webdriver::start_or_skip("versions_compared_in_a_browser").await else {
        return;
    };
    let home = Home::new();
    let standalone = home.start();
    let base = wait_url("gale standalone", || standalone.log());
    let password = admin_password(&standalone);
    let file = home.path().join("shop.yaml");
    let push = |version: u32| {
        std::fs::write(&file, shop(version)).expect("writing shop.yaml");
        home.ok(&["dags", "push", &file.display().to_string()]);
    };
    push(1);
    let run = home.trigger("shop", &[]);
    assert_eq!(home.wait_run(run)["run"]["state"], "success");
    push(2);
    push(3);
    log_in(&browser, &base, "admin", &password).await;

    browser
        .goto(&format!("{base}/dags/shop?tab=source"))
        .await
        .expect("the source tab");
    let source = browser
        .wait_for("dd.dag-source", WAIT)
        .await
        .expect("the DAG's source")
        .text()
        .await
        .expect("its text");
    assert!(source.starts_with("push by cli:"), "{source}");
    let versions = browser
        .find_all("aside.versions li")
        .await
        .expect("the versions");
    assert_eq!(versions.len(), 3, "three versions listed");

    // Since the last successful run: version 1 to version 3.
    browser
        .find("a[href$='against=last_success']")
        .await
        .expect("the link")
        .click()
        .await
        .expect("following it");
    let diff = browser
        .wait_for(".version-diff", WAIT)
        .await
        .expect("the comparison")
        .text()
        .await
        .expect("its text");
    assert!(diff.contains("Tasks added: c"), "{diff}");
    assert!(diff.contains("Tasks removed: b"), "{diff}");
    let a = browser
        .find("table.task-changes[data-task='a']")
        .await
        .expect("a's changes")
        .text()
        .await
        .expect("their text");
    assert!(a.contains("echo a twice"), "{a}");
    let schedule = browser
        .find("table.dag-changes")
        .await
        .expect("the DAG's changes")
        .text()
        .await
        .expect("their text");
    assert!(
        schedule.contains("0 2 * * *") && schedule.contains("0 4 * * *"),
        "{schedule}"
    );
    let added = browser
        .find_all("pre.diff .dl.added")
        .await
        .expect("added lines");
    assert!(!added.is_empty(), "the file's added lines are marked");
    shoot(&browser, "versions-since-last-success").await;

    // Any two: the shown (current) version against the oldest.
    let links = browser
        .find_all("aside.versions a.compare")
        .await
        .expect("compare links");
    assert_eq!(links.len(), 2, "every version but the shown one");
    links
        .last()
        .expect("the oldest")
        .click()
        .await
        .expect("comparing");
    let heading = browser
        .wait_for(".version-diff h3", WAIT)
        .await
        .expect("the comparison's heading")
        .text()
        .await
        .expect("its text");
    assert!(heading.starts_with("Changes from "), "{heading}");
    assert!(heading.contains("push by cli:"), "{heading}");
    shoot(&browser, "versions-compared").await;
    browser.quit().await.expect("closing the browser");
    drop(standalone);
}
