//! The DAG page's history tabs and params form in a browser: a real `gale
//! standalone` with a DAG that has params and a task that needs a retry, a few
//! runs, then the durations, tries, landing and calendar tabs (each asserted
//! and screenshotted), and a run triggered through the form built from the
//! params, whose conf is checked with the CLI.
//!
//! Screenshots go to `$CARGO_TARGET_TMPDIR/screenshots/`.

use std::time::Duration;

use serde_json::json;

use crate::harness::Home;
use crate::ui::{admin_password, log_in, shoot};
use crate::web::wait_url;
use crate::webdriver;

const WAIT: Duration = Duration::from_secs(60);

/// `flaky` fails its first try once per home (a marker file), `greet` uses
/// the params.
fn charts_dag(marker: &str) -> String {
    format!(
        r#"description: History charts and a params form.
params:
  who: {{type: string, default: world, description: Whom to greet}}
  count: {{type: integer, minimum: 1, maximum: 5, default: 2}}
  loud: {{type: boolean, default: false}}
  region: {{type: string, enum: [eu, us], default: eu}}
  options: {{type: object, default: {{a: 1}}, description: Extra settings}}
tasks:
  flaky:
    run: 'test -e {marker} || {{ touch {marker}; exit 1; }}'
    retries: 1
    retry_delay: 1s
  greet:
    needs: [flaky]
    run: 'sleep 1; echo "hello {{{{ params.who }}}} x{{{{ params.count }}}}"'
"#
    )
}

async fn count(browser: &webdriver::Browser, css: &str) -> usize {
    browser
        .find_all(css)
        .await
        .unwrap_or_else(|e| panic!("{css}: {e:#}"))
        .len()
}

