//! Starting up: several processes opening the same new database at once.

use crate::harness::{Home, wait_until};

#[test]
fn cli_commands_during_standalone_startup_all_succeed() {
    // A race, so several fresh homes: CLI commands run while a standalone
    // creates and opens the database must all succeed, and so must it.
    for _ in 0..20 {
        let home = Home::new();
        home.write_dag("hello.yaml", "tasks:\n  t:\n    run: echo hi\n");
        let mut gale = home.start();
        for _ in 0..6 {
            let out = home.gale(&["dags", "list", "--output", "json"]);
            assert_eq!(out.code, 0, "{out}");
        }
        wait_until("the DAG to be loaded by a live standalone", || {
            if let Some(status) = gale.exited() {
                panic!("standalone exited ({status}):\n{}", gale.log());
            }
            let out = home.gale(&["dags", "list", "--output", "json"]);
            (out.code == 0 && out.stdout.contains("\"hello\"")).then_some(())
        });
    }
}