#[tokio::test]
async fn history_tabs_and_params_form_in_a_browser() {
    let Some(browser) = webdriver::start_or_skip("history_tabs_and_params_form_in_a_browser").await
    else {
        return;
    };
    let home = Home::new();
    home.write_dag("charts.yaml", &charts_dag(&home.file("flaky-marker")));
    let standalone = home.start();
    let base = wait_url("gale standalone", || standalone.log());
    let password = admin_password(&standalone);
    home.wait_dag("charts");
    for _ in 0..2 {
        let run = home.trigger("charts", &[]);
        let done = home.wait_run(run);
        assert_eq!(done["run"]["state"], "success", "{done:#}");
    }
    log_in(&browser, &base, "admin", &password).await;

    // Durations: a line per task, a point per run.
    browser
        .goto(&format!("{base}/dags/charts?tab=durations"))
        .await
        .expect("the durations tab");
    browser
        .wait_for(
            "svg.history[data-metric=duration] g.series[data-task=greet] circle.point",
            WAIT,
        )
        .await
        .expect("a durations chart");
    for task in ["flaky", "greet"] {
        assert_eq!(
            count(
                &browser,
                &format!("svg.history g.series[data-task={task}] circle.point")
            )
            .await,
            2,
            "a point per run of {task}"
        );
    }
    let legend = browser.find(".legend").await.expect("a legend");
    let legend = legend.text().await.expect("its text");
    assert!(
        legend.contains("flaky") && legend.contains("greet"),
        "{legend}"
    );
    shoot(&browser, "dag-durations").await;

    // Tries: flaky took two in the first run, one in the second.
    browser
        .goto(&format!("{base}/dags/charts?tab=tries"))
        .await
        .expect("the tries tab");
    browser
        .wait_for("svg.history[data-metric=tries]", WAIT)
        .await
        .expect("a tries chart");
    let tries = browser
        .execute(
            "return Array.from(document.querySelectorAll(
                 'svg.history g.series[data-task=flaky] circle.point'))
               .map(c => c.dataset.value);",
            vec![],
        )
        .await
        .expect("reading the points");
    assert_eq!(tries, json!(["2", "1"]), "oldest run on the left");
    shoot(&browser, "dag-tries").await;

    // Landing: with its caption saying what is measured.
    browser
        .goto(&format!("{base}/dags/charts?tab=landing"))
        .await
        .expect("the landing tab");
    browser
        .wait_for("svg.history[data-metric=landing] circle.point", WAIT)
        .await
        .expect("a landing chart");
    let caption = browser.find("p.caption").await.expect("a caption");
    let caption = caption.text().await.expect("its text");
    assert!(caption.contains("interval end"), "{caption}");
    shoot(&browser, "dag-landing").await;

    // Calendar: today's cell holds both runs, coloured success.
    browser
        .goto(&format!("{base}/dags/charts?tab=calendar"))
        .await
        .expect("the calendar tab");
    let today = browser
        .wait_for("svg.calendar rect.day[data-runs='2']", WAIT)
        .await
        .expect("a day with the two runs");
    let class = today.attr("class").await.expect("its class");
    assert_eq!(class.as_deref(), Some("day state-success"));
    assert!(
        count(&browser, "svg.calendar rect.day").await >= 365,
        "a year of days"
    );
    shoot(&browser, "dag-calendar").await;

    // The trigger form: one field per param, filled with its default.
    browser
        .goto(&format!("{base}/dags/charts?tab=trigger"))
        .await
        .expect("the trigger tab");
    let who = browser
        .wait_for("input[name='param.who']", WAIT)
        .await
        .expect("the who field");
    assert_eq!(who.prop("value").await.expect("value"), json!("world"));
    let n = browser
        .find("input[type=number][name='param.count']")
        .await
        .expect("a number field for count");
    assert_eq!(n.prop("value").await.expect("value"), json!("2"));
    shoot(&browser, "dag-trigger-form").await;

    // A value its param refuses: the form comes back with the error at the
    // field, naming the param, and no run is made.
    let options = browser
        .find("textarea[name='param.options']")
        .await
        .expect("a JSON box for options");
    options.clear().await.expect("clearing options");
    options.send_keys("{oops").await.expect("typing bad JSON");
    browser
        .find("form[action='/dags/charts/trigger'] button[type=submit]")
        .await
        .expect("the trigger button")
        .click()
        .await
        .expect("triggering");
    let error = browser
        .wait_for_text(".param-field .error", "param options", WAIT)
        .await
        .expect("the error at the options field");
    let error = error.text().await.expect("its text");
    assert!(error.contains("not valid JSON"), "{error}");
    shoot(&browser, "dag-trigger-refused").await;
    assert_eq!(home.runs("charts").len(), 2, "a refused form makes no run");

    let who = browser
        .find("input[name='param.who']")
        .await
        .expect("the who field");
    let n = browser
        .find("input[type=number][name='param.count']")
        .await
        .expect("a number field for count");
    let options = browser
        .find("textarea[name='param.options']")
        .await
        .expect("a JSON box for options");
    assert_eq!(
        options.prop("value").await.expect("value"),
        json!("{oops"),
        "what was typed is kept"
    );
    options.clear().await.expect("clearing options");
    options
        .send_keys(r#"{"a": 2}"#)
        .await
        .expect("typing options");
    who.clear().await.expect("clearing who");
    who.send_keys("browser").await.expect("typing who");
    n.clear().await.expect("clearing count");
    n.send_keys("3").await.expect("typing count");
    browser
        .find("input[type=checkbox][name='param.loud']")
        .await
        .expect("a checkbox for loud")
        .click()
        .await
        .expect("ticking loud");
    browser
        .find("select[name='param.region'] option[value='\"us\"']")
        .await
        .expect("the us option")
        .click()
        .await
        .expect("choosing us");
    browser
        .find("form[action='/dags/charts/trigger'] button[type=submit]")
        .await
        .expect("the trigger button")
        .click()
        .await
        .expect("triggering");
    let flash = browser
        .wait_for_text(".flash.ok", "triggered run", WAIT)
        .await
        .expect("a flash naming the run");
    let flash = flash.text().await.expect("the flash text");
    let run_id: i64 = flash
        .split_whitespace()
        .nth(2)
        .and_then(|id| id.parse().ok())
        .unwrap_or_else(|| panic!("a run id in {flash:?}"));
    let run = home.wait_run(run_id);
    assert_eq!(
        run["run"]["conf"],
        json!({"who": "browser", "count": 3, "loud": true, "region": "us", "options": {"a": 2}}),
        "the form's fields as typed JSON: {run:#}"
    );
    browser.quit().await.expect("closing the browser");
}
